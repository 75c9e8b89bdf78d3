"""The campaign service's access rules on the genuine servers (``crm_campaign.access``).

1. Generated books in the genuine MongoDB: for every reach, the funnel, the daily series
   and the paged campaign list count exactly the targets whose customer's owners *today*
   are in reach (computed here from the generated owners, not by the service's code).
2. End to end, with the genuine Keycloak's tokens and the simulated bank's organisation
   published to the test's own topics: a relationship manager sees and reports on their
   own customers only, the branch manager the branch, the analyst everything (and the
   whole-campaign figures), the operator and an upstream system read nothing; managing
   campaigns is the branch manager's and the services'; a reassignment moves a target out
   of the old manager's figures at once.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from bson.decimal128 import Decimal128
from crm_backbone.access import Reach, reach_for
from crm_backbone.book import CUSTOMER_OWNERS, CustomerOwnersView
from crm_backbone.organisation import STAFF, Position
from crm_backbone.principal import Principal
from crm_backbone.projection import Document
from crm_backbone.readmodel import wait_until_applied
from crm_campaign.access import CampaignAccess
from crm_campaign.api import create_app
from crm_campaign.audience import AudienceView
from crm_campaign.bootstrap import CampaignService, CampaignSettings, bootstrap
from crm_campaign.queries import CampaignQueries
from crm_campaign.views import CAMPAIGNS, TARGETS, target_key
from crm_events import customer as cu
from crm_events.common import Channel, CustomerName, CustomerType, ValueBand
from crm_events.envelope import Envelope, to_kafka
from crm_events.organisation import Role
from crm_events.registry import EventPayload
from crm_events.topics import Service, topic_for
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from local_infra.harness import assert_problem, produce_plain, serving
from local_infra.pytest_plugin import Servers
from local_infra.tokens import RealmTokens
from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from tests.integration.campaign_scenario import RealmAuth
from tests.integration.conftest import SettingsFor, publish_organisation

pytestmark = pytest.mark.integration

# 1. Generated books -------------------------------------------------------------------------

ORGANISATION = {"RM-A": "BR-1", "RM-B": "BR-1", "RM-C": "BR-2", "RM-D": "BR-3"}
"""Relationship managers and their branches."""
STAGES = ("sent", "contacted", "responded", "converted")
DAY0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _reach(role: Role, staff_id: str, **placed: Any) -> Reach:
    principal = Principal(subject=f"u-{staff_id}", staff_id=staff_id, roles=frozenset({role}))
    return reach_for(principal, Position(staff_id=staff_id, role=role, **placed))


REACHES: dict[str, Reach] = {
    "RM-A": _reach(Role.RELATIONSHIP_MANAGER, "RM-A", branch_id="BR-1"),
    "RM-C": _reach(Role.RELATIONSHIP_MANAGER, "RM-C", branch_id="BR-2"),
    "BM of BR-1": _reach(Role.BRANCH_MANAGER, "BM-1", branch_id="BR-1"),
    "RH of BR-1 and BR-2": _reach(
        Role.REGIONAL_HEAD, "RH-1", region_branch_ids=frozenset({"BR-1", "BR-2"})
    ),
    "analyst": _reach(Role.ANALYST, "HO-1"),
}
WHOLE = {"analyst"}


def covers(reach_name: str, owners: tuple[str, str] | None) -> bool:
    """Whether the reach named ``reach_name`` covers a customer owned by ``owners``
    (manager, branch; ``None``: the service has never heard of the customer)."""
    if reach_name in WHOLE:
        return True
    if owners is None:
        return False
    manager, branch = owners
    if reach_name.startswith("RM-"):
        return manager == reach_name
    if reach_name == "BM of BR-1":
        return branch == "BR-1"
    return branch in ("BR-1", "BR-2")


OWNERS = st.sampled_from([None, *sorted(ORGANISATION.items())])
TARGET = st.tuples(
    OWNERS,  # today's owners
    st.sampled_from(["sms", "phone"]),
    st.dictionaries(st.sampled_from(STAGES), st.integers(0, 3)),  # stage -> day reached
    st.sampled_from(["CMP-0", "CMP-1"]),
)
Target = tuple[tuple[str, str] | None, str, dict[str, int], str]


async def _store_book(database: AsyncDatabase[Document], targets: list[Target]) -> None:
    """The customers' owners, two campaigns and their targets, as the views hold them
    (each target's frozen manager is someone else: it must not matter)."""
    for name in (CUSTOMER_OWNERS, CAMPAIGNS, TARGETS):
        await database[name].delete_many({})
    owners = [
        {"_id": f"C{n}", "manager_id": o[0], "branch_id": o[1]}
        for n, (o, *_) in enumerate(targets)
        if o is not None
    ]
    if owners:
        await database[CUSTOMER_OWNERS].insert_many(owners)
    await database[CAMPAIGNS].insert_many(
        {
            "_id": campaign_id,
            "name": f"Campaign {n}",
            "status": "running",
            "created_at": DAY0 - timedelta(days=n),
            "budget": {"amount": "1000.00", "currency": "CNY"},
            "excluded": {"opted_out": 3},
            "call_lists": {"RM-D": {"manager_id": "RM-D", "customers": 2, "due_on": "2026-03-09"}},
        }
        for n, campaign_id in enumerate(("CMP-0", "CMP-1"))
    )
    documents = []
    for n, (_, channel, stages, campaign_id) in enumerate(targets):
        document: Document = {
            "_id": target_key(campaign_id, f"C{n}"),
            "campaign_id": campaign_id,
            "customer_id": f"C{n}",
            "targeted": True,
            "channel": channel,
            "value_band": "high",
            "corporate_tier": None,
            "manager_id": "RM-FROZEN",
            "stages": {stage: DAY0 + timedelta(days=day) for stage, day in stages.items()},
        }
        if "converted" in stages:
            document |= {"revenue": Decimal128("100.00"), "revenue_currency": "CNY"}
        documents.append(document)
    if documents:
        await database[TARGETS].insert_many(documents)


@settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(targets=st.lists(TARGET, max_size=14))
async def test_figures_and_lists_count_exactly_the_targets_in_reach_today(
    database: AsyncDatabase[Document], targets: list[Target]
) -> None:
    await _store_book(database, targets)
    queries = CampaignQueries(database, "UTC", CampaignAccess(database))
    for name, reach in REACHES.items():
        mine = [t for t in targets if covers(name, t[0])]
        for campaign_id in ("CMP-0", "CMP-1"):
            ours = [t for t in mine if t[3] == campaign_id]
            funnel = await queries.funnel(reach, campaign_id)
            assert funnel is not None
            totals = funnel.totals
            assert totals.targeted == len(ours), name
            for stage in STAGES:
                assert getattr(totals, stage) == sum(stage in t[2] for t in ours), (name, stage)
            converted = sum("converted" in t[2] for t in ours)
            assert totals.revenue == ({"CNY": f"{100 * converted}.00"} if converted else {})
            by_channel = {row.channel: row.targeted for row in funnel.by_channel}
            assert by_channel == dict(Counter(t[1] for t in ours)), name
            whole = name in WHOLE
            assert funnel.excluded == ({"opted_out": 3} if whole else {})
            assert (totals.cost is not None) == (whole and bool(ours))

            daily = await queries.daily(reach, campaign_id)
            assert daily is not None
            reached = Counter(
                ((DAY0 + timedelta(days=day)).date().isoformat(), stage)
                for t in ours
                for stage, day in t[2].items()
            )
            assert {
                (day.day, stage): n for day in daily.days for stage, n in day.reached.items()
            } == dict(reached), name

        listed: dict[str, Any] = {}
        cursor = None
        while True:
            page = await queries.campaigns_page(reach, limit=1, cursor=cursor)
            listed |= {item.campaign_id: item for item in page.items}
            if (cursor := page.next_cursor) is None:
                break
        assert sorted(listed) == ["CMP-0", "CMP-1"], name  # every campaign is listed
        for campaign_id, item in listed.items():
            assert item.headline.targeted == sum(t[3] == campaign_id for t in mine), name
            assert bool(item.call_lists) == (name in WHOLE)


# 2. End to end on Keycloak, Kafka and MongoDB -----------------------------------------------

BRANCH, OTHER_BRANCH = "BR-001", "BR-002"
OWN, COLLEAGUE, ELSEWHERE = "RM-0001", "RM-0002", "RM-0005"
"""rm-0001 and rm-0002 work in BR-001 (branch manager bm-0001), rm-0005 in BR-002."""
BOOK = {0: OWN, 1: OWN, 2: OWN, 3: COLLEAGUE, 4: ELSEWHERE, 5: ELSEWHERE}
SCHEDULE = {"starts_at": "2026-03-01T09:00:00+08:00", "ends_at": "2026-03-31T18:00:00+08:00"}


class Bank:
    """The test's customers as customer events, with contiguous versions."""

    def __init__(self, suffix: str) -> None:
        self.suffix = suffix
        self.versions: Counter[str] = Counter()

    def customer(self, n: int) -> str:
        return f"C{self.suffix}{n}"

    def record(self, customer_id: str, payload: EventPayload) -> tuple[str, Any]:
        self.versions[customer_id] += 1
        envelope = Envelope.new(
            payload,
            customer_id,
            self.versions[customer_id],
            actor="upstream-test",
            source=Service.CUSTOMER.source,
        )
        record = to_kafka(envelope)
        return topic_for(payload.event_type).name, (record.key, record.value, record.headers)

    def registered(self, n: int, manager: str) -> list[tuple[str, Any]]:
        customer_id, branch = self.customer(n), BRANCH if manager != ELSEWHERE else OTHER_BRANCH
        return [
            self.record(
                customer_id,
                cu.CustomerRegistered(
                    customer_type=CustomerType.INDIVIDUAL,
                    name=CustomerName(full_name=f"Test Customer {n}"),
                    status=cu.CustomerStatus.ACTIVE,
                    phone="+86 139 1234 5678",
                    branch_id=branch,
                    preferred_channel=Channel.PHONE,
                ),
            ),
            self.record(
                customer_id,
                cu.CustomerSegmentChanged(
                    value_band=ValueBand.HIGH, corporate_tier=None, reason="annual review"
                ),
            ),
            self.record(customer_id, self.assignment(manager)),
        ]

    @staticmethod
    def assignment(manager: str) -> cu.RelationshipManagerAssigned:
        branch = BRANCH if manager != ELSEWHERE else OTHER_BRANCH
        return cu.RelationshipManagerAssigned(manager_id=manager, branch_id=branch)


@pytest.fixture
async def scoped_service(
    crm_servers: Servers,
    topic_prefix: str,
    settings_for: SettingsFor,
) -> AsyncIterator[tuple[CampaignService, str]]:
    """The service (API and workers) on the test's own topics, its organisation published."""
    settings = settings_for(CampaignSettings)
    service = bootstrap(settings)
    database = service.mongo[settings.mongo_database("campaign")]
    async with serving(create_app(service)) as url:
        await publish_organisation(crm_servers.kafka_bootstrap, topic_prefix)
        staff = ["RM-0001", "RM-0002", "RM-0005", "BM-0001", "HO-0001", "OP-0001"]
        await _placed(database[STAFF], staff)
        yield service, url
    cleaner: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(crm_servers.mongo_uri)
    await cleaner.drop_database(settings.mongo_database("campaign"))
    await cleaner.close()


async def _placed(staff: AsyncCollection[Document], staff_ids: list[str]) -> None:
    """Wait until the org read model places every one of ``staff_ids``."""
    async with asyncio.timeout(60), await staff.watch() as changes:
        while await staff.count_documents({"_id": {"$in": staff_ids}}) < len(staff_ids):
            await changes.next()


async def test_each_role_sees_and_reports_on_its_own_customers_targets(
    scoped_service: tuple[CampaignService, str],
    crm_servers: Servers,
    realm_tokens: RealmTokens,
    unique_name: Callable[[str], str],
) -> None:
    service, url = scoped_service
    topics = service.settings.topic_names()
    database = service.mongo[service.settings.mongo_database("campaign")]
    bank = Bank(unique_name("")[-6:])
    customers = {n: bank.customer(n) for n in BOOK}
    records = [r for n, manager in BOOK.items() for r in bank.registered(n, manager)]
    await produce_plain(crm_servers.kafka_bootstrap, records, name=topics)
    for view in (AudienceView.name, CustomerOwnersView.name):
        positions = database[f"{view}__positions"]
        for customer_id in customers.values():
            source, version = Service.CUSTOMER.source, bank.versions[customer_id]
            assert await wait_until_applied(positions, source, customer_id, version, within=60)

    def client(account: str, *, service_account: bool = False) -> httpx.AsyncClient:
        auth = RealmAuth(realm_tokens, account, service=service_account)
        return httpx.AsyncClient(base_url=url, auth=auth, timeout=30)

    campaign_id = f"CMP-{bank.suffix}"
    draft = {
        "campaign_id": campaign_id,
        "name": "Spring wealth growth",
        "kind": "sms",
        "channels": ["phone", "sms"],
        "target_segments": [{"value_band": "high"}],
        "criteria": {"statuses": ["active"]},
        "owner_manager_ids": [OWN],
        "budget": {"amount": "6000.00", "currency": "CNY"},
        "planned_start": "2026-03-01",
        "planned_end": "2026-03-31",
    }
    async with (
        client("rm-0001") as own,
        client("rm-0005") as elsewhere,
        client("bm-0001") as branch_manager,
        client("ho-0001") as analyst,
        client("op-0001") as operator,
        client("rm-0002") as colleague,
        client("crm-campaign", service_account=True) as crm,
        client("channel-gateway", service_account=True) as gateway,
    ):
        # Managing: refused to a relationship manager and to the branch manager for a
        # campaign of the whole bank; the branch manager runs one of the branch.
        assert_problem(await own.post("/campaigns", json=draft), 403, "forbidden")
        assert_problem(await branch_manager.post("/campaigns", json=draft), 403, "forbidden")
        branch_draft = draft | {
            "campaign_id": f"{campaign_id}-BR",
            "criteria": {"branch_ids": [BRANCH]},
        }
        assert (await branch_manager.post("/campaigns", json=branch_draft)).status_code == 201
        assert (await crm.post("/campaigns", json=draft)).status_code == 201
        assert (await crm.post(f"/campaigns/{campaign_id}/schedule", json=SCHEDULE)).is_success
        started = await crm.post(f"/campaigns/{campaign_id}/start", json={})
        assert started.json()["targeted"] == len(BOOK), started.text
        assert_problem(
            await branch_manager.post(f"/campaigns/{campaign_id}/cancel", json={"reason": "x"}),
            403,
            "forbidden",
        )

        # Reporting: a relationship manager their own customers, the gateway any target.
        async def respond(caller: httpx.AsyncClient, customer_id: str) -> httpx.Response:
            report = {
                "customer_id": customer_id,
                "channel": "phone",
                "stage": "contacted",
                "occurred_at": "2026-03-02T10:00:00+08:00",
            }
            return await caller.post(f"/campaigns/{campaign_id}/responses", json=report)

        assert (await respond(own, customers[0])).json()["recorded"] is True
        out_of_reach = await respond(own, customers[4])
        missing = await respond(own, f"C{bank.suffix}-NONE")
        assert_problem(out_of_reach, 404, "customer-not-found")
        assert out_of_reach.json() == missing.json() | {"detail": f"no customer {customers[4]}"}
        assert (await respond(elsewhere, customers[4])).json()["recorded"] is True
        assert (await respond(gateway, customers[3])).json()["recorded"] is True
        version = (await respond(gateway, customers[1])).json()["version"]
        assert_problem(await respond(analyst, customers[1]), 403, "forbidden")

        # Reading: figures over the caller's customers only.
        async def funnel(caller: httpx.AsyncClient) -> httpx.Response:
            params = {"min_version": version, "wait_ms": 10_000}
            return await caller.get(f"/campaigns/{campaign_id}/funnel", params=params)

        mine = (await funnel(own)).json()
        assert (mine["totals"]["targeted"], mine["totals"]["contacted"]) == (3, 2)
        assert mine["totals"]["cost"] is None
        assert mine["excluded"] == {}
        branch = (await funnel(branch_manager)).json()["totals"]
        assert (branch["targeted"], branch["contacted"]) == (4, 3)
        whole = (await funnel(analyst)).json()["totals"]
        assert whole["contacted"] == 4
        assert whole["cost"] == "6000.00"
        assert_problem(await funnel(operator), 403, "forbidden")
        assert_problem(await funnel(gateway), 403, "forbidden")
        assert (await own.get(f"/campaigns/{campaign_id}")).json()["targeted"] == 3
        listed = (await own.get("/campaigns")).json()["items"]
        assert {item["campaign_id"] for item in listed} == {campaign_id, f"{campaign_id}-BR"}

        # A reassignment moves the customer's target out of the old manager's figures.
        moved = customers[0]
        await produce_plain(
            crm_servers.kafka_bootstrap,
            [bank.record(moved, Bank.assignment(COLLEAGUE))],
            name=topics,
        )
        owners = database[f"{CustomerOwnersView.name}__positions"]
        source = Service.CUSTOMER.source
        assert await wait_until_applied(owners, source, moved, bank.versions[moved], within=60)
        after = (await own.get(f"/campaigns/{campaign_id}/funnel")).json()["totals"]
        assert (after["targeted"], after["contacted"]) == (2, 1)
        assert_problem(await respond(own, moved), 404, "customer-not-found")
        # the new manager's now, already contacted
        assert (await respond(colleague, moved)).json()["recorded"] is False
        for caller, expected in ((own, 2), (branch_manager, 4), (analyst, None)):
            read = (await caller.get(f"/campaigns/{campaign_id}")).json()
            assert expected is None or read["targeted"] == expected
        print(
            f"\ncampaign scope: rm-0001 {mine['totals']['targeted']} -> {after['targeted']} "
            f"targets, bm-0001 {branch['targeted']}, analyst {whole['targeted']}"
        )
