"""Who reaches which lead, opportunity and need, through the HTTP API, in-process.

The customers' owners (what ``customer_owners`` holds in MongoDB) are a fixed map here
(``FixedCustomerBook``); the records are made through the API by the service's own
account, then every staff member of the test organisation reads them and commands
them. What each one should reach is computed here from the organisation, independently
of ``crm_backbone.access``: a record out of reach must answer exactly what a record that
does not exist answers. The lists (pipeline, queues, board) are narrowed in MongoDB:
``tests/integration/test_opportunity_scope.py``.
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from crm_backbone.masking import HIDDEN, mask_value
from crm_backbone.testing_identity import TEST_BRANCHES, FixedCustomerBook, TestIdentity
from crm_events.personal import PersonalData
from crm_opportunity.api import create_app
from crm_opportunity.bootstrap import OpportunitySettings, bootstrap
from crm_opportunity.ownership import Book, Gate
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from local_infra.harness import assert_problem, in_process

IDENTITY = TestIdentity()
SERVICE = "crm-opportunity"
MANAGERS = {"RM-0001": "BR-001", "RM-0002": "BR-001", "RM-0005": "BR-002", "RM-0009": "BR-003"}
BOOK_STAFF = ("RM-0001", "RM-0002", "RM-0005", "RM-0009", "BM-0001", "RH-0001")
SLA = {"started_at": "2026-11-23T09:00:00+08:00", "sla_due_at": "2026-11-24T09:00:00+08:00"}


def reaches(staff_id: str, manager_id: str | None, branch_id: str | None) -> bool:
    """Whether ``staff_id`` reaches a record owned by this manager and branch (the table
    of docs/access.md, for the test organisation)."""
    if staff_id.startswith("RM-"):
        return manager_id == staff_id
    if staff_id == "BM-0001":
        return branch_id == "BR-001"
    if staff_id == "RH-0001":
        return TEST_BRANCHES.get(branch_id or "") == "RG-01"
    return staff_id == "HO-0001"


@asynccontextmanager
async def api(owners: Mapping[str, Mapping[str, str]]) -> AsyncIterator[httpx.AsyncClient]:
    """The API on a store of its own, its customers owned as ``owners`` says."""
    with tempfile.TemporaryDirectory() as folder:
        service = bootstrap(OpportunitySettings(data_dir=Path(folder)))
        service.gate = Gate(service.application, Book(FixedCustomerBook(owners)))
        app = create_app(service, run_workers=False, authentication=IDENTITY.authentication)
        async with in_process(app, service.close, IDENTITY.service(SERVICE)) as client:
            yield client


async def created(response: httpx.Response) -> str:
    assert response.status_code == 201, response.text
    key: str = response.json()["id"]
    return key


def opportunity(customer_id: str, **more: Any) -> dict[str, Any]:
    return {
        "customer_id": customer_id,
        "title": "Mortgage",
        "products": ["ML-30"],
        "expected_value": {"amount": "900000", "currency": "CNY"},
        "expected_close_date": "2099-03-31",
        "manager_id": "RM-0001",
        "branch_id": "BR-001",
        "source": "relationship_manager",
    } | more


def complaint(customer_id: str) -> dict[str, Any]:
    return {
        "customer_id": customer_id,
        "kind": "complaint",
        "summary": "Fee twice",
        "content": "Zhao Min says the annual fee was charged twice",
        "severity": "high",
        "urgency": "high",
        "channel": "phone",
    } | SLA


def prospect(branch_id: str, **more: Any) -> dict[str, Any]:
    return {
        "contact_name": "Zhao Min",
        "phone": "+86 139 5555 0101",
        "source": "walk_in",
        "branch_id": branch_id,
        "notes": "asked about mortgages",
    } | more


def answer(response: httpx.Response, key: str) -> tuple[int, str, dict[str, Any]]:
    """What a caller learns from ``response`` about the record ``key``, ``key`` aside."""
    body = {name: str(value).replace(key, "<id>") for name, value in response.json().items()}
    return response.status_code, response.headers["content-type"], body


@dataclass(frozen=True)
class Record:
    """A record made in the test: its kind, how it is read and commanded, its owners."""

    kind: str
    key: str
    manager_id: str | None
    branch_id: str | None

    @property
    def read(self) -> str | None:
        """Leads and needs are read from their events (opportunities from the views)."""
        return None if self.kind == "opportunity" else f"/{self.kind}s/{self.key}"

    @property
    def command(self) -> str:
        """A command that changes nothing: an assignment conditional on a version the
        record will never be at (409 in reach, and only once the reach was checked)."""
        return f"/{self.kind.replace('y', 'ie')}s/{self.key}/{self.assigned}"

    @property
    def assigned(self) -> str:
        return {"lead": "manager", "opportunity": "manager", "need": "owner"}[self.kind]


UNREACHABLE = {"manager_id": "RM-0002", "expected_version": 999}

customers = st.dictionaries(
    st.sampled_from([f"C{n}" for n in range(6)]),
    st.tuples(st.sampled_from(sorted(MANAGERS)), st.sampled_from(sorted(TEST_BRANCHES))),
    min_size=1,
    max_size=4,
)
prospects = st.lists(
    st.tuples(
        st.none() | st.sampled_from(sorted(MANAGERS)), st.sampled_from(sorted(TEST_BRANCHES))
    ),
    max_size=3,
)


async def make_book(
    client: httpx.AsyncClient,
    book: dict[str, tuple[str, str]],
    leads: list[tuple[str | None, str]],
) -> list[Record]:
    """An opportunity, a complaint and a lead of each customer, and prospects' leads,
    made by the service's own account."""
    records: list[Record] = []
    for customer_id, (manager, branch) in book.items():
        for kind, path, body in [
            ("opportunity", "/opportunities", opportunity(customer_id)),
            ("need", "/needs", complaint(customer_id)),
            ("lead", "/leads", prospect("BR-003", customer_id=customer_id)),
        ]:
            key = await created(await client.post(path, json=body))
            records.append(Record(kind, key, manager, branch))
    for lead_manager, lead_branch in leads:
        lead = prospect(lead_branch, manager_id=lead_manager)
        key = await created(await client.post("/leads", json=lead))
        records.append(Record("lead", key, lead_manager, lead_branch))
    return records


async def assert_missing_when_out_of_reach(
    client: httpx.AsyncClient, staff_id: str, record: Record
) -> None:
    """What ``staff_id`` is answered about ``record``: in their book, the record; out of
    it, exactly what a missing record's answer is."""
    headers = IDENTITY.staff(staff_id)
    missing = f"{record.key}-missing"
    in_book = reaches(staff_id, record.manager_id, record.branch_id)
    if record.read is not None:
        read = await client.get(record.read, headers=headers)
        if in_book:
            assert read.status_code == 200, (staff_id, record, read.text)
        else:
            gone = await client.get(record.read.replace(record.key, missing), headers=headers)
            assert answer(read, record.key) == answer(gone, missing), (staff_id, record)
            assert_problem(read, 404, f"{record.kind}-not-found")
    done = await client.put(record.command, json=UNREACHABLE, headers=headers)
    if staff_id == "HO-0001":
        assert_problem(done, 403, "forbidden")
    elif in_book:
        assert_problem(done, 409, "stale-version")
    else:
        gone_path = record.command.replace(record.key, missing)
        gone = await client.put(gone_path, json=UNREACHABLE, headers=headers)
        assert answer(done, record.key) == answer(gone, missing), (staff_id, record)
        assert_problem(done, 404, f"{record.kind}-not-found")


@settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(book=customers, leads=prospects)
async def test_every_staff_member_reaches_exactly_their_book_and_the_rest_is_missing(
    book: dict[str, tuple[str, str]], leads: list[tuple[str | None, str]]
) -> None:
    owners = {c: {"manager_id": m, "branch_id": b} for c, (m, b) in book.items()}
    async with api(owners) as client:
        records = await make_book(client, book, leads)
        for staff_id in (*BOOK_STAFF, "HO-0001"):
            for record in records:
                await assert_missing_when_out_of_reach(client, staff_id, record)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    owners = {
        "C1": {"manager_id": "RM-0001", "branch_id": "BR-001"},
        "C5": {"manager_id": "RM-0005", "branch_id": "BR-002"},
    }
    async with api(owners) as client:
        yield client


async def test_what_is_created_must_be_in_the_creators_book(client: httpx.AsyncClient) -> None:
    rm = IDENTITY.staff("RM-0001")
    await created(await client.post("/opportunities", json=opportunity("C1"), headers=rm))
    theirs = await client.post("/opportunities", json=opportunity("C5"), headers=rm)
    assert assert_problem(theirs, 404, "customer-not-found")["detail"] == "no customer C5"
    unknown = await client.post("/needs", json=complaint("C9"), headers=rm)
    assert_problem(unknown, 404, "customer-not-found")
    assert_problem(
        await client.post("/leads", json=prospect("BR-001", customer_id="C5"), headers=rm),
        404,
        "customer-not-found",
    )

    # A relationship manager's own capture of a prospect is theirs.
    own = await created(await client.post("/leads", json=prospect("BR-002"), headers=rm))
    lead = (await client.get(f"/leads/{own}", headers=rm)).json()
    assert (lead["manager_id"], lead["version"]) == ("RM-0001", 2)
    # A branch manager captures in their branch only; a prospect follows its customer once
    # qualified, and a customer out of reach is as good as missing.
    bm = IDENTITY.staff("BM-0001")
    assert_problem(
        await client.post("/leads", json=prospect("BR-002"), headers=bm), 403, "forbidden"
    )
    walk_in = await created(await client.post("/leads", json=prospect("BR-001"), headers=bm))
    elsewhere = await client.post(
        f"/leads/{walk_in}/qualify", json={"customer_id": "C5"}, headers=bm
    )
    assert_problem(elsewhere, 404, "customer-not-found")
    qualified = await client.post(
        f"/leads/{walk_in}/qualify", json={"customer_id": "C1"}, headers=bm
    )
    assert qualified.status_code == 200, qualified.text
    assert (await client.get(f"/leads/{walk_in}", headers=rm)).status_code == 200


async def test_roles_without_the_book_are_refused_whatever_the_record(
    client: httpx.AsyncClient,
) -> None:
    need = await created(await client.post("/needs", json=complaint("C1")))
    for staff_id in ("OP-0001", "AU-0001"):
        headers = IDENTITY.staff(staff_id)
        for path in (f"/needs/{need}", "/needs/N-404", "/pipeline", "/complaints/sla"):
            assert_problem(await client.get(path, headers=headers), 403, "forbidden")
        refused = await client.post("/needs", json=complaint("C1"), headers=headers)
        assert_problem(refused, 403, "forbidden")

    upstream = IDENTITY.service("core-banking", role="upstream_system")
    sent = await client.post("/needs", json=complaint("C5"), headers=upstream)
    assert sent.status_code == 201, sent.text
    assert_problem(await client.get(f"/needs/{need}", headers=upstream), 403, "forbidden")

    analyst = IDENTITY.staff("HO-0001")
    assert_problem(
        await client.post("/needs", json=complaint("C1"), headers=analyst), 403, "forbidden"
    )
    assert_problem(
        await client.put(f"/needs/{need}/owner", json={"manager_id": "RM-1"}, headers=analyst),
        403,
        "forbidden",
    )


async def test_the_analyst_sees_every_record_with_its_personal_data_masked(
    client: httpx.AsyncClient,
) -> None:
    lead = await created(await client.post("/leads", json=prospect("BR-003")))
    need = await created(await client.post("/needs", json=complaint("C5")))
    analyst, service = IDENTITY.staff("HO-0001"), IDENTITY.service(SERVICE)
    shown = (await client.get(f"/leads/{lead}", headers=analyst)).json()
    plain = (await client.get(f"/leads/{lead}", headers=service)).json()
    assert plain["contact_name"] == "Zhao Min"
    assert shown == plain | {"contact_name": mask_value(PersonalData.NAME, "Zhao Min")}
    assert shown["contact_name"] != "Zhao Min"

    shown = (await client.get(f"/needs/{need}", headers=analyst)).json()
    plain = (await client.get(f"/needs/{need}", headers=service)).json()
    assert shown == plain | {"content": HIDDEN}
