"""Who may read and change which customers (``docs/access.md``), through the HTTP API.

Tokens come from a test identity provider (``TestIdentity``: RM-0001 and RM-0002 of
BR-001, RM-0005 of BR-002, RM-0009 of BR-003, BM-0001 of BR-001, RH-0001 of region RG-01 =
BR-001 + BR-002, HO-0001 the analyst). The expected reach of every caller is computed here
from that organisation, independently of the service's code. The API runs in-process
without workers, on an SQLite store: these are the write side's answers (the views'
scope is tried on the genuine MongoDB in ``tests/integration/test_customer_scope.py``).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from crm_backbone.testing_identity import TestIdentity
from crm_customer.api import create_app
from crm_customer.bootstrap import CustomerService, CustomerSettings, bootstrap
from hypothesis import given, settings
from hypothesis import strategies as st
from local_infra.harness import assert_problem, in_process

IDENTITY = TestIdentity()
SERVICE = IDENTITY.service("crm-customer")

OWNERS = [
    ("RM-0001", "BR-001"),
    ("RM-0002", "BR-001"),
    ("RM-0005", "BR-002"),
    ("RM-0009", "BR-003"),
    (None, "BR-001"),
    (None, "BR-003"),
]
"""The owners a generated customer may have (a manager of that branch, or none yet)."""

REGION_RG01 = {"BR-001", "BR-002"}
BOOK_READERS = ("RM-0001", "RM-0002", "RM-0005", "BM-0001", "RH-0001", "HO-0001")


def expected_in_reach(staff_id: str, manager_id: str | None, branch_id: str) -> bool:
    """Whether ``staff_id`` reaches a customer of ``manager_id`` at ``branch_id``: the
    table of docs/access.md, applied to the test organisation by hand."""
    if staff_id.startswith("RM-"):
        return manager_id == staff_id
    if staff_id == "BM-0001":
        return branch_id == "BR-001"
    if staff_id == "RH-0001":
        return branch_id in REGION_RG01
    return staff_id == "HO-0001"


@pytest.fixture
def service(tmp_path: Path) -> CustomerService:
    return bootstrap(CustomerSettings(data_dir=tmp_path))


@pytest.fixture
async def client(service: CustomerService) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(service, run_workers=False, authentication=IDENTITY.authentication)
    async with in_process(app, service.close) as client:
        yield client


def registration(customer_id: str, branch_id: str = "BR-001", **more: Any) -> dict[str, Any]:
    return {
        "customer_id": customer_id,
        "customer_type": "individual",
        "name": {"full_name": "Wang Fang", "family_name": "Wang", "given_name": "Fang"},
        "branch_id": branch_id,
        "phone": "+86 139 1234 5678",
        "email": "wang.fang@example.com",
        "address": {
            "country": "CN",
            "province": "广东省",
            "city": "深圳市",
            "line1": "科技园路1号",
        },
    } | more


def stored_events(service: CustomerService) -> int:
    return int(service.application.recorder.max_notification_id() or 0)


def without_id(answer: httpx.Response, customer_id: str) -> tuple[int, str, dict[str, Any]]:
    """An answer with the id it names taken out: what a missing id and an out-of-scope
    one must answer alike."""
    text = answer.text.replace(customer_id, "<id>")
    return answer.status_code, answer.headers["content-type"], httpx.Response(200, text=text).json()


COMMANDS: list[tuple[str, str, dict[str, Any]]] = [
    ("GET", "", {}),
    ("PATCH", "/profile", {"email": "new@example.com"}),
    ("POST", "/status", {"status": "active", "reason": "accounts opened"}),
    ("POST", "/segment", {"value_band": "high", "reason": "AUM"}),
    ("PUT", "/consent/sms", {"opted_in": False}),
    (
        "POST",
        "/groups",
        {
            "group_id": "HH-1",
            "group_type": "household",
            "group_name": "Wang household",
            "role": "head",
            "joined_on": "2026-01-01",
        },
    ),
]
"""A read and the commands on one customer, each of which changes an in-reach customer."""


def calls(customer_id: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for method, path, body in COMMANDS:
        yield method, f"/customers/{customer_id}{path}", body


async def call(
    client: httpx.AsyncClient, staff_id: str, method: str, url: str, body: dict[str, Any]
) -> httpx.Response:
    json = body if method != "GET" else None
    return await client.request(method, url, json=json, headers=IDENTITY.staff(staff_id))


def test_every_caller_reaches_exactly_its_book_and_out_of_scope_is_missing(
    service: CustomerService,
) -> None:
    """A generated book: every staff member reads and changes exactly the customers their
    reach holds; every other one answers what a missing id answers, and writes nothing."""
    transport = httpx.ASGITransport(
        app=create_app(service, run_workers=False, authentication=IDENTITY.authentication)
    )
    numbers = itertools.count()

    @settings(max_examples=15, deadline=None)
    @given(
        book=st.lists(st.sampled_from(OWNERS), min_size=1, max_size=5),
        staff_id=st.sampled_from(BOOK_READERS),
    )
    def attempt(book: list[tuple[str | None, str]], staff_id: str) -> None:
        customers = {f"C{next(numbers):05d}": owners for owners in book}
        asyncio.run(check(customers, staff_id))

    async def check(customers: dict[str, tuple[str | None, str]], staff_id: str) -> None:
        async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
            for customer_id, (manager_id, branch_id) in customers.items():
                body = registration(customer_id, branch_id, manager_id=manager_id)
                created = await client.post("/customers", json=body, headers=SERVICE)
                assert created.status_code == 201, created.text
            missing = f"C-missing-{next(numbers)}"
            for customer_id, (manager_id, branch_id) in customers.items():
                in_reach = expected_in_reach(staff_id, manager_id, branch_id)
                for (method, url, body), (_, missing_url, _) in zip(
                    calls(customer_id), calls(missing), strict=True
                ):
                    before = stored_events(service)
                    answer = await call(client, staff_id, method, url, body)
                    if not in_reach:
                        absent = await call(client, staff_id, method, missing_url, body)
                        assert without_id(answer, customer_id) == without_id(absent, missing)
                        assert_problem(answer, 404, "customer-not-found")
                        assert stored_events(service) == before
                    elif method != "GET" and staff_id == "HO-0001":
                        assert_problem(answer, 403, "forbidden")
                        assert stored_events(service) == before
                    else:
                        assert answer.status_code == 200, (staff_id, url, answer.text)

    attempt()


async def test_roles_without_the_book_are_refused_whatever_the_customer(
    client: httpx.AsyncClient,
) -> None:
    await client.post("/customers", json=registration("C1"), headers=SERVICE)
    upstream = IDENTITY.service("core-banking", role="upstream_system")
    for headers in (IDENTITY.staff("OP-0001"), IDENTITY.staff("AU-0001")):
        for customer_id in ("C1", "C404"):
            for method, url, body in calls(customer_id):
                json = body if method != "GET" else None
                answer = await client.request(method, url, json=json, headers=headers)
                assert_problem(answer, 403, "forbidden")
    for path in ("/customers/C1", "/customers/C1/view", "/customers", "/groups/HH-1"):
        assert_problem(await client.get(path, headers=upstream), 403, "forbidden")
    changed = await client.post(
        "/customers/C1/status", json={"status": "active", "reason": "core"}, headers=upstream
    )
    assert changed.status_code == 200, changed.text


async def test_the_analyst_reads_every_customer_masked(client: httpx.AsyncClient) -> None:
    body = registration("C1", manager_id="RM-0009", branch_id="BR-003")
    await client.post("/customers", json=body, headers=SERVICE)
    shown = (await client.get("/customers/C1", headers=IDENTITY.staff("HO-0001"))).json()
    assert shown["name"] == {"full_name": "Wang F***", "family_name": "Wang", "given_name": "F***"}
    assert shown["profile"]["phone"] == "+86 139****5678"
    assert shown["profile"]["email"] == "w***@example.com"
    assert shown["profile"]["address"] == {
        "country": "CN",
        "province": "广东省",
        "city": "深圳市",
        "line1": "***",
        "line2": None,
        "postal_code": None,
    }
    assert shown["manager_id"] == "RM-0009"
    unmasked = (await client.get("/customers/C1", headers=IDENTITY.staff("RM-0009"))).json()
    assert unmasked["profile"]["phone"] == "+86 139 1234 5678"


async def test_a_registration_lands_in_the_registering_callers_book(
    client: httpx.AsyncClient,
) -> None:
    rm = IDENTITY.staff("RM-0001")
    own = await client.post("/customers", json=registration("C1"), headers=rm)
    assert own.json() == {"customer_id": "C1", "version": 2}, "registered, then assigned"
    current = (await client.get("/customers/C1", headers=rm)).json()
    assert (current["manager_id"], current["branch_id"]) == ("RM-0001", "BR-001")

    other_branch = await client.post("/customers", json=registration("C2", "BR-002"), headers=rm)
    assert (
        "RM-0001 is not a relationship manager of branch BR-002"
        in (assert_problem(other_branch, 422, "rule-violation")["detail"])
    )
    for_colleague = registration("C3", manager_id="RM-0002")
    assert_problem(
        await client.post("/customers", json=for_colleague, headers=rm), 403, "forbidden"
    )

    bm = IDENTITY.staff("BM-0001")
    unassigned = await client.post("/customers", json=registration("C4"), headers=bm)
    assert unassigned.json()["version"] == 1
    assert (await client.get("/customers/C4", headers=bm)).json()["manager_id"] is None
    assert_problem(await client.get("/customers/C4", headers=rm), 404, "customer-not-found")
    elsewhere = registration("C5", "BR-002")
    assert_problem(await client.post("/customers", json=elsewhere, headers=bm), 403, "forbidden")
    misplaced = registration("C6", manager_id="RM-0005")
    assert_problem(
        await client.post("/customers", json=misplaced, headers=bm), 422, "rule-violation"
    )
    analyst = IDENTITY.staff("HO-0001")
    assert_problem(
        await client.post("/customers", json=registration("C7"), headers=analyst), 403, "forbidden"
    )
    for refused in ("C2", "C3", "C5", "C6", "C7"):
        assert_problem(
            await client.get(f"/customers/{refused}", headers=SERVICE), 404, "customer-not-found"
        )


async def test_a_reassignment_moves_the_customer_out_of_the_old_book_at_once(
    client: httpx.AsyncClient,
) -> None:
    rm1, rm2, rm5 = (IDENTITY.staff(s) for s in ("RM-0001", "RM-0002", "RM-0005"))
    bm, rh = IDENTITY.staff("BM-0001"), IDENTITY.staff("RH-0001")
    await client.post("/customers", json=registration("C1"), headers=rm1)

    giving_away = {"manager_id": "RM-0002", "branch_id": "BR-001"}
    assert_problem(
        await client.put("/customers/C1/manager", json=giving_away, headers=rm1), 403, "forbidden"
    )
    moved = await client.put("/customers/C1/manager", json=giving_away, headers=bm)
    assert moved.json()["version"] == 3
    assert_problem(await client.get("/customers/C1", headers=rm1), 404, "customer-not-found")
    back = {"status": "active", "reason": "x"}
    assert_problem(
        await client.post("/customers/C1/status", json=back, headers=rm1), 404, "customer-not-found"
    )
    assert (await client.get("/customers/C1", headers=rm2)).json()["manager_id"] == "RM-0002"

    other_branch = {"manager_id": "RM-0005", "branch_id": "BR-002"}
    assert_problem(
        await client.put("/customers/C1/manager", json=other_branch, headers=bm), 403, "forbidden"
    )
    wrong_branch = {"manager_id": "RM-0005", "branch_id": "BR-001"}
    assert_problem(
        await client.put("/customers/C1/manager", json=wrong_branch, headers=bm),
        422,
        "rule-violation",
    )
    out_of_region = {"manager_id": "RM-0009", "branch_id": "BR-003"}
    assert_problem(
        await client.put("/customers/C1/manager", json=out_of_region, headers=rh), 403, "forbidden"
    )
    across = await client.put("/customers/C1/manager", json=other_branch, headers=rh)
    assert across.status_code == 200, across.text
    assert_problem(await client.get("/customers/C1", headers=bm), 404, "customer-not-found")
    assert_problem(
        await client.put("/customers/C1/manager", json=giving_away, headers=bm),
        404,
        "customer-not-found",
    )
    assert (await client.get("/customers/C1", headers=rm5)).json()["branch_id"] == "BR-002"


async def test_relationships_and_merges_need_both_customers_in_reach(
    service: CustomerService, client: httpx.AsyncClient
) -> None:
    await client.post("/customers", json=registration("C1"), headers=IDENTITY.staff("RM-0001"))
    await client.post("/customers", json=registration("C2"), headers=IDENTITY.staff("RM-0002"))
    rm1 = IDENTITY.staff("RM-0001")
    before = stored_events(service)
    for url, other, body in (
        ("/customers/C1/relationships", "related_customer_id", {"relationship_type": "spouse"}),
        (
            "/customers/C1/merge",
            "duplicate_customer_id",
            {"reason": "same", "merged_on": "2026-11-23"},
        ),
    ):
        out_of_reach = await client.post(url, json=body | {other: "C2"}, headers=rm1)
        missing = await client.post(url, json=body | {other: "C404"}, headers=rm1)
        assert without_id(out_of_reach, "C2") == without_id(missing, "C404")
        assert_problem(out_of_reach, 404, "customer-not-found")
    assert stored_events(service) == before
    related = await client.post(
        "/customers/C1/relationships",
        json={"related_customer_id": "C2", "relationship_type": "spouse"},
        headers=IDENTITY.staff("BM-0001"),
    )
    assert related.status_code == 200, related.text
