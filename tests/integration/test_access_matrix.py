"""Role x endpoint x scope, over the services, on the genuine servers.

The services run side by side on topics of the test's own, with the simulated bank's
organisation published to them and four test customers: one of rm-0001's, one of a
colleague in the same branch, one of another branch of the East region and one of the
North. Every endpoint of the book (``access_matrix_rows.ROWS``) is called about each
customer by each caller of ``access_matrix.CALLERS`` with a token of the genuine
Keycloak, and the status (and, for lists, what is shown) is compared with the ground
truth of ``access_matrix``. The table of counts is printed (``pytest -s``).
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

import httpx
import pytest
from crm_backbone.settings import ServiceSettings
from crm_campaign import api as campaign_api
from crm_campaign import bootstrap as campaign_boot
from crm_contactlog import api as contact_api
from crm_contactlog import bootstrap as contact_boot
from crm_customer import api as customer_api
from crm_customer import bootstrap as customer_boot
from crm_opportunity import api as opportunity_api
from crm_opportunity import bootstrap as opportunity_boot
from fastapi import FastAPI
from local_infra.harness import serving
from local_infra.pytest_plugin import Servers
from local_infra.tokens import RealmTokens
from pymongo import AsyncMongoClient

from tests.integration.access_matrix import (
    CALLERS,
    LABELS,
    OWNERS,
    Caller,
    Kind,
    expected_status,
    listed_labels,
    matches,
)
from tests.integration.access_matrix_rows import (
    ROWS,
    SCHEDULED,
    SETUP_PRODUCT_PREFIX,
    Row,
    activity_body,
    campaign_body,
    contact_body,
    lead_body,
    need_body,
    new_id,
    opportunity_body,
)
from tests.integration.conftest import SettingsFor, publish_organisation

pytestmark = pytest.mark.integration

STAFF_PLACED = 65
"""Staff positions the simulated organisation publishes (the realm's users)."""


@dataclass
class MatrixWorld:
    clients: Mapping[str, httpx.AsyncClient]
    tokens: RealmTokens
    run: str
    customers: dict[str, str] = field(default_factory=dict)
    records: dict[tuple[str, str], str] = field(default_factory=dict)
    _serial: itertools.count[int] = field(default_factory=itertools.count)

    def unique(self, prefix: str) -> str:
        return f"{prefix}-{self.run}-{next(self._serial)}"

    def headers(self, caller: Caller) -> dict[str, str]:
        if caller.login == "client":
            return self.tokens.service(caller.name)
        return self.tokens.staff(caller.name)

    async def seed(self, service: str, method: str, path: str, body: Any = None) -> Any:
        response = await self.clients[service].request(
            method, path, json=body, headers=self.tokens.service(f"crm-{service}")
        )
        assert response.is_success, (
            f"seeding {method} {path}: {response.status_code} {response.text}"
        )
        return response.json() if response.content else None

    async def fresh_customer(self, label: str, name: str = "Fresh") -> str:
        customer_id = self.unique("C")
        owners = OWNERS[label]
        await self.seed(
            "customer",
            "POST",
            "/customers",
            {
                "customer_id": customer_id,
                "customer_type": "individual",
                "name": {"full_name": f"{name} {self.run} {label}"},
                "branch_id": owners.branch_id,
                "phone": "+86 139 1234 5678",
                "preferred_channel": "phone",
            },
        )
        await self.seed(
            "customer",
            "PUT",
            f"/customers/{customer_id}/manager",
            {"manager_id": owners.manager_id, "branch_id": owners.branch_id},
        )
        return customer_id


@pytest.fixture
async def world(
    crm_servers: Servers,
    realm_tokens: RealmTokens,
    unique_name: Callable[[str], str],
    topic_prefix: str,
    settings_for: SettingsFor,
) -> AsyncIterator[MatrixWorld]:
    namespace = unique_name("mx")[:30]
    apps: dict[str, FastAPI] = {
        "customer": customer_api.create_app(
            customer_boot.bootstrap(
                settings_for(customer_boot.CustomerSettings, namespace=namespace)
            )
        ),
        "opportunity": opportunity_api.create_app(
            opportunity_boot.bootstrap(
                settings_for(opportunity_boot.OpportunitySettings, namespace=namespace)
            )
        ),
        "contact-log": contact_api.create_app(
            contact_boot.bootstrap(
                settings_for(contact_boot.ContactLogSettings, namespace=namespace)
            )
        ),
        "campaign": campaign_api.create_app(
            campaign_boot.bootstrap(
                settings_for(campaign_boot.CampaignSettings, namespace=namespace)
            )
        ),
    }
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(crm_servers.mongo_uri)
    databases = {
        name: mongo[ServiceSettings(namespace=namespace).mongo_database(name)] for name in apps
    }
    async with AsyncExitStack() as stack:
        clients = {}
        for name, app in apps.items():
            url = await stack.enter_async_context(serving(app))
            clients[name] = await stack.enter_async_context(
                httpx.AsyncClient(base_url=url, timeout=60)
            )
        world = MatrixWorld(clients, realm_tokens, uuid.uuid4().hex[:8])
        await publish_organisation(crm_servers.kafka_bootstrap, topic_prefix)
        for database in databases.values():
            await _until(partial(_count, database["org_staff"], {}), STAFF_PLACED)
        await _make_records(world, databases)
        yield world
    for database in databases.values():
        await mongo.drop_database(database.name)
    await mongo.close()


async def _count(collection: Any, query: Mapping[str, Any]) -> int:
    return int(await collection.count_documents(query))


async def _until(measure: Callable[[], Awaitable[int]], wanted: int, within: float = 60.0) -> None:
    """Wait until ``measure()`` reaches ``wanted`` (views fed by Kafka catch up)."""
    for _ in range(int(within / 0.1)):
        if await measure() >= wanted:
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"still below {wanted} after {within:g} s")


async def _make_records(world: MatrixWorld, databases: Mapping[str, Any]) -> None:
    """The four test customers and one record of each kind per customer."""
    for label in LABELS:
        customer_id = await world.fresh_customer(label, name="Matrix")
        world.customers[label] = customer_id
        group_id = world.unique("HH")
        await world.seed(
            "customer",
            "POST",
            f"/customers/{customer_id}/groups",
            {
                "group_id": group_id,
                "group_type": "household",
                "group_name": "Matrix household",
                "role": "head",
                "joined_on": "2026-01-01",
            },
        )
        world.records["group", label] = group_id
    await _target_the_test_customers(world, databases["campaign"])
    ours = {"_id": {"$in": list(world.customers.values())}}
    for name in ("opportunity", "contact-log"):
        await _until(partial(_count, databases[name]["customer_owners"], ours), len(LABELS))
    for label in LABELS:
        made = {
            "opportunity": await world.seed(
                "opportunity",
                "POST",
                "/opportunities",
                opportunity_body(world, label, f"{SETUP_PRODUCT_PREFIX}{world.run}"),
            ),
            "need": await world.seed("opportunity", "POST", "/needs", need_body(world, label)),
            "lead": await world.seed("opportunity", "POST", "/leads", lead_body(world, label)),
            "contact": await world.seed(
                "contact-log", "POST", "/contacts", contact_body(world, label)
            ),
            "activity": await world.seed(
                "contact-log", "POST", "/activities", activity_body(world, label)
            ),
        }
        for kind, answer in made.items():
            world.records[kind, label] = new_id(answer)
        campaign = await world.seed("campaign", "POST", "/campaigns", campaign_body(world, label))
        world.records["campaign", label] = new_id(campaign)
        customer_id = world.customers[label]
        await _read_when_applied(world, "customer", f"/customers/{customer_id}/view")
        await _read_when_applied(
            world, "opportunity", f"/opportunities/{world.records['opportunity', label]}"
        )
        await _read_when_applied(
            world, "contact-log", f"/contacts/{world.records['contact', label]}"
        )
        await _read_when_applied(
            world, "contact-log", f"/activities/{world.records['activity', label]}"
        )


async def _target_the_test_customers(world: MatrixWorld, campaigns: Any) -> None:
    """A campaign of the whole bank whose start targets the four test customers (active,
    high value, reachable by phone), for the responses' row."""
    for customer_id in world.customers.values():
        path = f"/customers/{customer_id}"
        await world.seed("customer", "POST", f"{path}/status", {"status": "active", "reason": "x"})
        await world.seed(
            "customer", "POST", f"{path}/segment", {"value_band": "high", "reason": "x"}
        )
    ours = {
        "_id": {"$in": list(world.customers.values())},
        "status": "active",
        "value_band": "high",
    }
    await _until(partial(_count, campaigns["audience"], ours), len(LABELS))
    draft = campaign_body(world, "own") | {"criteria": {"statuses": ["active"]}}
    campaign_id = new_id(await world.seed("campaign", "POST", "/campaigns", draft))
    await world.seed("campaign", "POST", f"/campaigns/{campaign_id}/schedule", SCHEDULED[0][2])
    try:
        await world.seed("campaign", "POST", f"/campaigns/{campaign_id}/start", {})
    except AssertionError as refused:
        found = [doc async for doc in campaigns["audience"].find({"_id": ours["_id"]})]
        raise AssertionError(f"{refused}; the audience holds {found}") from None
    for label in LABELS:
        world.records["targeting", label] = campaign_id


async def _read_when_applied(world: MatrixWorld, service: str, path: str) -> None:
    response = await world.clients[service].get(
        path,
        params={"min_version": "1", "wait_ms": "10000"},
        headers=world.tokens.service(f"crm-{service}"),
    )
    assert response.status_code == 200, f"{path}: {response.status_code} {response.text}"


@dataclass(frozen=True)
class Outcome:
    row: Row
    caller: Caller
    label: str
    status: int
    expected: int | str
    detail: str = ""

    @property
    def agrees(self) -> bool:
        return not self.detail and matches(self.status, self.expected)  # type: ignore[arg-type]


async def _probe(world: MatrixWorld, row: Row, caller: Caller, label: str) -> Outcome:
    call = await row.prepare(world, label)
    response = await world.clients[row.service].request(
        row.method,
        call.path,
        params=dict(call.params),
        json=call.body,
        headers=world.headers(caller),
    )
    expected = expected_status(caller, row.kind, label)
    detail = ""
    if row.kind is Kind.LIST and response.status_code == 200:
        detail = _list_disagreement(row, response.json(), world, caller, label)
    if response.status_code >= 500:
        detail = f"server error: {response.text[:200]}"
    outcome = Outcome(row, caller, label, response.status_code, expected, detail)
    if not outcome.agrees and not detail:
        return replace(outcome, detail=response.text[:160])
    return outcome


def _list_disagreement(
    row: Row, answer: Any, world: MatrixWorld, caller: Caller, label: str
) -> str:
    wanted = listed_labels(caller)
    if row.within is not None:
        wanted &= row.within(label)
    if row.listed is not None and (shown := row.listed(answer, world)) != wanted:
        return f"shows {sorted(shown)}, must show {sorted(wanted)}"
    if row.counted is not None and (count := row.counted(answer)) != len(wanted):
        return f"counts {count}, must count {len(wanted)}"
    return ""


async def test_every_caller_reaches_exactly_its_book_on_every_endpoint(world: MatrixWorld) -> None:
    outcomes = [
        await _probe(world, row, caller, label)
        for row in ROWS
        for caller in CALLERS
        for label in (LABELS[:1] if _once(row) else LABELS)
    ]
    _print_table(outcomes)
    wrong = [
        f"{o.caller.name} {o.row.method} {o.row.template} [{o.label}]: {o.status}, "
        f"expected {o.expected} {o.detail}"
        for o in outcomes
        if not o.agrees
    ]
    assert not wrong, "\n".join(wrong)


def _once(row: Row) -> bool:
    """Whether the row's call is the same whatever the customer."""
    return row.kind is Kind.OPS or (row.kind is Kind.LIST and row.within is None)


def _print_table(outcomes: list[Outcome]) -> None:
    by_service = Counter(o.row.service for o in outcomes)
    by_status = Counter(o.status for o in outcomes)
    endpoints = {(o.row.service, o.row.method, o.row.template) for o in outcomes}
    print(
        f"\naccess matrix: {len(outcomes)} calls = {len(endpoints)} endpoints x "
        f"{len(CALLERS)} callers x in/out of scope; per service {dict(by_service)}; "
        f"per status {dict(sorted(by_status.items()))}; "
        f"disagreements {sum(not o.agrees for o in outcomes)}"
    )
