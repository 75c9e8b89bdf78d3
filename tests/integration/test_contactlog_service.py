"""The contact-log service end to end on the genuine Kafka, MongoDB and SQLite store.

The other systems (customer, core banking, opportunity, campaign) are a plain producer
writing CloudEvents by hand; contacts and activities go through the HTTP API with the
genuine Keycloak's tokens (the service's own account, unless a test is about scope). The
manager's task list and a customer's timeline are read over HTTP. Waiting is on MongoDB
change streams (the projections' positions), never on sleeps.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Generator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from crm_backbone.book import CustomerOwnersView
from crm_backbone.organisation import OrganisationView
from crm_backbone.readmodel import wait_until_applied
from crm_contactlog.api import create_app
from crm_contactlog.bootstrap import SERVICE, ContactLogService, ContactLogSettings, bootstrap
from crm_contactlog.task_inputs import TaskInputs
from crm_events.topics import Service
from local_infra.harness import assert_problem, cloudevent, produce_plain, serving
from local_infra.pytest_plugin import Servers
from local_infra.tokens import RealmTokens
from pymongo import AsyncMongoClient

from tests.integration.conftest import SettingsFor, publish_organisation

pytestmark = pytest.mark.integration

CUSTOMER, CORE, OPPORTUNITY, CAMPAIGN, CONTACT_LOG = (
    "/crm/customer",
    "/bank/core-banking",
    "/crm/opportunity",
    "/crm/campaign",
    "/crm/contact-log",
)
Record = tuple[str, tuple[bytes, bytes, list[tuple[str, bytes]]]]


class AsAccount(httpx.Auth):
    """Every request with a fresh token of the service's own account (``crm_service``),
    unless it carries a token of its own."""

    def __init__(self, tokens: RealmTokens) -> None:
        self.tokens = tokens

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response]:
        if "Authorization" in request.headers:
            yield request
            return
        request.headers["Authorization"] = f"Bearer {self.tokens.service_token('crm-contact-log')}"
        yield request


@pytest.fixture
async def service(
    crm_servers: Servers,
    realm_tokens: RealmTokens,
    settings_for: SettingsFor,
) -> AsyncIterator[tuple[ContactLogService, httpx.AsyncClient]]:
    settings = settings_for(ContactLogSettings)
    contact_log = bootstrap(settings)
    async with (
        serving(create_app(contact_log)) as url,
        httpx.AsyncClient(base_url=url, auth=AsAccount(realm_tokens), timeout=30) as client,
    ):
        yield contact_log, client
    cleaner: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(crm_servers.mongo_uri)
    await cleaner.drop_database(settings.mongo_database(SERVICE.value))
    await cleaner.close()


async def derived_caught_up(
    contact_log: ContactLogService, applied: list[tuple[str, str, int]]
) -> None:
    """Wait until the derived-task projection, and the customers' owners for the customer
    events, have applied each (source, aggregate, version)."""
    await caught_up(contact_log, TaskInputs.name, applied)
    customers = [(s, a, v) for s, a, v in applied if s == CUSTOMER]
    await caught_up(contact_log, CustomerOwnersView.name, customers)


async def caught_up(
    contact_log: ContactLogService, projection: str, applied: list[tuple[str, str, int]]
) -> None:
    """Wait until ``projection`` has applied each (source, aggregate, version)."""
    positions = contact_log.database[f"{projection}__positions"]
    for source, aggregate, version in applied:
        assert await wait_until_applied(positions, source, aggregate, version, within=60), (
            f"{source} {aggregate} v{version} not applied"
        )


def listed(tasks: dict[str, Any]) -> dict[str, list[tuple[str, str]]]:
    """Group -> (kind, customer) of each task."""
    return {
        group: [(t["kind"], t["customer_id"]) for t in tasks[group]]
        for group in ("overdue", "today", "this_week", "upcoming")
    }


async def test_a_manager_s_task_list_from_every_stream(
    service: tuple[ContactLogService, httpx.AsyncClient],
    crm_servers: Servers,
    unique_name: Callable[[str], str],
) -> None:
    contact_log, client = service
    now = datetime.now(UTC).replace(microsecond=0)  # MongoDB keeps milliseconds
    today = now.astimezone(ZoneInfo(contact_log.settings.timezone)).date()
    suffix = unique_name("")[-8:]
    manager = f"RM-{suffix}"
    c1, c2, acc1, acc2, opp1, opp2, need1, need2, campaign = (
        f"{p}-{suffix}" for p in ("C1", "C2", "ACC1", "ACC2", "OPP1", "OPP2", "N1", "N2", "CMP")
    )

    def registered(customer: str, born: date | None) -> Record:
        return (
            "crm.customer.events",
            cloudevent(
                "crm.customer.registered",
                customer,
                1,
                {
                    "customer_type": "individual",
                    "name": {"full_name": f"Customer {customer}"},
                    "status": "active",
                    "branch_id": "BR-001",
                    "birth_date": born.isoformat() if born else None,
                },
                source=CUSTOMER,
                schema_version=2,
            ),
        )

    def assigned(customer: str) -> Record:
        return (
            "crm.customer.events",
            cloudevent(
                "crm.customer.manager_assigned",
                customer,
                2,
                {"manager_id": manager, "branch_id": "BR-001"},
                source=CUSTOMER,
            ),
        )

    def maturity(account: str, version: int, matures: date) -> Record:
        return (
            "bank.corebanking.accounts",
            cloudevent(
                "bank.corebanking.account.maturity_scheduled",
                account,
                version,
                {
                    "customer_id": c1,
                    "product_code": "TD-1Y",
                    "product_type": "time_deposit",
                    "maturity_date": matures.isoformat(),
                    "amount_at_maturity": {"amount": "100000.00", "currency": "CNY"},
                },
            ),
        )

    def opportunity(opportunity_id: str) -> Record:
        return (
            "crm.opportunity.events",
            cloudevent(
                "crm.opportunity.created",
                opportunity_id,
                1,
                {
                    "customer_id": c1,
                    "title": "Pension plan",
                    "products": ["PEN-1"],
                    "probability": 40,
                    "expected_value": {"amount": "50000", "currency": "CNY"},
                    "start_date": today.isoformat(),
                    "expected_close_date": "2030-01-31",
                    "manager_id": manager,
                    "branch_id": "BR-001",
                    "source": "relationship_manager",
                },
                source=OPPORTUNITY,
            ),
        )

    def complaint(need: str) -> Record:
        return (
            "crm.opportunity.events",
            cloudevent(
                "crm.need.logged",
                need,
                1,
                {
                    "customer_id": c1,
                    "kind": "complaint",
                    "summary": "Card blocked abroad",
                    "content": "...",
                    "severity": "high",
                    "urgency": "high",
                    "channel": "phone",
                    "started_at": now.isoformat(),
                    "sla_due_at": (now + timedelta(hours=10)).isoformat(),
                },
                source=OPPORTUNITY,
            ),
        )

    def resolved(need: str) -> Record:
        return (
            "crm.opportunity.events",
            cloudevent(
                "crm.need.resolved",
                need,
                2,
                {"customer_id": c1, "resolution": "unblocked", "resolved_at": now.isoformat()},
                source=OPPORTUNITY,
            ),
        )

    call_list = (
        "crm.campaign.events",
        cloudevent(
            "crm.campaign.call_list_assigned",
            campaign,
            2,
            {
                "manager_id": manager,
                "customer_ids": [c1, c2],
                "due_on": (today + timedelta(days=1)).isoformat(),
            },
            source=CAMPAIGN,
        ),
    )
    await produce_plain(
        crm_servers.kafka_bootstrap,
        [
            registered(c1, (today + timedelta(days=3)).replace(year=1980)),
            assigned(c1),
            registered(c2, None),
            assigned(c2),
            maturity(acc1, 1, today + timedelta(days=5)),
            maturity(acc2, 1, today + timedelta(days=5)),
            maturity(acc2, 2, today + timedelta(days=90)),  # rescheduled beyond the window
            opportunity(opp1),
            opportunity(opp2),
            (
                "crm.opportunity.events",
                cloudevent(
                    "crm.opportunity.stage_changed",
                    opp2,
                    2,
                    {
                        "customer_id": c1,
                        "previous_stage": "opportunity_created",
                        "stage": "closed_won",
                        "probability": 100,
                    },
                    source=OPPORTUNITY,
                ),
            ),
            complaint(need1),
            complaint(need2),
            resolved(need2),
            (
                "crm.campaign.events",
                cloudevent(
                    "crm.campaign.created",
                    campaign,
                    1,
                    {
                        "name": "Year-end deposits",
                        "kind": "telemarketing",
                        "channels": ["phone"],
                        "target_segments": [{"value_band": "high"}],
                        "owner_manager_ids": [manager],
                        "budget": {"amount": "10000", "currency": "CNY"},
                        "planned_start": today.isoformat(),
                        "planned_end": "2030-01-31",
                    },
                    source=CAMPAIGN,
                ),
            ),
            call_list,
            call_list,  # redelivered as is
            (
                "crm.campaign.events",
                cloudevent(  # assigned once more
                    "crm.campaign.call_list_assigned",
                    campaign,
                    3,
                    {
                        "manager_id": manager,
                        "customer_ids": [c1, c2],
                        "due_on": (today + timedelta(days=1)).isoformat(),
                    },
                    source=CAMPAIGN,
                ),
            ),
        ],
        name=contact_log.settings.topic_names(),
    )

    # The manager works: a planned call, and a campaign call that also introduces them to C1.
    due = now + timedelta(days=1)
    scheduled = await client.post(
        "/activities",
        json={
            "activity_id": f"A-{suffix}",
            "customer_id": c1,
            "category": "call",
            "description": "Discuss the pension plan",
            "priority": "high",
            "due_at": due.isoformat(),
            "assignee_id": manager,
        },
    )
    assert scheduled.status_code == 201, scheduled.text
    called = await client.post(
        "/contacts",
        json={
            "contact_id": f"CT-{suffix}",
            "customer_id": c1,
            "category": "phone",
            "summary": "Year-end deposit offer",
            "called": True,
            "outcome": "interested",
            "manager_id": manager,
            "campaign_id": campaign,
            "started_at": datetime.now(UTC).isoformat(),
        },
    )
    assert called.status_code == 201, called.text

    await derived_caught_up(
        contact_log,
        [
            (CUSTOMER, c1, 2),
            (CUSTOMER, c2, 2),
            (CORE, acc1, 1),
            (CORE, acc2, 2),
            (OPPORTUNITY, opp1, 1),
            (OPPORTUNITY, opp2, 2),
            (OPPORTUNITY, need1, 1),
            (OPPORTUNITY, need2, 2),
            (CAMPAIGN, campaign, 3),
            (CONTACT_LOG, f"CT-{suffix}", 1),
            (CONTACT_LOG, f"A-{suffix}", 1),
        ],
    )
    positions = contact_log.queries.positions
    assert await wait_until_applied(positions, CONTACT_LOG, f"A-{suffix}", 1, within=30)

    tasks = (await client.get(f"/managers/{manager}/tasks")).json()
    groups = listed(tasks)
    assert groups["overdue"] == []
    assert groups["upcoming"] == []
    assert sorted(groups["today"] + groups["this_week"]) == sorted(
        [
            ("activity", c1),
            ("birthday", c1),
            ("maturity", c1),  # acc1 only: acc2 matures beyond the window now
            ("complaint_sla", c1),  # need2 was resolved
            ("call_list", c2),  # once, however often assigned; c1 was called about it
            ("introduction", c2),  # c1 had a contact from the manager
        ]
    )
    in_the_week = {(t["kind"], t["customer_id"]): t for t in tasks["this_week"]}
    assert in_the_week[("maturity", c1)]["due_on"] == (today + timedelta(days=5)).isoformat()
    assert in_the_week[("call_list", c2)]["title"] == "Call about campaign Year-end deposits"
    assert in_the_week[("birthday", c1)]["customer_name"] == f"Customer {c1}"

    # A fortnight on (an injected moment, not a wait), opp1 is idle; opp2 closed.
    later = (now + timedelta(days=15)).isoformat()
    fortnight = listed(
        (await client.get(f"/managers/{manager}/tasks", params={"as_of": later})).json()
    )
    assert [task for task in fortnight["overdue"] if task[0] == "idle_opportunity"] == [
        ("idle_opportunity", c1)
    ]

    # Causes resolved upstream: the account closes, the complaint is resolved.
    await produce_plain(
        crm_servers.kafka_bootstrap,
        [
            (
                "bank.corebanking.accounts",
                cloudevent(
                    "bank.corebanking.account.closed",
                    acc1,
                    2,
                    {"customer_id": c1, "closed_on": today.isoformat()},
                ),
            ),
            resolved(need1),
        ],
        name=contact_log.settings.topic_names(),
    )
    await derived_caught_up(contact_log, [(CORE, acc1, 2), (OPPORTUNITY, need1, 2)])
    remaining = listed((await client.get(f"/managers/{manager}/tasks")).json())
    kinds = {kind for group in remaining.values() for kind, _ in group}
    assert kinds == {"activity", "birthday", "call_list", "introduction"}

    # Read-your-writes on an activity.
    moved = await client.post(
        f"/activities/A-{suffix}/reschedule",
        json={"due_at": (due + timedelta(days=2)).isoformat(), "expected_version": 1},
    )
    assert moved.json()["version"] == 2
    activity = await client.get(
        f"/activities/A-{suffix}", params={"min_version": 2, "wait_ms": 10_000}
    )
    assert activity.status_code == 200, activity.text
    assert activity.json()["version"] == 2
    assert datetime.fromisoformat(activity.json()["due_at"]) == due + timedelta(days=2)


async def test_a_customer_timeline_newest_first_in_stable_pages(
    service: tuple[ContactLogService, httpx.AsyncClient], unique_name: Callable[[str], str]
) -> None:
    _, client = service
    suffix = unique_name("")[-8:]
    customer, other = f"C-{suffix}", f"C-{suffix}-X"
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
    moments = {  # two contacts at the same moment: the id breaks the tie
        "CT-a": base,
        "CT-b": base + timedelta(hours=2),
        "CT-c": base + timedelta(hours=2),
        "CT-d": base + timedelta(hours=5),
        "CT-e": base - timedelta(hours=3),
    }
    for name, started in [*moments.items(), ("CT-z", base)]:
        logged = await client.post(
            "/contacts",
            json={
                "contact_id": f"{name}-{suffix}",
                "customer_id": other if name == "CT-z" else customer,
                "category": "visit",
                "summary": f"visit {name}",
                "called": True,
                "outcome": "reached",
                "manager_id": "RM-0042",
                "started_at": started.isoformat(),
            },
        )
        assert logged.status_code == 201, logged.text
    for name in [*moments, "CT-z"]:
        read = await client.get(
            f"/contacts/{name}-{suffix}", params={"min_version": 1, "wait_ms": 10_000}
        )
        assert read.status_code == 200, read.text

    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = (await client.get(f"/customers/{customer}/timeline", params=params)).json()
        pages.append([item["contact_id"].removesuffix(f"-{suffix}") for item in page["items"]])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == [["CT-d", "CT-c"], ["CT-b", "CT-a"], ["CT-e"]]
    first = (await client.get(f"/customers/{customer}/timeline", params={"limit": 1})).json()
    assert first["items"][0]["summary"] == "visit CT-d"
    assert first["items"][0]["version"] == 1


async def test_each_reader_sees_its_book_and_a_reassignment_moves_it_at_once(
    service: tuple[ContactLogService, httpx.AsyncClient],
    crm_servers: Servers,
    topic_prefix: str,
    realm_tokens: RealmTokens,
    unique_name: Callable[[str], str],
) -> None:
    contact_log, client = service
    await publish_organisation(crm_servers.kafka_bootstrap, topic_prefix)
    staff = ("RM-0001", "RM-0002", "RM-0005", "BM-0001", "HO-0001")
    await caught_up(contact_log, OrganisationView.name, [(HR, s, 1) for s in staff])
    run = unique_name("")[-8:]
    owners = {
        f"C-{run}-own": "RM-0001",
        f"C-{run}-colleague": "RM-0002",
        f"C-{run}-region": "RM-0005",
    }
    own, colleague, region = owners
    branches = {"RM-0001": "BR-001", "RM-0002": "BR-001", "RM-0005": "BR-002"}
    records: list[Record] = []
    for customer_id, manager in owners.items():
        records += [
            customer_event(customer_id, 1, "registered", branch_id=branches[manager], name=run),
            customer_event(customer_id, 2, "manager_assigned", manager, branches[manager]),
        ]
    await produce_plain(
        crm_servers.kafka_bootstrap, records, name=contact_log.settings.topic_names()
    )
    await caught_up(contact_log, CustomerOwnersView.name, [(CUSTOMER, c, 2) for c in owners])
    rm1, rm5 = realm_tokens.staff("rm-0001"), realm_tokens.staff("rm-0005")
    bm, analyst = realm_tokens.staff("bm-0001"), realm_tokens.staff("ho-0001")

    def contact(customer_id: str) -> dict[str, Any]:
        return {
            "contact_id": f"CT-{customer_id}",
            "customer_id": customer_id,
            "category": "phone",
            "summary": "Her son starts university in Shanghai",
            "called": True,
            "outcome": "interested",
            "manager_id": "RM-0099",
            "started_at": datetime.now(UTC).isoformat(),
        }

    assert (await client.post("/contacts", json=contact(own), headers=rm1)).status_code == 201
    refused = await client.post("/contacts", json=contact(colleague), headers=rm1)
    assert_problem(refused, 404, "customer-not-found")
    for customer_id in (colleague, region):  # the service's own account: the whole book
        assert (await client.post("/contacts", json=contact(customer_id))).status_code == 201
    for customer_id in owners:
        read = await client.get(f"/contacts/CT-{customer_id}", params=AFTER_FIRST)
        assert read.status_code == 200, read.text

    async def timeline(customer_id: str, headers: dict[str, str]) -> httpx.Response:
        return await client.get(f"/customers/{customer_id}/timeline", headers=headers)

    async def as_if_missing(path: str, key: str, absent: str, headers: dict[str, str]) -> None:
        answer = await client.get(path.format(key), headers=headers)
        missing = await client.get(path.format(absent), headers=headers)
        assert answer.status_code == missing.status_code == 404, answer.text
        assert answer.text == missing.text.replace(absent, key)

    assert (await client.get(f"/contacts/CT-{own}", headers=rm1)).status_code == 200
    await as_if_missing("/contacts/{}", f"CT-{colleague}", "CT-absent", rm1)
    await as_if_missing("/customers/{}/timeline", colleague, "C-absent", rm1)
    for customer_id in (own, colleague):
        assert (await timeline(customer_id, bm)).status_code == 200
    await as_if_missing("/customers/{}/timeline", region, "C-absent", bm)
    masked = (await timeline(region, analyst)).json()["items"]
    assert [item["summary"] for item in masked] == ["***"]

    tasks = await client.get("/managers/RM-0001/tasks", headers=rm1)
    assert tasks.status_code == 200, tasks.text
    assert [(t["kind"], t["customer_id"]) for t in _tasks(tasks.json())] == [("introduction", own)]
    await as_if_missing("/managers/{}/tasks", "RM-0002", "RM-0404", rm1)
    assert (await client.get("/managers/RM-0002/tasks", headers=bm)).status_code == 200
    await as_if_missing("/managers/{}/tasks", "RM-0005", "RM-0404", bm)

    # Moved to RM-0005 of another branch: out of RM-0001's book and the branch's at once.
    moved = customer_event(own, 3, "manager_assigned", "RM-0005", "BR-002", previous="RM-0001")
    await produce_plain(
        crm_servers.kafka_bootstrap, [moved], name=contact_log.settings.topic_names()
    )
    await caught_up(contact_log, CustomerOwnersView.name, [(CUSTOMER, own, 3)])
    await as_if_missing("/contacts/{}", f"CT-{own}", "CT-absent", rm1)
    await as_if_missing("/customers/{}/timeline", own, "C-absent", bm)
    assert (await client.get(f"/contacts/CT-{own}", headers=rm5)).status_code == 200
    assert (await timeline(own, rm5)).json()["items"][0]["contact_id"] == f"CT-{own}"
    after = (await client.get("/managers/RM-0001/tasks", headers=rm1)).json()
    assert list(_tasks(after)) == []


AFTER_FIRST = {"min_version": 1, "wait_ms": 10_000}
HR = Service.HR.source


def customer_event(
    customer_id: str,
    version: int,
    kind: str,
    manager_id: str | None = None,
    branch_id: str | None = None,
    *,
    name: str = "",
    previous: str | None = None,
) -> Record:
    """A customer service event, as the customer service publishes it."""
    if kind == "registered":
        data: dict[str, Any] = {
            "customer_type": "individual",
            "name": {"full_name": f"Fang Wang {name}"},
            "status": "active",
            "branch_id": branch_id,
        }
        event = cloudevent(
            "crm.customer.registered", customer_id, version, data, source=CUSTOMER, schema_version=2
        )
    else:
        data = {"manager_id": manager_id, "branch_id": branch_id, "previous_manager_id": previous}
        event = cloudevent(
            "crm.customer.manager_assigned", customer_id, version, data, source=CUSTOMER
        )
    return ("crm.customer.events", event)


def _tasks(task_list: dict[str, Any]) -> list[dict[str, Any]]:
    return [t for group in ("overdue", "today", "this_week", "upcoming") for t in task_list[group]]
