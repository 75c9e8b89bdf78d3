"""``POST /customers/{id}/erasure`` over HTTP: the data protection officer's alone, its
body validated, refused with the holds while one applies, and the erased customer
answering that it was erased. In-process, without workers; the view's facts and the key
store are in-memory stand-ins."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from crm_backbone.keys.memory import InMemoryKeys
from crm_backbone.testing_identity import TestIdentity, subject_of
from crm_customer.api import create_app
from crm_customer.audit_queries import AuditPage, AuditQueries
from crm_customer.bootstrap import CustomerService, CustomerSettings, bootstrap
from crm_customer.erasure import AccountState, RelationshipFacts
from crm_events.customer import CustomerErased
from local_infra.harness import assert_problem, in_process

IDENTITY = TestIdentity()
SERVICE = IDENTITY.service("crm-customer")
DPO = IDENTITY.staff("DP-0001")
REQUEST = {"legal_basis": "gdpr_art17_1b_consent_withdrawn", "reason": "request DPR-7"}
REGISTRATION: dict[str, Any] = {
    "customer_id": "C1",
    "customer_type": "individual",
    "name": {"full_name": "Xia Wenjing"},
    "branch_id": "BR-001",
    "manager_id": "RM-0001",
    "phone": "+86 137 5555 0101",
    "id_documents": [
        {"kind": "national_id", "number": "320102199001011234", "issuing_country": "CN"}
    ],
}


class KnownRelationships:
    """What the view knows of each customer's relationship (none: a prospect)."""

    def __init__(self) -> None:
        self.facts: dict[str, RelationshipFacts] = {}

    async def __call__(self, customer_id: str) -> RelationshipFacts:
        return self.facts.get(customer_id, RelationshipFacts())


@pytest.fixture
def keys() -> InMemoryKeys:
    return InMemoryKeys()


@pytest.fixture
def relationships() -> KnownRelationships:
    return KnownRelationships()


@pytest.fixture
def service(
    tmp_path: Path,
    keys: InMemoryKeys,
    relationships: KnownRelationships,
    monkeypatch: pytest.MonkeyPatch,
) -> CustomerService:
    service = bootstrap(CustomerSettings(data_dir=tmp_path))
    service.application.subject_keys = keys
    monkeypatch.setattr(service.queries, "relationship_facts", relationships)
    return service


@pytest.fixture
async def client(service: CustomerService) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(service, run_workers=False, authentication=IDENTITY.authentication)
    async with in_process(app, service.close) as client:
        created = await client.post("/customers", json=REGISTRATION, headers=SERVICE)
        assert created.status_code == 201, created.text
        yield client


async def test_the_officer_erases_and_the_customer_then_answers_that_it_was_erased(
    client: httpx.AsyncClient, keys: InMemoryKeys
) -> None:
    keys.key_for_writing("C1")
    erased = await client.post("/customers/C1/erasure", json=REQUEST, headers=DPO)
    assert erased.status_code == 200, erased.text
    assert erased.json() == {"customer_id": "C1", "version": 3}
    assert keys.key_for_reading("C1") is None

    current = (await client.get("/customers/C1", headers=IDENTITY.staff("RM-0001"))).json()
    assert current["erased"]["erased_by"] == subject_of("DP-0001")
    assert current["erased"]["legal_basis"] == REQUEST["legal_basis"]
    assert "Xia" not in str(current)
    assert "5555" not in str(current)
    assert current["manager_id"] == "RM-0001"  # not personal: it stays

    changed = await client.patch("/customers/C1/profile", json={"email": "x@y.cn"}, headers=SERVICE)
    assert_problem(changed, 410, "customer-erased")
    again = await client.post("/customers/C1/erasure", json=REQUEST, headers=DPO)
    assert_problem(again, 410, "customer-erased")


@pytest.mark.parametrize(
    "caller", ["RM-0001", "BM-0001", "RH-0001", "HO-0001", "OP-0001", "AU-0001", "crm-customer"]
)
async def test_only_the_data_protection_officer_may_erase(
    client: httpx.AsyncClient, keys: InMemoryKeys, caller: str
) -> None:
    headers = IDENTITY.staff(caller) if caller[:2].isupper() else SERVICE
    refused = await client.post("/customers/C1/erasure", json=REQUEST, headers=headers)
    assert_problem(refused, 403, "forbidden")
    upstream = IDENTITY.service("core-banking", role="upstream_system")
    refused = await client.post("/customers/C1/erasure", json=REQUEST, headers=upstream)
    assert_problem(refused, 403, "forbidden")
    assert "C1" not in keys.keys  # nothing was destroyed (nor made)


async def test_the_officer_has_no_other_business_with_the_book(client: httpx.AsyncClient) -> None:
    for path in ("/customers/C1", "/customers/C1/view", "/customers"):
        assert_problem(await client.get(path, headers=DPO), 403, "forbidden")
    changed = await client.patch("/customers/C1/profile", json={"email": "x@y.cn"}, headers=DPO)
    assert_problem(changed, 403, "forbidden")


@pytest.mark.parametrize(
    "body",
    [
        {"reason": "request DPR-7"},
        {"legal_basis": "because", "reason": "request DPR-7"},
        {"legal_basis": "pipl_art47_3_consent_withdrawn"},
        {"legal_basis": "pipl_art47_3_consent_withdrawn", "reason": ""},
        {"legal_basis": "pipl_art47_3_consent_withdrawn", "reason": "r" * 201},
        REQUEST | {"customer_name": "Xia Wenjing"},
    ],
)
async def test_a_malformed_request_is_a_422(client: httpx.AsyncClient, body: Any) -> None:
    refused = await client.post("/customers/C1/erasure", json=body, headers=DPO)
    assert refused.status_code == 422, refused.text


async def test_a_legal_hold_is_a_409_naming_each_hold_and_nothing_of_the_person(
    client: httpx.AsyncClient, relationships: KnownRelationships, keys: InMemoryKeys
) -> None:
    keys.key_for_writing("C1")
    relationships.facts["C1"] = RelationshipFacts((AccountState("ACC-1", None),), open_complaints=2)
    refused = await client.post("/customers/C1/erasure", json=REQUEST, headers=DPO)
    body = assert_problem(refused, 409, "legal-hold")
    assert [hold["kind"] for hold in body["holds"]] == ["open_accounts", "open_complaints"]
    assert "ACC-1" in body["holds"][0]["detail"]
    assert "Xia" not in refused.text
    assert keys.key_for_reading("C1") is not None

    relationships.facts["C1"] = RelationshipFacts((AccountState("ACC-1", _days_ago(30)),))
    retained = await client.post("/customers/C1/erasure", json=REQUEST, headers=DPO)
    (hold,) = assert_problem(retained, 409, "legal-hold")["holds"]
    assert hold["kind"] == "aml_retention"
    assert hold["until"]


async def test_a_customer_the_officer_names_wrongly_is_a_404(client: httpx.AsyncClient) -> None:
    missing = await client.post("/customers/C404/erasure", json=REQUEST, headers=DPO)
    assert_problem(missing, 404, "customer-not-found")


async def test_without_a_key_store_erasure_is_a_503(
    client: httpx.AsyncClient, service: CustomerService
) -> None:
    service.application.subject_keys = None
    refused = await client.post("/customers/C1/erasure", json=REQUEST, headers=DPO)
    assert_problem(refused, 503, "erasure-unavailable")


async def test_the_officer_reads_the_audit_of_erasures_only_and_the_auditor_all(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[str | None] = []

    async def search(self: AuditQueries, **filters: Any) -> AuditPage:
        asked.append(filters["event_type"])
        return AuditPage(items=[], next_cursor=None)

    monkeypatch.setattr(AuditQueries, "search", search)
    for caller in ("DP-0001", "AU-0001"):
        answered = await client.get("/audit", headers=IDENTITY.staff(caller))
        assert answered.status_code == 200, answered.text
    assert asked == [CustomerErased.event_type, None]
    refused = await client.get("/audit", headers=IDENTITY.staff("RM-0001"))
    assert_problem(refused, 403, "forbidden")


def _days_ago(n: int) -> date:
    return (datetime.now(UTC) - timedelta(days=n)).date()
