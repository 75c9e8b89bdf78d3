"""Reads of personal data are recorded before they are answered, and refused when they
cannot be; the audit trail is the auditor's alone. In-process, without workers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from crm_backbone.callers import Authentication
from crm_backbone.read_audit import ReadAudit
from crm_backbone.testing_identity import TestIdentity, subject_of
from crm_customer.api import create_app
from crm_customer.bootstrap import CustomerService, CustomerSettings, bootstrap
from crm_events.audit import PersonalDataRead
from local_infra.harness import assert_problem, in_process

IDENTITY = TestIdentity()
SERVICE = IDENTITY.service("crm-customer")
REGISTRATION: dict[str, Any] = {
    "customer_id": "C1",
    "customer_type": "individual",
    "name": {"full_name": "Wang Fang"},
    "branch_id": "BR-001",
    "phone": "+86 139 1234 5678",
}


@pytest.fixture
def service(tmp_path: Path) -> CustomerService:
    return bootstrap(CustomerSettings(data_dir=tmp_path))


async def registered(client: httpx.AsyncClient) -> None:
    created = await client.post("/customers", json=REGISTRATION, headers=SERVICE)
    assigned = await client.put(
        "/customers/C1/manager",
        json={"manager_id": "RM-0001", "branch_id": "BR-001"},
        headers=SERVICE,
    )
    assert (created.status_code, assigned.status_code) == (201, 200), assigned.text


@pytest.fixture
async def client(service: CustomerService) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(service, run_workers=False, authentication=IDENTITY.authentication)
    async with in_process(app, service.close) as client:
        await registered(client)
        yield client


async def test_a_read_records_who_read_which_customer_through_which_client(
    client: httpx.AsyncClient,
) -> None:
    before = len(IDENTITY.reads.reads)
    by_manager = await client.get("/customers/C1", headers=IDENTITY.staff("RM-0001"))
    by_service = await client.get("/customers/C1", headers=SERVICE)
    out_of_reach = await client.get("/customers/C1", headers=IDENTITY.staff("RM-0002"))
    assert (by_manager.status_code, by_service.status_code) == (200, 200)
    assert out_of_reach.status_code == 404  # nothing shown, nothing recorded

    recorded = IDENTITY.reads.reads[before:]
    assert [(read.actor, read.client, read.source) for read in recorded] == [
        (subject_of("RM-0001"), "crm-console", "/crm/customer"),
        (subject_of("crm-customer"), "crm-customer", "/crm/customer"),
    ]
    assert [read.data for read in recorded] == [
        PersonalDataRead(
            customer_ids=["C1"], endpoint="GET /customers/{customer_id}", staff_id="RM-0001"
        ),
        PersonalDataRead(customer_ids=["C1"], endpoint="GET /customers/{customer_id}"),
    ]


async def test_a_read_that_cannot_be_recorded_shows_nothing(service: CustomerService) -> None:
    unreachable = ReadAudit("127.0.0.1:1", within_s=2.0)
    authentication = Authentication(
        IDENTITY.authentication.validator, IDENTITY.positions, unreachable
    )
    app = create_app(service, run_workers=False, authentication=authentication)
    async with in_process(app, service.close) as client:
        await registered(client)
        refused = await client.get("/customers/C1", headers=IDENTITY.staff("RM-0001"))
    assert_problem(refused, 503, "audit-unavailable")
    assert "Wang" not in refused.text
    assert "139" not in refused.text
    await unreachable.close()


@pytest.mark.parametrize(
    "caller",
    ["RM-0001", "BM-0001", "RH-0001", "HO-0001", "OP-0001", "crm-customer", "core-banking"],
)
async def test_the_audit_trail_is_the_auditors_alone(
    client: httpx.AsyncClient, caller: str
) -> None:
    headers = (
        IDENTITY.staff(caller)
        if caller[:2].isupper()
        else IDENTITY.service(
            caller, role="upstream_system" if caller == "core-banking" else "crm_service"
        )
    )
    refused = await client.get("/audit", params={"customer_id": "C1"}, headers=headers)
    assert_problem(refused, 403, "forbidden")


async def test_the_auditor_reads_no_customer(client: httpx.AsyncClient) -> None:
    for path in ("/customers/C1", "/customers/C1/view", "/customers"):
        refused = await client.get(path, headers=IDENTITY.staff("AU-0001"))
        assert_problem(refused, 403, "forbidden")


async def test_the_reads_document_their_503_and_the_trail_records_none(
    client: httpx.AsyncClient,
) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    for path in ("/customers", "/customers/{customer_id}", "/customers/{customer_id}/view"):
        content = paths[path]["get"]["responses"]["503"]["content"]["application/problem+json"]
        assert "audit-unavailable" in content["examples"], path
    assert "503" not in paths["/audit"]["get"]["responses"]
    assert (
        "view-behind"
        in paths["/customers/{customer_id}/view"]["get"]["responses"]["503"]["content"][
            "application/problem+json"
        ]["examples"]
    )
