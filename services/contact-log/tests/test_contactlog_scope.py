"""Who reaches which contacts, activities, timelines and task lists, over generated books.

Hypothesis deals customers to the test organisation's relationship managers (two branches
of one region, and one of another region), with contacts and activities about them or
about no customer. Each book is written through the API (the event store, as the
service's own account) and its events applied to the views on the genuine MongoDB (the
service's own projections; no workers), then every staff member reads everything. What
each should see is computed here from the organisation, independently of the service: a
record in reach answers 200 (masked for the analyst), any other exactly what a missing id
answers; a list holds exactly the in-reach subset.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from crm_backbone.book import CustomerOwnersView
from crm_backbone.masking import mask_value
from crm_backbone.projection import Document, Projection
from crm_backbone.testing_identity import TEST_BRANCHES, TEST_POSITIONS, TestIdentity
from crm_contactlog.api import create_app
from crm_contactlog.bootstrap import SERVICE, ContactLogSettings, bootstrap
from crm_contactlog.task_inputs import TaskInputs
from crm_contactlog.task_rules import TaskKind, derived_task_id
from crm_contactlog.views import ContactLogViews
from crm_events import contact_log as cl
from crm_events import customer as cu
from crm_events.common import CustomerName, CustomerType
from crm_events.envelope import Envelope
from crm_events.organisation import Role
from crm_events.personal import PersonalData
from crm_events.registry import EventPayload
from crm_events.topics import Service
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from local_infra.harness import assert_problem, in_process
from local_infra.pytest_plugin import Servers
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

pytestmark = pytest.mark.integration

IDENTITY = TestIdentity()
NOW = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)  # 09:00 on a Monday in Shanghai
AS_OF = "as_of=2026-11-23T01:00:00Z"
POSITIONS = {p.staff_id: p for p in TEST_POSITIONS}
MANAGERS = [p.staff_id for p in TEST_POSITIONS if p.role is Role.RELATIONSHIP_MANAGER]
READERS = ["RM-0001", "RM-0002", "RM-0005", "RM-0009", "BM-0001", "RH-0001", "HO-0001"]
PROJECTIONS: tuple[Projection, ...] = (ContactLogViews(), TaskInputs(), CustomerOwnersView())


@dataclass(frozen=True)
class Book:
    """Customers (index -> manager), contacts (customer index each), activities (customer
    index or None, assignee, days until due)."""

    customers: tuple[str, ...]
    contacts: tuple[int, ...]
    activities: tuple[tuple[int | None, str, int], ...]


@st.composite
def books(draw: st.DrawFn) -> Book:
    customers = tuple(draw(st.lists(st.sampled_from(MANAGERS), min_size=1, max_size=5)))
    index = st.integers(0, len(customers) - 1)
    contacts = tuple(draw(st.lists(index, max_size=5)))
    activity = st.tuples(st.none() | index, st.sampled_from(MANAGERS), st.integers(1, 10))
    return Book(customers, contacts, tuple(draw(st.lists(activity, max_size=5))))


def reaches(reader: str, manager: str) -> bool:
    """Whether ``reader`` reaches the records owned by ``manager``, by the organisation."""
    position, owner = POSITIONS[reader], POSITIONS[manager]
    match position.role:
        case Role.RELATIONSHIP_MANAGER:
            return reader == manager
        case Role.BRANCH_MANAGER:
            return owner.branch_id == position.branch_id
        case Role.REGIONAL_HEAD:
            return TEST_BRANCHES.get(owner.branch_id or "") == position.region_id
        case _:
            return True


class Scenario:
    """One generated book, written and projected, and the ids it gave its records."""

    def __init__(self, book: Book, client: httpx.AsyncClient, database: AsyncDatabase[Document]):
        token = uuid.uuid4().hex[:6]
        self.book, self.client, self.database = book, client, database
        self.customer_ids = [f"C-{token}-{n}" for n in range(len(book.customers))]
        self.contact_ids = [f"CT-{token}-{n}" for n in range(len(book.contacts))]
        self.activity_ids = [f"ACT-{token}-{n}" for n in range(len(book.activities))]

    async def write(self) -> None:
        for customer_id, manager in zip(self.customer_ids, self.book.customers, strict=True):
            branch = POSITIONS[manager].branch_id or ""
            await self.deliver(Service.CUSTOMER, customer_id, 1, _registered(customer_id, branch))
            assigned = cu.RelationshipManagerAssigned(manager_id=manager, branch_id=branch)
            await self.deliver(Service.CUSTOMER, customer_id, 2, assigned)
        for n, (contact_id, about) in enumerate(
            zip(self.contact_ids, self.book.contacts, strict=True)
        ):
            fields = {
                "customer_id": self.customer_ids[about],
                "category": "visit",
                "summary": f"Talked about the deposit {n}",
                "content": "Her daughter studies abroad",
                "called": False,
                "outcome": "interested",
                "manager_id": "RM-0099",  # introduces no one: the introductions stay
                "started_at": (NOW - timedelta(hours=n + 1)).isoformat(),
            }
            await self.created("/contacts", contact_id, fields)
            await self.deliver(
                Service.CONTACT_LOG, contact_id, 1, cl.ContactLogged.model_validate(fields)
            )
        for activity_id, (customer, assignee, due_in) in zip(
            self.activity_ids, self.book.activities, strict=True
        ):
            fields = {
                "customer_id": None if customer is None else self.customer_ids[customer],
                "category": "call",
                "description": "Call about the rollover",
                "remarks": "She prefers mornings",
                "priority": "normal",
                "due_at": (NOW + timedelta(days=due_in)).isoformat(),
                "assignee_id": assignee,
            }
            await self.created("/activities", activity_id, fields)
            scheduled = fields | {"started_at": fields["due_at"]}
            payload = cl.ActivityScheduled.model_validate(scheduled)
            await self.deliver(Service.CONTACT_LOG, activity_id, 1, payload)

    async def created(self, path: str, key: str, fields: dict[str, Any]) -> None:
        name = "contact_id" if path == "/contacts" else "activity_id"
        sent = await self.client.post(
            path, json=fields | {name: key}, headers=IDENTITY.service("crm-contact-log")
        )
        assert sent.status_code == 201, sent.text

    async def deliver(
        self, service: Service, key: str, version: int, payload: EventPayload
    ) -> None:
        """Apply one event to the views as the projection engine would (upserts)."""
        envelope = Envelope.new(
            payload, key, version, "test", service.source, time=NOW - timedelta(days=1)
        )
        for projection in PROJECTIONS:
            handler = projection.handlers().get(envelope.type)
            for update in handler(envelope) if handler else ():
                await self.database[update.collection].update_one(
                    {"_id": update.document_id}, update.update, upsert=True
                )

    # What a reader should see, from the organisation -------------------------------------

    def customer_in_reach(self, reader: str, customer: int | None) -> bool:
        return customer is not None and reaches(reader, self.book.customers[customer])

    def activity_in_reach(self, reader: str, n: int) -> bool:
        customer, assignee, _ = self.book.activities[n]
        if customer is None:
            return reaches(reader, assignee)
        return self.customer_in_reach(reader, customer)

    def tasks_in_reach(self, reader: str, manager: str) -> set[str]:
        introductions = {
            derived_task_id(TaskKind.INTRODUCTION, customer_id)
            for n, customer_id in enumerate(self.customer_ids)
            if self.book.customers[n] == manager and self.customer_in_reach(reader, n)
        }
        activities = {
            activity_id
            for n, activity_id in enumerate(self.activity_ids)
            if self.book.activities[n][1] == manager
            and (self.book.activities[n][0] is None or self.activity_in_reach(reader, n))
        }
        return introductions | activities


def _registered(customer_id: str, branch: str) -> cu.CustomerRegistered:
    return cu.CustomerRegistered(
        customer_type=CustomerType.INDIVIDUAL,
        name=CustomerName(full_name=f"Fang Wang {customer_id}"),
        status=cu.CustomerStatus.ACTIVE,
        branch_id=branch,
    )


@asynccontextmanager
async def contact_log(servers: Servers) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    """A contact-log API of its own (event store, MongoDB database), without workers."""
    with tempfile.TemporaryDirectory() as folder:
        config = ContactLogSettings(
            data_dir=Path(folder),
            mongo_uri=servers.mongo_uri,
            namespace=f"scope{uuid.uuid4().hex[:10]}",
        )
        service = bootstrap(config, clock=lambda: NOW)
        app = create_app(service, run_workers=False, authentication=IDENTITY.authentication)
        database = service.database
        try:
            async with in_process(app, service.close) as client:
                yield client, database
        finally:
            cleaner: AsyncMongoClient[Document] = AsyncMongoClient(servers.mongo_uri)
            await cleaner.drop_database(config.mongo_database(SERVICE.value))
            await cleaner.close()


def as_missing(answer: httpx.Response, missing: httpx.Response, key: str, absent: str) -> None:
    """``answer`` (about ``key``) is exactly ``missing`` (about the id ``absent``)."""
    assert answer.status_code == missing.status_code == 404, answer.text
    assert answer.headers["content-type"] == missing.headers["content-type"]
    assert answer.text == missing.text.replace(absent, key)


def task_ids(answer: httpx.Response) -> set[str]:
    body = answer.json()
    return {t["task_id"] for g in ("overdue", "today", "this_week", "upcoming") for t in body[g]}


async def check_reader(scenario: Scenario, reader: str) -> int:
    """Every read of ``reader`` over the scenario; the number of records it reached."""
    client, headers, reached = scenario.client, IDENTITY.staff(reader), 0
    masked = POSITIONS[reader].role is Role.ANALYST

    async def get(path: str) -> httpx.Response:
        return await client.get(path, headers=headers)

    for n, contact_id in enumerate(scenario.contact_ids):
        answer = await get(f"/contacts/{contact_id}")
        if scenario.customer_in_reach(reader, scenario.book.contacts[n]):
            assert answer.status_code == 200, answer.text
            shown = answer.json()
            assert shown["summary"] == ("***" if masked else f"Talked about the deposit {n}")
            reached += 1
        else:
            as_missing(answer, await get("/contacts/CT-absent"), contact_id, "CT-absent")
    for n, activity_id in enumerate(scenario.activity_ids):
        answer = await get(f"/activities/{activity_id}")
        if scenario.activity_in_reach(reader, n):
            assert answer.status_code == 200, answer.text
            assert answer.json()["remarks"] == ("***" if masked else "She prefers mornings")
            reached += 1
        else:
            as_missing(answer, await get("/activities/ACT-absent"), activity_id, "ACT-absent")
    for n, customer_id in enumerate(scenario.customer_ids):
        answer = await get(f"/customers/{customer_id}/timeline?limit=200")
        if scenario.customer_in_reach(reader, n):
            assert answer.status_code == 200, answer.text
            listed = {item["contact_id"] for item in answer.json()["items"]}
            assert listed == {
                scenario.contact_ids[k] for k, c in enumerate(scenario.book.contacts) if c == n
            }
        else:
            absent = await get("/customers/C-absent/timeline?limit=200")
            as_missing(answer, absent, customer_id, "C-absent")
    for manager in MANAGERS:
        answer = await get(f"/managers/{manager}/tasks?{AS_OF}")
        if reaches(reader, manager):
            assert answer.status_code == 200, answer.text
            assert task_ids(answer) == scenario.tasks_in_reach(reader, manager)
            if masked:
                assert_masked_names(answer.json())
        else:
            absent = await get(f"/managers/RM-0404/tasks?{AS_OF}")
            as_missing(answer, absent, manager, "RM-0404")
    return reached


def assert_masked_names(task_list: Mapping[str, Any]) -> None:
    for task in _tasks(task_list):
        name = task["customer_name"]
        assert name is None or name == mask_value(
            PersonalData.NAME, f"Fang Wang {task['customer_id']}"
        )
        assert task["title"] == "***"


def _tasks(task_list: Mapping[str, Any]) -> Iterable[Mapping[str, Any]]:
    for group in ("overdue", "today", "this_week", "upcoming"):
        yield from task_list[group]


@settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(book=books())
async def test_every_reader_sees_exactly_the_records_in_reach(
    crm_servers: Servers, book: Book
) -> None:
    async with contact_log(crm_servers) as (client, database):
        scenario = Scenario(book, client, database)
        await scenario.write()
        reached = {reader: await check_reader(scenario, reader) for reader in READERS}
    records = len(book.contacts) + len(book.activities)
    print(f"{len(book.customers)} customers, {records} records; reached: {reached}")
    assert reached["HO-0001"] == records


async def test_commands_on_records_out_of_reach_answer_as_if_missing(
    crm_servers: Servers,
) -> None:
    book = Book(customers=("RM-0001", "RM-0005"), contacts=(), activities=((1, "RM-0005", 2),))
    async with contact_log(crm_servers) as (client, database):
        scenario = Scenario(book, client, database)
        await scenario.write()
        (activity_id,) = scenario.activity_ids
        mine, theirs = scenario.customer_ids
        rm, bm, analyst = (IDENTITY.staff(s) for s in ("RM-0001", "BM-0001", "HO-0001"))
        for command, body in [("cancel", {"reason": "no"}), ("complete", {})]:
            refused = await client.post(
                f"/activities/{activity_id}/{command}", json=body, headers=rm
            )
            missing = await client.post(f"/activities/ACT-absent/{command}", json=body, headers=rm)
            as_missing(refused, missing, activity_id, "ACT-absent")
        contact = {
            "category": "phone",
            "summary": "A call",
            "called": True,
            "outcome": "reached",
            "manager_id": "RM-0001",
            "started_at": NOW.isoformat(),
        }
        foreign = await client.post("/contacts", json=contact | {"customer_id": theirs}, headers=rm)
        assert_problem(foreign, 404, "customer-not-found")
        for headers in (rm, bm):
            logged = await client.post(
                "/contacts", json=contact | {"customer_id": mine}, headers=headers
            )
            assert logged.status_code == 201, logged.text
        meeting = {
            "category": "meeting",
            "description": "Team meeting",
            "due_at": (NOW + timedelta(days=1)).isoformat(),
        }
        own = await client.post(
            "/activities", json=meeting | {"assignee_id": "RM-0001"}, headers=rm
        )
        assert own.status_code == 201, own.text
        other = await client.post(
            "/activities", json=meeting | {"assignee_id": "RM-0002"}, headers=rm
        )
        assert_problem(other, 404, "manager-not-found")
        branch = await client.post(
            "/activities", json=meeting | {"assignee_id": "RM-0002"}, headers=bm
        )
        assert branch.status_code == 201, branch.text
        read_only = await client.post(
            "/contacts", json=contact | {"customer_id": mine}, headers=analyst
        )
        assert_problem(read_only, 403, "forbidden")
        upstream = IDENTITY.service("core-banking", role="upstream_system")
        fed = await client.post(
            "/contacts", json=contact | {"customer_id": theirs}, headers=upstream
        )
        assert fed.status_code == 201, fed.text
        for path in (
            f"/activities/{activity_id}",
            f"/customers/{mine}/timeline",
            "/managers/RM-0001/tasks",
        ):
            for refused_reader in (upstream, IDENTITY.staff("OP-0001"), IDENTITY.staff("AU-0001")):
                assert_problem(await client.get(path, headers=refused_reader), 403, "forbidden")
