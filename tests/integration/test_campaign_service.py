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
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from crm_backbone.kafka import reliable_producer
from crm_backbone.parking import PARKING_COLLECTION
from crm_backbone.projection import Document
from crm_backbone.readmodel import wait_until_applied
from crm_campaign.api import create_app
from crm_campaign.audience import AudienceView
from crm_campaign.bootstrap import CampaignService, CampaignSettings, bootstrap
from crm_events import channel_gateway as gw
from crm_events import core_banking as cb
from crm_events import customer as cu
from crm_events import opportunity as op
from crm_events.common import Channel, CorporateTier, Money
from crm_events.envelope import Envelope, KafkaRecord, to_kafka
from crm_events.registry import EventPayload
from crm_events.topics import Service, topic_for
from crm_simulator.population import SimulatedCustomer, population
from local_infra.harness import serving
from local_infra.pytest_plugin import Servers
from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection

pytestmark = pytest.mark.integration

ACTOR = {"X-Actor": "rm-0042"}
CHANNELS = ["sms", "email", "phone"]
OFFERED = "WM-GROWTH"
MIN_ASSETS = Decimal(5000)
BUDGET = Decimal("12000.00")
DAY = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
"""When the gateway says the messages went out; opens and replies follow on later days."""
CONTACT_NEEDED = {"sms": "phone", "phone": "phone", "email": "email"}


@pytest.fixture
async def service(
    crm_servers: Servers, tmp_path: Path, unique_name: Callable[[str], str]
) -> AsyncIterator[tuple[CampaignService, httpx.AsyncClient]]:
    settings = CampaignSettings(
        kafka_bootstrap=crm_servers.kafka_bootstrap,
        mongo_uri=crm_servers.mongo_uri,
        data_dir=tmp_path,
        namespace=unique_name("ns")[:40],
    )
    campaign_service = bootstrap(settings)
    async with (
        serving(create_app(campaign_service)) as url,
        httpx.AsyncClient(base_url=url, headers=ACTOR, timeout=30) as client,
    ):
        yield campaign_service, client
    cleaner: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(crm_servers.mongo_uri)
    await cleaner.drop_database(settings.mongo_database("campaign"))
    await cleaner.close()


# The bank's customers ----------------------------------------------------------------------


@dataclass
class Customer:
    """One simulated customer, re-keyed for this run, with what targeting looks at."""

    customer_id: str
    source: SimulatedCustomer
    branch_id: str
    status: str
    tier: str | None
    contactable: bool
    opted_out: set[str]
    merged_into: str | None
    savings: Decimal
    holds_offered: bool

    @property
    def band(self) -> str:
        return self.source.value_band.value

    def usable(self, channel: str) -> bool:
        return channel not in self.opted_out and self.contactable


def bank(suffix: str) -> list[Customer]:
    customers = []
    for i, c in enumerate(population(11, 300)):
        corporate = c.is_organisation and c.value_band.value == "medium" and i % 3 == 0
        customers.append(
            Customer(
                customer_id=f"C{suffix}{i:04d}",
                source=c,
                branch_id=f"{c.branch_id}-{suffix}",
                status="churned" if i % 19 == 0 else "dormant" if i % 10 == 3 else "active",
                tier=CorporateTier.EXIT.value
                if corporate
                else (c.corporate_tier.value if c.corporate_tier else None),
                contactable=i % 17 != 0,
                opted_out={
                    ch for ch, n in (("sms", 7), ("email", 11), ("phone", 13)) if i % n == 0
                },
                merged_into=f"C{suffix}{i - 1:04d}" if i % 29 == 1 else None,
                savings=Decimal((i * 7919) % 200_000),
                holds_offered=i % 6 == 0,
            )
        )
    return customers


@dataclass
class Streams:
    """Records of several producers, with contiguous versions per aggregate."""

    records: list[tuple[str, KafkaRecord]] = field(default_factory=list)
    versions: Counter[str] = field(default_factory=Counter)

    def add(
        self,
        service: Service,
        aggregate_id: str,
        payload: EventPayload,
        time: datetime | None = None,
    ) -> tuple[str, KafkaRecord]:
        self.versions[aggregate_id] += 1
        envelope = Envelope.new(
            payload, aggregate_id, self.versions[aggregate_id], actor="upstream-test",
            source=service.source, time=time,
        )  # fmt: skip
        record = (topic_for(payload.event_type).name, to_kafka(envelope))
        self.records.append(record)
        return record


def customer_events(customers: list[Customer], streams: Streams) -> None:
    crm, core = Service.CUSTOMER, Service.CORE_BANKING
    for c in customers:
        s = c.source
        streams.add(crm, c.customer_id, cu.CustomerRegistered(
            customer_type=s.customer_type, name=s.name, status=cu.CustomerStatus.ACTIVE,
            id_documents=list(s.id_documents), birth_date=s.birth_date,
            phone=s.phone if c.contactable else None, email=s.email if c.contactable else None,
            address=s.address if c.contactable else None, occupation=s.occupation,
            industry=s.industry, branch_id=c.branch_id, preferred_channel=s.preferred_channel,
        ))  # fmt: skip
        tier = CorporateTier(c.tier) if c.tier else None
        streams.add(crm, c.customer_id, cu.CustomerSegmentChanged(
            value_band=s.value_band, corporate_tier=tier, reason="annual review"))  # fmt: skip
        streams.add(crm, c.customer_id, cu.RelationshipManagerAssigned(
            manager_id=s.manager_id, branch_id=c.branch_id))  # fmt: skip
        if c.status != "active":
            streams.add(crm, c.customer_id, cu.CustomerStatusChanged(
                previous_status=cu.CustomerStatus.ACTIVE, status=cu.CustomerStatus(c.status),
                reason="no activity"))  # fmt: skip
        for channel in sorted(c.opted_out):
            streams.add(crm, c.customer_id, cu.ConsentChanged(
                channel=Channel(channel), opted_in=False, reason="asked"))  # fmt: skip
        if c.merged_into:
            streams.add(crm, c.customer_id, cu.CustomerMergedInto(
                survivor_customer_id=c.merged_into, reason="same person"))  # fmt: skip
        accounts = [(f"SAV-{c.customer_id}", "SAV-1", cb.ProductType.SAVINGS, c.savings)]
        if c.holds_offered:
            accounts.append((f"WM-{c.customer_id}", OFFERED, cb.ProductType.WEALTH_MANAGEMENT,
                             Decimal(100_000)))  # fmt: skip
        for number, code, kind, balance in accounts:
            streams.add(core, number, cb.AccountOpened(
                customer_id=c.customer_id, product_code=code, product_name=code,
                product_type=kind, currency="CNY", branch_id=c.branch_id,
                opened_on=date(2025, 6, 1)))  # fmt: skip
            streams.add(core, number, cb.HoldingBalanceChanged(
                customer_id=c.customer_id, product_type=kind, previous_balance=cny(0),
                balance=cny(balance), changed_at=datetime(2025, 6, 1, tzinfo=UTC)))  # fmt: skip


def cny(amount: Decimal | int) -> Money:
    return Money(amount=Decimal(amount), currency="CNY")


# What the campaign should do, computed from the data ----------------------------------------


@dataclass(frozen=True)
class Expected:
    targets: dict[str, dict[str, Any]]
    excluded: dict[str, int]


def expected_selection(customers: list[Customer], left_out_branch: str) -> Expected:
    targets: dict[str, dict[str, Any]] = {}
    excluded: Counter[str] = Counter()
    merged = {c.merged_into: c for c in customers if c.merged_into}
    for c in sorted(customers, key=lambda c: c.customer_id):
        if c.band not in ("high", "medium") or c.branch_id == left_out_branch:
            continue
        duplicate = merged.get(c.customer_id)  # its accounts are the survivor's
        holds_offered = c.holds_offered or (duplicate is not None and duplicate.holds_offered)
        savings = c.savings + (duplicate.savings if duplicate else 0)
        if holds_offered or savings < MIN_ASSETS:
            continue
        if c.merged_into:
            excluded["duplicate"] += 1
        elif c.status == "churned":
            excluded["churned"] += 1
        elif c.tier in ("restricted", "exit"):
            excluded["restricted_tier"] += 1
        else:
            preferred = c.source.preferred_channel.value
            order = [preferred] * (preferred in CHANNELS) + [
                ch for ch in CHANNELS if ch != preferred
            ]
            usable = [ch for ch in order if c.usable(ch)]
            if usable:
                targets[c.customer_id] = {"channel": usable[0], "band": c.band,
                                          "manager": c.source.manager_id}  # fmt: skip
            elif c.opted_out & set(CHANNELS):
                excluded["opted_out"] += 1
            else:
                excluded["no_contact_details"] += 1
    return Expected(targets, dict(excluded))


@dataclass
class Outcome:
    """What each target reached, as the test sends it."""

    reached: dict[str, dict[str, datetime]] = field(default_factory=lambda: defaultdict(dict))
    revenue: dict[str, Decimal] = field(default_factory=dict)
    opt_outs: set[tuple[str, str]] = field(default_factory=set)

    def reach(self, customer: str, stage: str, moment: datetime) -> None:
        self.reached[customer].setdefault(stage, moment)


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


async def produce(bootstrap: str, records: Iterable[tuple[str, KafkaRecord]]) -> None:
    producer = reliable_producer(bootstrap)
    await producer.start()
    try:
        sent = [
            await producer.send(topic, value=r.value, key=r.key, headers=r.headers)
            for topic, r in records
        ]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


# The test ------------------------------------------------------------------------------------


async def test_a_campaign_tracked_from_targeting_to_revenue(
    service: tuple[CampaignService, httpx.AsyncClient],
    crm_servers: Servers,
    unique_name: Callable[[str], str],
) -> None:
    campaign_service, client = service
    kafka = crm_servers.kafka_bootstrap
    database = campaign_service.mongo[campaign_service.settings.mongo_database("campaign")]
    suffix = unique_name("")[-8:]
    customers = bank(suffix)
    by_id = {c.customer_id: c for c in customers}
    left_out_branch = f"BR-012-{suffix}"
    expected = expected_selection(customers, left_out_branch)

    # 1. The customer base reaches the audience view.
    streams = Streams()
    customer_events(customers, streams)
    await produce(kafka, streams.records)
    positions = database[f"{AudienceView.name}__positions"]
    await all_applied(positions, Service.CUSTOMER.source, {
        c.customer_id: streams.versions[c.customer_id] for c in customers})  # fmt: skip
    await all_applied(positions, Service.CORE_BANKING.source, {
        key: v for key, v in streams.versions.items() if not key.startswith("C")})  # fmt: skip

    # 2. A campaign is created and scheduled.
    campaign_id = f"CMP-{suffix}"
    owner = f"RM-OWNER-{suffix}"
    branches = sorted({c.branch_id for c in customers} - {left_out_branch})
    draft = {
        "campaign_id": campaign_id, "name": "Spring wealth growth", "kind": "sms",
        "products": [OFFERED], "channels": CHANNELS,
        "target_segments": [{"value_band": "high"}, {"value_band": "medium"}],
        "criteria": {"branch_ids": branches, "products_not_held": [OFFERED],
                     "assets": {"currency": "CNY", "min": str(MIN_ASSETS)}},
        "owner_manager_ids": [owner], "budget": {"amount": str(BUDGET), "currency": "CNY"},
        "planned_start": "2026-03-01", "planned_end": "2026-03-31",
        "attribution_window_days": 30,
    }  # fmt: skip
    created = await client.post("/campaigns", json=draft)
    assert created.status_code == 201, created.text
    schedule = {"starts_at": "2026-03-01T09:00:00+08:00", "ends_at": "2026-03-31T18:00:00+08:00"}
    assert (await client.post(f"/campaigns/{campaign_id}/schedule", json=schedule)).is_success

    # 3. The gateway reports the first messages before the campaign has started: parked.
    targets = sorted(expected.targets)
    messaged = [t for t in targets if expected.targets[t]["channel"] != "phone"]
    gateway, outcome = Streams(), Outcome()
    early = [
        gateway_message(Streams(), outcome, campaign_id, customer, expected, k)[0]
        for k, customer in enumerate(messaged[:15])
    ]
    await produce(kafka, early)
    await counted(database[PARKING_COLLECTION], {"hold": campaign_id}, len(early))

    # 4. The start freezes exactly the target list computed here.
    start = await client.post(f"/campaigns/{campaign_id}/start", json={})
    assert start.status_code == 200, start.text
    started = start.json()
    assert started["targeted"] == len(expected.targets)
    assert started["excluded"] == expected.excluded
    phone_targets = [t for t in targets if expected.targets[t]["channel"] == "phone"]
    assert started["call_lists"] == dict(
        Counter(expected.targets[t]["manager"] for t in phone_targets)
    )
    start_time = datetime.fromisoformat(
        (await client.get(f"/campaigns/{campaign_id}")).json()["started_at"]
    )

    # 5. The gateway reports the rest, some records twice, some sends under two message ids,
    # and a message to a customer who is not a target (dead-lettered).
    for k, customer in enumerate(messaged):
        if k >= 15:
            gateway_message(gateway, outcome, campaign_id, customer, expected, k)
        else:  # the rest of the early messages' story
            gateway_message(gateway, outcome, campaign_id, customer, expected, k, skip_sent=True)
    for k, customer in list(enumerate(messaged))[::9]:  # re-reported under another id
        gateway.add(Service.CHANNEL_GATEWAY, f"MSG-R-{campaign_id}-{customer}", gw.MessageSent(
            campaign_id=campaign_id, customer_id=customer,
            channel=Channel(expected.targets[customer]["channel"]),
            occurred_at=DAY + timedelta(minutes=k)))  # fmt: skip
    stranger = next(c for c in sorted(by_id) if c not in expected.targets)
    gateway.add(Service.CHANNEL_GATEWAY, f"MSG-X-{stranger}", gw.MessageSent(
        campaign_id=campaign_id, customer_id=stranger, channel=Channel.SMS,
        occurred_at=DAY))  # fmt: skip
    records = early + gateway.records + gateway.records[::10]
    await produce(kafka, records)

    # 6. Managers report their calls.
    for k, customer in enumerate(phone_targets):
        stages = ["contacted"] * (k % 3 != 0) + ["responded"] * (k % 4 == 0 and k % 3 != 0)
        for n, stage in enumerate(stages):
            moment = DAY + timedelta(days=1 + n, hours=k % 5)
            report = {"customer_id": customer, "channel": "phone", "stage": stage,
                      "occurred_at": moment.isoformat()}  # fmt: skip
            answer = await client.post(f"/campaigns/{campaign_id}/responses", json=report)
            assert answer.json()["recorded"] is True, answer.text
            outcome.reach(customer, stage, moment)

    # 7. Conversions: won opportunities and offered products opened, in and out of window.
    deals = Streams()
    converting = targets[2::4]
    assert len(converting) >= 21
    won, opened, early_win, double_win, other_campaign = (
        converting[:10], converting[10:14], converting[14:16], converting[16], converting[17]
    )  # fmt: skip
    for n, customer in enumerate([*won, double_win, double_win, other_campaign, *early_win]):
        rank = converting.index(customer)  # both wins of one customer are worth the same
        value = Decimal(10_000 * (rank % 5 + 1))
        opportunity = f"OPP-{suffix}-{n}"
        campaign = "CMP-SOMEONE-ELSE" if customer == other_campaign else None
        deals.add(Service.OPPORTUNITY, opportunity, op.OpportunityCreated(
            customer_id=customer, title="Wealth plan", products=[OFFERED], probability=30,
            expected_value=cny(value), start_date=date(2026, 3, 2),
            expected_close_date=date(2026, 4, 30), manager_id="RM-0001", branch_id="BR-001",
            source=op.LeadSource.CAMPAIGN, campaign_id=campaign))  # fmt: skip
        if rank % 3 == 0:
            deals.add(Service.OPPORTUNITY, opportunity, op.OpportunityExpectedValueChanged(
                customer_id=customer, previous_expected_value=cny(value),
                expected_value=cny(value * 2)))  # fmt: skip
            value *= 2
        when = start_time - timedelta(days=1) if customer in early_win else None
        deals.add(Service.OPPORTUNITY, opportunity, op.OpportunityStageChanged(
            customer_id=customer, previous_stage=op.OpportunityStage.NEGOTIATION,
            stage=op.OpportunityStage.CLOSED_WON, probability=100), time=when)  # fmt: skip
        if customer in (*won, double_win) and customer not in outcome.revenue:
            outcome.revenue[customer] = value
            outcome.reach(customer, "converted", datetime.now(UTC))
    for n, customer in enumerate([*opened, *converting[18:21]]):
        product = OFFERED if customer in opened else "CARD-GOLD"
        deals.add(Service.CORE_BANKING, f"NEW-{suffix}-{n}", cb.AccountOpened(
            customer_id=customer, product_code=product, product_name=product,
            product_type=cb.ProductType.WEALTH_MANAGEMENT, currency="CNY", branch_id="BR-001",
            opened_on=date(2026, 3, 5)))  # fmt: skip
        if product == OFFERED:
            outcome.reach(customer, "converted", datetime.now(UTC))
    await produce(kafka, deals.records)

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
    def count(stage: str, channel: str | None = None) -> int:
        return sum(
            1 for customer, stages in outcome.reached.items()
            if stage in stages and channel in (None, expected.targets[customer]["channel"])
        )  # fmt: skip

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

    daily = (await client.get(f"/campaigns/{campaign_id}/daily", params={"tz": "UTC"})).json()
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
    assert sum(day["reached"].get("converted", 0) for day in daily["days"]) == count("converted")

    listed = (await client.get("/campaigns", params={"owner_manager_id": owner})).json()
    assert [item["campaign_id"] for item in listed["items"]] == [campaign_id]
    assert listed["items"][0]["headline"] == totals
    assert await database[PARKING_COLLECTION].count_documents({"hold": campaign_id}) == 0
    report_funnel(funnel)


def gateway_message(
    gateway: Streams,
    outcome: Outcome,
    campaign_id: str,
    customer: str,
    expected: Expected,
    k: int,
    *,
    skip_sent: bool = False,
) -> list[tuple[str, KafkaRecord]]:
    """One message's story as the gateway reports it; what the target reached."""
    channel = Channel(expected.targets[customer]["channel"])
    message = f"MSG-{campaign_id}-{customer}"
    story: list[tuple[type[EventPayload], str, timedelta]] = [(gw.MessageSent, "sent", timedelta())]
    if k % 10 != 0:
        story.append((gw.MessageDelivered, "delivered", timedelta(minutes=2)))
        if k % 2 == 0:
            story.append((gw.MessageOpened, "opened", timedelta(days=1, hours=k % 7)))
            if k % 3 == 0:
                story.append((gw.MessageResponded, "responded", timedelta(days=2)))
    if k % 16 == 1:
        story.append((gw.RecipientOptedOut, "opted_out", timedelta(days=2, hours=3)))
        outcome.opt_outs.add((customer, channel.value))
    records = []
    for model, stage, after in story:
        moment = DAY + after + timedelta(minutes=k)
        outcome.reach(customer, stage, moment)
        if skip_sent and stage == "sent":
            gateway.versions[message] += 1  # sent before the start, with version 1
            continue
        fields = {"campaign_id": campaign_id, "customer_id": customer, "channel": channel}
        payload = model.model_validate(fields | {"occurred_at": moment})
        records.append(gateway.add(Service.CHANNEL_GATEWAY, message, payload))
    return records


def report_funnel(funnel: dict[str, Any]) -> None:
    """Print the figures (``pytest -s``) for the record."""
    keys = (
        "targeted", "sent", "delivered", "opened_or_contacted", "responded", "converted",
        "opted_out", "response_rate", "conversion_rate", "cost_per_response", "revenue", "roi",
    )  # fmt: skip
    print("\nexcluded", funnel["excluded"])
    for row in [funnel["totals"], *funnel["by_channel"]]:
        print(row["channel"] or "total", {key: row[key] for key in keys})
