"""The campaign service end to end on the genuine Kafka, MongoDB and SQLite store.

Three hundred customers of the simulated bank (``crm_simulator.population``) arrive as
customer and core-banking events from a plain producer; a campaign is created, scheduled
and started over HTTP, its target list selected from the service's own audience view;
the channel gateway reports responses on ``channel.gateway.responses`` (some twice, some
before the start); managers report phone contacts over HTTP; opportunities are won and
offered products opened, inside and outside the attribution window. The funnel read over
HTTP must equal the figures computed here from what was sent. Waiting is on MongoDB
change streams (positions, ``min_version``), never on sleeps.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from crm_backbone.parking import PARKING_COLLECTION
from crm_backbone.projection import Document
from crm_backbone.readmodel import wait_until_applied
from crm_backbone.topic_names import TopicNames
from crm_campaign.api import create_app
from crm_campaign.audience import AudienceView
from crm_campaign.bootstrap import CampaignService, CampaignSettings, bootstrap
from crm_events.envelope import KafkaRecord
from crm_events.topics import Service
from local_infra.harness import produce_plain, serving
from local_infra.pytest_plugin import Servers
from local_infra.tokens import RealmTokens
from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from tests.integration.campaign_scenario import (
    BUDGET,
    CHANNELS,
    DAY,
    MIN_ASSETS,
    OFFERED,
    Customer,
    Expected,
    RealmAuth,
    Streams,
    bank,
    customer_events,
    expected_selection,
)
from tests.integration.campaign_upstream import (
    Outcome,
    conversions,
    gateway_message,
    gateway_reports,
)
from tests.integration.conftest import SettingsFor

pytestmark = pytest.mark.integration


@pytest.fixture
async def service(
    crm_servers: Servers,
    realm_tokens: RealmTokens,
    settings_for: SettingsFor,
) -> AsyncIterator[tuple[CampaignService, httpx.AsyncClient]]:
    """The service on topics of the test's own: it reads no other test's records. The
    client calls it as the campaign service's own account (the whole book)."""
    settings = settings_for(CampaignSettings)
    campaign_service = bootstrap(settings)
    async with (
        serving(create_app(campaign_service)) as url,
        httpx.AsyncClient(
            base_url=url, auth=RealmAuth(realm_tokens, "crm-campaign"), timeout=30
        ) as client,
    ):
        yield campaign_service, client
    cleaner: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(crm_servers.mongo_uri)
    await cleaner.drop_database(settings.mongo_database("campaign"))
    await cleaner.close()


# Waiting on MongoDB, never sleeping ------------------------------------------------------------


async def all_applied(
    positions: AsyncCollection[Document], source: str, versions: dict[str, int]
) -> None:
    for aggregate_id, version in versions.items():
        assert await wait_until_applied(positions, source, aggregate_id, version, within=60), (
            f"{aggregate_id} v{version} not applied"
        )


async def counted(collection: AsyncCollection[Document], query: Document, n: int) -> None:
    """Wait until ``n`` documents match ``query``."""
    async with asyncio.timeout(60):
        async with await collection.watch() as stream:
            while await collection.count_documents(query) < n:
                await stream.next()


async def produce(
    bootstrap: str, topics: TopicNames, records: Iterable[tuple[str, KafkaRecord]]
) -> None:
    """Send ``records``, each to the deployment's name of its contract topic, as the
    principal owning that topic."""
    await produce_plain(
        bootstrap, [(topic, (r.key, r.value, r.headers)) for topic, r in records], name=topics
    )


# The test ------------------------------------------------------------------------------------


async def test_a_campaign_tracked_from_targeting_to_revenue(
    service: tuple[CampaignService, httpx.AsyncClient],
    crm_servers: Servers,
    unique_name: Callable[[str], str],
) -> None:
    campaign_service, client = service
    kafka, topics = crm_servers.kafka_bootstrap, campaign_service.settings.topic_names()
    database = campaign_service.mongo[campaign_service.settings.mongo_database("campaign")]
    suffix = unique_name("")[-8:]
    customers = bank(suffix)
    by_id = {c.customer_id: c for c in customers}
    left_out_branch = f"BR-012-{suffix}"
    expected = expected_selection(customers, left_out_branch)

    # 1. The customer base reaches the audience view.
    await customer_base_reaches_the_audience(kafka, topics, database, customers)

    # 2. A campaign is created and scheduled.
    campaign_id = f"CMP-{suffix}"
    owner = f"RM-OWNER-{suffix}"
    branches = sorted({c.branch_id for c in customers} - {left_out_branch})
    await create_and_schedule(client, campaign_id, owner, branches)

    # 3. The gateway reports the first messages before the campaign has started: parked.
    targets = sorted(expected.targets)
    messaged = [t for t in targets if expected.targets[t]["channel"] != "phone"]
    outcome = Outcome()
    early = [
        gateway_message(Streams(), outcome, campaign_id, customer, expected, k)[0]
        for k, customer in enumerate(messaged[:15])
    ]
    await produce(kafka, topics, early)
    await counted(database[PARKING_COLLECTION], {"hold": campaign_id}, len(early))

    # 4. The start freezes exactly the target list computed here.
    phone_targets = [t for t in targets if expected.targets[t]["channel"] == "phone"]
    started = await start_freezes_the_targets(client, campaign_id, expected, phone_targets)
    start_time = datetime.fromisoformat(
        (await client.get(f"/campaigns/{campaign_id}")).json()["started_at"]
    )

    # 5. The gateway reports the rest, some records twice, some sends under two message ids,
    # and a message to a customer who is not a target (dead-lettered).
    stranger = next(c for c in sorted(by_id) if c not in expected.targets)
    gateway = gateway_reports(campaign_id, messaged, stranger, expected, outcome)
    await produce(kafka, topics, early + gateway.records + gateway.records[::10])

    # 6. Managers report their calls.
    await managers_report_calls(client, campaign_id, phone_targets, outcome)

    # 7. Conversions: won opportunities and offered products opened, in and out of window.
    deals = conversions(suffix, targets, start_time, outcome)
    await produce(kafka, topics, deals.records)

    # 8. Wait until the views hold every event the campaign must have, then read.
    stage_events = sum(len(stages) for stages in outcome.reached.values())
    version = 3 + len(started["call_lists"]) + stage_events + len(outcome.opt_outs)
    # The policies write those versions as the upstream events arrive: wait for them in
    # the views (a min_version not yet stored is refused at once), then read at it.
    assert await campaign_service.queries.wait_for(campaign_id, version, within=120)
    funnel_response = await client.get(
        f"/campaigns/{campaign_id}/funnel", params={"min_version": version, "wait_ms": 10_000}
    )
    assert funnel_response.status_code == 200, funnel_response.text
    funnel = funnel_response.json()
    write_side = (await client.get(f"/campaigns/{campaign_id}")).json()
    assert write_side["version"] == funnel["version"] == version

    # 9. The figures equal those computed from what was sent.
    assert_funnel(funnel, expected, outcome)
    daily = (await client.get(f"/campaigns/{campaign_id}/daily", params={"tz": "UTC"})).json()
    assert_daily(daily, expected, outcome)
    listed = (await client.get("/campaigns", params={"owner_manager_id": owner})).json()
    assert [item["campaign_id"] for item in listed["items"]] == [campaign_id]
    assert listed["items"][0]["headline"] == funnel["totals"]
    assert await database[PARKING_COLLECTION].count_documents({"hold": campaign_id}) == 0
    report_funnel(funnel)


# Its steps -------------------------------------------------------------------------------------


async def customer_base_reaches_the_audience(
    kafka: str, topics: TopicNames, database: AsyncDatabase[Document], customers: list[Customer]
) -> None:
    streams = Streams()
    customer_events(customers, streams)
    await produce(kafka, topics, streams.records)
    positions = database[f"{AudienceView.name}__positions"]
    await all_applied(
        positions,
        Service.CUSTOMER.source,
        {c.customer_id: streams.versions[c.customer_id] for c in customers},
    )
    await all_applied(
        positions,
        Service.CORE_BANKING.source,
        {key: v for key, v in streams.versions.items() if not key.startswith("C")},
    )


async def create_and_schedule(
    client: httpx.AsyncClient, campaign_id: str, owner: str, branches: list[str]
) -> None:
    draft = {
        "campaign_id": campaign_id,
        "name": "Spring wealth growth",
        "kind": "sms",
        "products": [OFFERED],
        "channels": CHANNELS,
        "target_segments": [{"value_band": "high"}, {"value_band": "medium"}],
        "criteria": {
            "branch_ids": branches,
            "products_not_held": [OFFERED],
            "assets": {"currency": "CNY", "min": str(MIN_ASSETS)},
        },
        "owner_manager_ids": [owner],
        "budget": {"amount": str(BUDGET), "currency": "CNY"},
        "planned_start": "2026-03-01",
        "planned_end": "2026-03-31",
        "attribution_window_days": 30,
    }
    created = await client.post("/campaigns", json=draft)
    assert created.status_code == 201, created.text
    schedule = {"starts_at": "2026-03-01T09:00:00+08:00", "ends_at": "2026-03-31T18:00:00+08:00"}
    assert (await client.post(f"/campaigns/{campaign_id}/schedule", json=schedule)).is_success


async def start_freezes_the_targets(
    client: httpx.AsyncClient, campaign_id: str, expected: Expected, phone_targets: list[str]
) -> dict[str, Any]:
    start = await client.post(f"/campaigns/{campaign_id}/start", json={})
    assert start.status_code == 200, start.text
    started: dict[str, Any] = start.json()
    assert started["targeted"] == len(expected.targets)
    assert started["excluded"] == expected.excluded
    assert started["call_lists"] == dict(
        Counter(expected.targets[t]["manager"] for t in phone_targets)
    )
    return started


async def managers_report_calls(
    client: httpx.AsyncClient, campaign_id: str, phone_targets: list[str], outcome: Outcome
) -> None:
    for k, customer in enumerate(phone_targets):
        stages = ["contacted"] * (k % 3 != 0) + ["responded"] * (k % 4 == 0 and k % 3 != 0)
        for n, stage in enumerate(stages):
            moment = DAY + timedelta(days=1 + n, hours=k % 5)
            report = {
                "customer_id": customer,
                "channel": "phone",
                "stage": stage,
                "occurred_at": moment.isoformat(),
            }
            answer = await client.post(f"/campaigns/{campaign_id}/responses", json=report)
            assert answer.json()["recorded"] is True, answer.text
            outcome.reach(customer, stage, moment)


# Its checks ------------------------------------------------------------------------------------


def counter(expected: Expected, outcome: Outcome) -> Callable[..., int]:
    """How many targets reached a stage (on a channel), as the test sent it."""

    def count(stage: str, channel: str | None = None) -> int:
        return sum(
            1
            for customer, stages in outcome.reached.items()
            if stage in stages and channel in (None, expected.targets[customer]["channel"])
        )

    return count


def assert_funnel(funnel: dict[str, Any], expected: Expected, outcome: Outcome) -> None:
    count = counter(expected, outcome)
    totals = funnel["totals"]
    revenue = sum(outcome.revenue.values(), Decimal(0))
    assert totals["targeted"] == len(expected.targets)
    for stage in (
        "sent",
        "delivered",
        "opened",
        "contacted",
        "responded",
        "converted",
        "opted_out",
    ):
        assert totals[stage] == count(stage), stage
    assert totals["opened_or_contacted"] == count("opened") + count("contacted")
    assert totals["response_rate"] == round(count("responded") / len(expected.targets), 4)
    assert totals["conversion_rate"] == round(count("converted") / len(expected.targets), 4)
    assert Decimal(totals["revenue"]["CNY"]) == revenue
    assert Decimal(totals["cost"]) == BUDGET
    assert Decimal(totals["cost_per_response"]) == (BUDGET / count("responded")).quantize(
        Decimal("0.01")
    )
    assert totals["roi"] == round(float((revenue - BUDGET) / BUDGET), 4)
    assert funnel["excluded"] == expected.excluded
    for row in funnel["by_channel"]:
        for stage in ("sent", "opened", "contacted", "responded", "converted"):
            assert row[stage] == count(stage, row["channel"]), (row["channel"], stage)
        assert row["targeted"] == sum(
            1 for t in expected.targets.values() if t["channel"] == row["channel"]
        )
    assert {row["segment"]["value_band"]: row["targeted"] for row in funnel["by_segment"]} == dict(
        Counter(t["band"] for t in expected.targets.values())
    )
    assert sum(row["targeted"] for row in funnel["rows"]) == len(expected.targets)
    shares = sum(Decimal(row["cost"]) for row in funnel["rows"])
    assert abs(shares - BUDGET) <= Decimal("0.01") * len(funnel["rows"])


def assert_daily(daily: dict[str, Any], expected: Expected, outcome: Outcome) -> None:
    per_day: Counter[tuple[str, str]] = Counter(
        (moment.date().isoformat(), stage)
        for stages in outcome.reached.values()
        for stage, moment in stages.items()
        if stage != "converted"
    )
    for day in daily["days"]:
        for stage, n in day["reached"].items():
            if stage != "converted":
                assert n == per_day[(day["day"], stage)], (day["day"], stage)
    converted = counter(expected, outcome)("converted")
    assert sum(day["reached"].get("converted", 0) for day in daily["days"]) == converted


def report_funnel(funnel: dict[str, Any]) -> None:
    """Print the figures (``pytest -s``) for the record."""
    keys = (
        "targeted",
        "sent",
        "delivered",
        "opened_or_contacted",
        "responded",
        "converted",
        "opted_out",
        "response_rate",
        "conversion_rate",
        "cost_per_response",
        "revenue",
        "roi",
    )
    print("\nexcluded", funnel["excluded"])
    for row in [funnel["totals"], *funnel["by_channel"]]:
        print(row["channel"] or "total", {key: row[key] for key in keys})
