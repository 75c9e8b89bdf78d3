"""Who reaches which opportunity, need and lead, on the genuine servers.

The opportunity service runs with its workers on the genuine Kafka and MongoDB, proving
callers with the genuine Keycloak's tokens; the simulated bank's organisation is
published to the test's own topics, and the customer service is stood in for by a
plain producer of its events. Three customers: two of branch BR-001 (rm-0001's and
rm-0002's), one of BR-002 (rm-0005's). Each relationship manager reaches their own
customers' records only, the branch manager the branch, the analyst everything masked
and read-only, the operator nothing; a reassignment moves every record of the customer
out of the old manager's book as soon as the service has read it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from crm_backbone.book import CUSTOMER_OWNERS
from crm_backbone.masking import mask_value
from crm_backbone.organisation import STAFF
from crm_backbone.readmodel import wait_until_applied
from crm_events.personal import PersonalData
from crm_events.topics import CUSTOMER_EVENTS, Service
from crm_opportunity.api import create_app
from crm_opportunity.bootstrap import OpportunityService, OpportunitySettings, bootstrap
from local_infra.harness import assert_problem, cloudevent, produce_plain, serving
from local_infra.pytest_plugin import Servers
from local_infra.tokens import RealmTokens
from pymongo import AsyncMongoClient

from tests.integration.conftest import SettingsFor, publish_organisation

pytestmark = pytest.mark.integration

CUSTOMER_SOURCE = Service.CUSTOMER.source
OWNERS = {"A": ("RM-0001", "BR-001"), "B": ("RM-0002", "BR-001"), "C": ("RM-0005", "BR-002")}
STAFF_USED = ("RM-0001", "RM-0002", "RM-0005", "BM-0001", "HO-0001", "OP-0001")


@dataclass
class World:
    service: OpportunityService
    client: httpx.AsyncClient
    tokens: RealmTokens
    customers: dict[str, str]
    suffix: str

    def as_(self, username: str) -> dict[str, str]:
        return self.tokens.staff(username)

    async def customer_events(self, *events: tuple[str, int, str, dict[str, Any]]) -> None:
        """Publish the customer service's events (type, version, customer, data), and wait
        until the service's book of owners has applied them."""
        topic = self.service.settings.topic_names()(CUSTOMER_EVENTS.name)
        records = [
            (topic, cloudevent(kind, key, version, data, source=CUSTOMER_SOURCE, schema_version=s))
            for kind, version, key, data in events
            for s in [2 if kind == "crm.customer.registered" else 1]
        ]
        await produce_plain(self.service.settings.kafka_bootstrap, records)
        positions = self.service.database[f"{CUSTOMER_OWNERS}__positions"]
        for _, version, key, _ in events:
            assert await wait_until_applied(positions, CUSTOMER_SOURCE, key, version, 60), key


async def staff_placed(service: OpportunityService) -> None:
    """Wait until the service's org read model places the staff this test uses."""
    placed = {"_id": {"$in": list(STAFF_USED)}}
    async with asyncio.timeout(60):
        while True:
            if await service.database[STAFF].count_documents(placed) == len(STAFF_USED):
                return
            await asyncio.sleep(0.1)


@pytest.fixture
async def world(
    crm_servers: Servers,
    realm_tokens: RealmTokens,
    unique_name: Callable[[str], str],
    topic_prefix: str,
    settings_for: SettingsFor,
) -> AsyncIterator[World]:
    settings = settings_for(OpportunitySettings)
    service = bootstrap(settings)
    suffix = unique_name("")[-8:]
    customers = {label: f"C{label}-{suffix}" for label in OWNERS}
    async with (
        serving(create_app(service)) as url,
        httpx.AsyncClient(
            base_url=url, headers=realm_tokens.service("crm-opportunity"), timeout=30
        ) as client,
    ):
        world = World(service, client, realm_tokens, customers, suffix)
        await publish_organisation(crm_servers.kafka_bootstrap, topic_prefix)
        await staff_placed(service)
        await world.customer_events(
            *(
                event
                for label, (manager, branch) in OWNERS.items()
                for event in (
                    (
                        "crm.customer.registered",
                        1,
                        customers[label],
                        {
                            "customer_type": "individual",
                            "name": {"full_name": "Wang Fang"},
                            "status": "active",
                            "branch_id": branch,
                        },
                    ),
                    (
                        "crm.customer.manager_assigned",
                        2,
                        customers[label],
                        {"manager_id": manager, "branch_id": branch},
                    ),
                )
            )
        )
        yield world
    cleaner: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(crm_servers.mongo_uri)
    await cleaner.drop_database(settings.mongo_database("opportunity"))
    await cleaner.close()


async def made(response: httpx.Response) -> str:
    assert response.status_code == 201, response.text
    key: str = response.json()["id"]
    return key


async def records_of(world: World, label: str) -> dict[str, str]:
    """An opportunity, a complaint and a lead of the customer ``label``, made by the
    service's own account; read back once the views hold them."""
    customer_id = world.customers[label]
    opportunity = await made(
        await world.client.post(
            "/opportunities",
            json={
                "opportunity_id": f"OPP-{label}-{world.suffix}",
                "customer_id": customer_id,
                "title": "Wealth plan",
                "products": ["WM-1"],
                "expected_value": {"amount": "100000", "currency": "CNY"},
                "expected_close_date": "2099-03-31",
                "manager_id": OWNERS[label][0],
                "branch_id": OWNERS[label][1],
                "source": "relationship_manager",
            },
        )
    )
    need = await made(
        await world.client.post(
            "/needs",
            json={
                "customer_id": customer_id,
                "kind": "complaint",
                "summary": "Fee twice",
                "content": "Wang Fang was charged the annual fee twice",
                "severity": "high",
                "urgency": "high",
                "channel": "phone",
                "sla_due_at": "2099-01-01T00:00:00+00:00",
            },
        )
    )
    lead = await made(
        await world.client.post(
            "/leads",
            json={
                "customer_id": customer_id,
                "contact_name": "Wang Fang",
                "source": "walk_in",
                "branch_id": OWNERS[label][1],
            },
        )
    )
    positions = world.service.queries.positions
    for key in (opportunity, need, lead):
        assert await wait_until_applied(positions, Service.OPPORTUNITY.source, key, 1, 60), key
    return {"opportunity": opportunity, "need": need, "lead": lead, "branch": OWNERS[label][1]}


async def sees(world: World, username: str, records: dict[str, str]) -> bool:
    """Whether ``username`` reaches the records (every read agrees), asserting that a
    record out of reach answers exactly what a missing one does."""
    headers = world.as_(username)
    paths = {
        "opportunity": f"/opportunities/{records['opportunity']}",
        "need": f"/needs/{records['need']}",
        "lead": f"/leads/{records['lead']}",
    }
    found = set()
    for kind, path in paths.items():
        answer = await world.client.get(path, headers=headers)
        if answer.status_code == 200:
            found.add(kind)
            continue
        missing = await world.client.get(f"{path}-missing", headers=headers)
        body = assert_problem(answer, 404, f"{kind}-not-found")
        gone = assert_problem(missing, 404, f"{kind}-not-found")
        assert body["detail"].replace(records[kind], "?") == gone["detail"].replace(
            f"{records[kind]}-missing", "?"
        )
    board = (await world.client.get("/complaints/sla", headers=headers)).json()
    if records["need"] in [c["need_id"] for c in board["on_track"]]:
        found.add("board")
    queue = await world.client.get(
        "/leads", params={"branch_id": records["branch"]}, headers=headers
    )
    if records["lead"] in [item["lead_id"] for item in queue.json()["items"]]:
        found.add("queue")
    assert found in (set(), {*paths, "board", "queue"}), found
    return bool(found)


async def test_each_caller_reaches_its_book_and_a_reassignment_moves_it(world: World) -> None:
    records = {label: await records_of(world, label) for label in OWNERS}
    expected = {
        "rm-0001": {"A"},
        "rm-0002": {"B"},
        "rm-0005": {"C"},
        "bm-0001": {"A", "B"},
        "ho-0001": {"A", "B", "C"},
    }
    for username, labels in expected.items():
        reached = {label for label in OWNERS if await sees(world, username, records[label])}
        assert reached == labels, username
        pipeline = (await world.client.get("/pipeline", headers=world.as_(username))).json()
        print(f"{username}: {sorted(reached)}, pipeline of {pipeline['open']['count']}")
        assert pipeline["open"]["count"] == len(labels), username
        assert pipeline["open"]["expected_value"] == {"CNY": f"{100000 * len(labels)}"}

    # The analyst reads everything, masked, and changes nothing; the operator reads nothing.
    analyst = world.as_("ho-0001")
    lead = (await world.client.get(f"/leads/{records['A']['lead']}", headers=analyst)).json()
    assert lead["contact_name"] == mask_value(PersonalData.NAME, "Wang Fang") != "Wang Fang"
    need = (await world.client.get(f"/needs/{records['A']['need']}", headers=analyst)).json()
    assert need["content"] == "***"
    refused = await world.client.post(
        f"/opportunities/{records['A']['opportunity']}/stage",
        json={"stage": "proposal"},
        headers=analyst,
    )
    assert_problem(refused, 403, "forbidden")
    operator = world.as_("op-0001")
    for path in ("/pipeline", f"/needs/{records['A']['need']}"):
        assert_problem(await world.client.get(path, headers=operator), 403, "forbidden")
    upstream = world.tokens.service("core-banking")
    assert_problem(await world.client.get("/pipeline", headers=upstream), 403, "forbidden")

    # rm-0001 works their customer, not rm-0002's.
    rm1 = world.as_("rm-0001")
    moved = await world.client.post(
        f"/opportunities/{records['A']['opportunity']}/stage",
        json={"stage": "proposal"},
        headers=rm1,
    )
    assert moved.status_code == 200, moved.text
    theirs = await world.client.post(
        f"/opportunities/{records['B']['opportunity']}/stage",
        json={"stage": "proposal"},
        headers=rm1,
    )
    assert_problem(theirs, 404, "opportunity-not-found")

    # A reassigns to rm-0005 (branch BR-002): every record of A moves at once.
    await world.customer_events(
        (
            "crm.customer.manager_assigned",
            3,
            world.customers["A"],
            {"manager_id": "RM-0005", "previous_manager_id": "RM-0001", "branch_id": "BR-002"},
        )
    )
    assert not await sees(world, "rm-0001", records["A"])
    assert await sees(world, "rm-0005", records["A"])
    assert not await sees(world, "bm-0001", records["A"])
    pipeline = (await world.client.get("/pipeline", headers=rm1)).json()
    assert pipeline["open"]["count"] == 0
