"""The customer service's scope on the genuine servers (``docs/access.md``).

- The views' queries on the genuine MongoDB, over generated books (hypothesis): a search,
  paged, lists exactly the customers each reach holds, in order; a single view out of
  reach is missing; a group shows only its members in reach; the analyst's answers are
  masked. The expected subsets are computed here from the test organisation by hand.
- End to end, with the genuine Keycloak's tokens, Kafka and the simulated bank's
  organisation published to the test's topics: a relationship manager sees their own
  customers only, a branch manager the branch, the analyst everything masked, and a
  reassignment moves a customer out of the old manager's book at once.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from crm_backbone.access import Reach, reach_for
from crm_backbone.organisation import STAFF
from crm_backbone.principal import Principal
from crm_backbone.projection import Document, ProjectionEngine
from crm_backbone.testing import InMemoryRecord, NoDeadLetters
from crm_backbone.testing_identity import TestIdentity
from crm_customer.api import create_app
from crm_customer.bootstrap import CustomerService, CustomerSettings, bootstrap
from crm_customer.queries import CustomerQueries
from crm_customer.views import CustomerViews
from crm_events import customer as cu
from crm_events.common import CustomerName, CustomerType
from crm_events.envelope import Envelope
from crm_events.registry import EventPayload
from crm_events.topics import Service
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from local_infra.harness import assert_problem, serving
from local_infra.pytest_plugin import Servers
from local_infra.tokens import RealmTokens
from pymongo import AsyncMongoClient

from tests.integration.conftest import SettingsFor, publish_organisation

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
OWNERS = [
    ("RM-0001", "BR-001"),
    ("RM-0002", "BR-001"),
    ("RM-0005", "BR-002"),
    ("RM-0009", "BR-003"),
    (None, "BR-002"),
]
"""A generated customer's owners: a manager of that branch, or none yet."""
READERS = ("RM-0001", "RM-0005", "BM-0001", "RH-0001", "HO-0001")


def expected_in_reach(staff_id: str, manager_id: str | None, branch_id: str) -> bool:
    """docs/access.md's table on the test organisation, by hand."""
    if staff_id.startswith("RM-"):
        return manager_id == staff_id
    if staff_id == "BM-0001":
        return branch_id == "BR-001"
    if staff_id == "RH-0001":
        return branch_id in {"BR-001", "BR-002"}
    return staff_id == "HO-0001"


async def reach_of(staff_id: str) -> Reach:
    position = await TestIdentity().positions.position_of(staff_id)
    assert position is not None
    principal = Principal(subject=staff_id, staff_id=staff_id, roles=frozenset({position.role}))
    return reach_for(principal, position)


def customer_events(
    customer_id: str, name: str, manager_id: str | None, branch_id: str, group: str | None
) -> list[EventPayload]:
    events: list[EventPayload] = [
        cu.CustomerRegistered(
            customer_type=CustomerType.INDIVIDUAL,
            name=CustomerName(full_name=name, family_name=name.split()[0]),
            status=cu.CustomerStatus.ACTIVE,
            phone="+86 139 1234 5678",
            branch_id=branch_id,
        )
    ]
    if manager_id is not None:
        events.append(cu.RelationshipManagerAssigned(manager_id=manager_id, branch_id=branch_id))
    if group is not None:
        events.append(
            cu.GroupMembershipJoined(
                group_id=group,
                group_type=cu.GroupType.HOUSEHOLD,
                group_name="Scope household",
                role=cu.GroupRole.MEMBER,
                joined_on=T0.date(),
            )
        )
    return events


def records_of(customer_id: str, events: list[EventPayload]) -> list[InMemoryRecord]:
    return [
        InMemoryRecord.of(
            Envelope.new(
                payload,
                customer_id,
                version,
                actor="test",
                source=Service.CUSTOMER.source,
                time=T0 + timedelta(minutes=version),
            ),
            version,
        )
        for version, payload in enumerate(events, start=1)
    ]


Book = dict[str, tuple[str, str | None, str, str | None]]
"""customer id -> (name, manager, branch, household)."""


async def searched(queries: CustomerQueries, reach: Reach) -> list[str]:
    """Every customer a search finds for ``reach``, paged two at a time."""
    found: list[str] = []
    cursor = None
    while True:
        page = await queries.search(name="scope", limit=2, cursor=cursor, reach=reach)
        found += [item["customer_id"] for item in page.items]
        if page.next_cursor is None:
            return found
        cursor = page.next_cursor


async def check_book(mongo_uri: str, database_name: str, book: Book) -> None:
    client: AsyncMongoClient[Document] = AsyncMongoClient(mongo_uri, tz_aware=True)
    try:
        await client.drop_database(database_name)
        database = client[database_name]
        engine = ProjectionEngine(CustomerViews(), database, NoDeadLetters(), "test")
        await engine.setup()
        records = [
            record
            for customer_id, (name, manager, branch, group) in book.items()
            for record in records_of(
                customer_id, customer_events(customer_id, name, manager, branch, group)
            )
        ]
        await engine.process(records)
        queries = CustomerQueries(database)
        by_name = sorted(book, key=lambda cid: (book[cid][0].lower(), cid))
        for staff_id in READERS:
            reach = await reach_of(staff_id)
            expected = [cid for cid in by_name if expected_in_reach(staff_id, *book[cid][1:3])]
            assert await searched(queries, reach) == expected, staff_id
            for customer_id in book:
                view = await queries.view(customer_id, reach)
                assert (view is not None) == (customer_id in expected), (staff_id, customer_id)
                if view is not None and reach.masked:
                    assert view.profile["phone"] == "+86 139****5678"
                    assert view.name is not None
                    assert "*" in view.name["full_name"]
            members = [cid for cid in book if book[cid][3] == "HH-S" and cid in expected]
            group = await queries.group("HH-S", reach)
            if not members:
                assert group is None
            else:
                assert group is not None
                assert [m["customer_id"] for m in group["current_members"]] == sorted(members)
                assert {h["customer_id"] for h in group["history"]} == set(members)
            assert await queries.view("C-missing", reach) is None
    finally:
        await client.drop_database(database_name)
        await client.close()


def test_the_views_answer_each_reach_exactly_its_customers(
    crm_servers: Servers, mongo_database: str
) -> None:
    names = st.sampled_from(["Scope Wang", "Scope Li", "scope zhang", "Scope Zhao"])
    numbers = itertools.count()

    @settings(
        max_examples=12,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    @given(
        book=st.lists(
            st.tuples(names, st.sampled_from(OWNERS), st.sampled_from([None, "HH-S"])),
            min_size=1,
            max_size=7,
        )
    )
    def attempt(book: list[tuple[str, tuple[str | None, str], str | None]]) -> None:
        generated: Book = {
            f"C{next(numbers):04d}": (name, manager, branch, group)
            for name, (manager, branch), group in book
        }
        asyncio.run(check_book(crm_servers.mongo_uri, mongo_database, generated))

    attempt()


# End to end ---------------------------------------------------------------------------------


@pytest.fixture
async def service(
    crm_servers: Servers,
    topic_prefix: str,
    settings_for: SettingsFor,
) -> AsyncIterator[tuple[CustomerService, str]]:
    settings = settings_for(CustomerSettings)
    customer_service = bootstrap(settings)
    async with serving(create_app(customer_service)) as url:
        await publish_organisation(crm_servers.kafka_bootstrap, topic_prefix)
        await staff_known(customer_service, {"RM-0001", "RM-0002", "BM-0001", "HO-0001"})
        yield customer_service, url
    cleaner: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(crm_servers.mongo_uri)
    await cleaner.drop_database(settings.mongo_database("customer"))
    await cleaner.close()


async def staff_known(service: CustomerService, staff_ids: set[str]) -> None:
    """Wait (bounded) until the service's org read model places ``staff_ids``."""
    staff = service.database[STAFF]
    for _ in range(600):
        if await staff.count_documents({"_id": {"$in": sorted(staff_ids)}}) == len(staff_ids):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"the organisation never reached the service: {sorted(staff_ids)}")


def read_after(version: int) -> Mapping[str, Any]:
    return {"min_version": version, "wait_ms": 10_000}


async def test_each_role_sees_its_book_and_a_reassignment_moves_it_at_once(
    service: tuple[CustomerService, str],
    realm_tokens: RealmTokens,
    unique_name: Callable[[str], str],
) -> None:
    _, url = service
    run = unique_name("")[-8:]
    own, colleague, region = (f"C-{run}-{n}" for n in ("own", "colleague", "region"))
    rm1, rm2 = realm_tokens.staff("rm-0001"), realm_tokens.staff("rm-0002")
    bm, analyst = realm_tokens.staff("bm-0001"), realm_tokens.staff("ho-0001")

    def registration(customer_id: str, **owners: str) -> dict[str, Any]:
        return {
            "customer_id": customer_id,
            "customer_type": "individual",
            "name": {"full_name": f"Scope{run} Wang", "family_name": f"Scope{run}"},
            "phone": "+86 139 1234 5678",
            "branch_id": "BR-001",
        } | owners

    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        created = await client.post("/customers", json=registration(own), headers=rm1)
        assert created.json()["version"] == 2, created.text
        service_account = realm_tokens.service("crm-customer")
        for customer_id, manager, branch in (
            (colleague, "RM-0002", "BR-001"),
            (region, "RM-0005", "BR-002"),
        ):
            body = registration(customer_id, manager_id=manager, branch_id=branch)
            assert (
                await client.post("/customers", json=body, headers=service_account)
            ).status_code == 201
        for customer_id in (own, colleague, region):
            view = await client.get(
                f"/customers/{customer_id}/view", params=read_after(2), headers=service_account
            )
            assert view.status_code == 200, view.text

        async def search(headers: dict[str, str]) -> set[str]:
            found = await client.get("/customers", params={"name": f"scope{run}"}, headers=headers)
            assert found.status_code == 200, found.text
            return {item["customer_id"] for item in found.json()["items"]}

        assert await search(rm1) == {own}
        assert await search(bm) == {own, colleague}
        assert await search(analyst) == {own, colleague, region}
        out_of_reach = await client.get(f"/customers/{colleague}/view", headers=rm1)
        missing = await client.get(f"/customers/C-{run}-missing/view", headers=rm1)
        assert (
            assert_problem(out_of_reach, 404, "customer-not-found")["detail"]
            == f"no customer {colleague}"
        )
        assert (
            assert_problem(missing, 404, "customer-not-found")["detail"]
            == f"no customer C-{run}-missing"
        )

        masked = (await client.get(f"/customers/{region}/view", headers=analyst)).json()
        assert masked["profile"]["phone"] == "+86 139****5678"
        assert masked["name"]["full_name"] == f"Scope{run} W***"
        listed = (
            await client.get("/customers", params={"name": f"scope{run}"}, headers=analyst)
        ).json()
        assert {item["profile"]["phone"] for item in listed["items"]} == {"+86 139****5678"}
        refused = await client.post(
            f"/customers/{region}/status",
            json={"status": "dormant", "reason": "x"},
            headers=analyst,
        )
        assert_problem(refused, 403, "forbidden")

        moved = await client.put(
            f"/customers/{own}/manager",
            json={"manager_id": "RM-0002", "branch_id": "BR-001"},
            headers=bm,
        )
        assert moved.status_code == 200, moved.text
        version = moved.json()["version"]
        gone = await client.get(f"/customers/{own}/view", params=read_after(version), headers=rm1)
        assert_problem(gone, 404, "customer-not-found")
        arrived = await client.get(
            f"/customers/{own}/view", params=read_after(version), headers=rm2
        )
        assert arrived.json()["manager_id"] == "RM-0002"
        assert await search(rm1) == set()
        assert await search(rm2) == {own, colleague}
        change = {"email": "wang@example.com"}
        assert_problem(
            await client.patch(f"/customers/{own}/profile", json=change, headers=rm1),
            404,
            "customer-not-found",
        )
