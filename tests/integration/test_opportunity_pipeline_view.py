"""The pipeline, lead queue and SLA board on the genuine MongoDB, whatever the order of events.

Records go straight to the projection engine (no Kafka), so the test decides how the
aggregates' streams interleave, how batches are cut and which records are redelivered.
The expected pipeline is computed here from the deals' descriptions, independently of the
service's code.
"""

from __future__ import annotations

import itertools
import random
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from crm_backbone.access import SERVICE_REACHES, ServiceRole
from crm_backbone.book import CUSTOMER_OWNERS, CustomerBook
from crm_backbone.projection import Document, ProjectionEngine
from crm_backbone.testing import InMemoryRecord, NoDeadLetters, interleave
from crm_events import opportunity as op
from crm_events.common import Channel, Money
from crm_events.envelope import Envelope
from crm_events.registry import EventPayload
from crm_events.topics import Service
from crm_opportunity.ownership import Book
from crm_opportunity.queries import OpportunityQueries, OpportunityView
from crm_opportunity.views import OpportunityViews
from local_infra.pytest_plugin import Servers
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
Stage = op.OpportunityStage
FUNNEL = [
    "lead",
    "opportunity_created",
    "proposal",
    "evaluation",
    "negotiation",
    "contract_signed",
    "implementation",
    "closed_won",
]
WHOLE_BOOK = SERVICE_REACHES[ServiceRole.CRM_SERVICE]
"""The service's own reach: every record (scoping: ``test_opportunity_scope.py``)."""
PROBABILITY = dict(
    zip([*FUNNEL, "closed_lost"], [10, 20, 40, 60, 80, 95, 100, 100, 0], strict=True)
)


@dataclass
class Stream:
    """One aggregate's events, with contiguous versions and increasing times."""

    aggregate_id: str
    clock: Iterator[int]
    records: list[InMemoryRecord] = field(default_factory=list)

    def add(self, payload: EventPayload) -> None:
        envelope = Envelope.new(
            payload,
            self.aggregate_id,
            len(self.records) + 1,
            actor="rm-test",
            source=Service.OPPORTUNITY.source,
            time=T0 + timedelta(minutes=next(self.clock)),
        )
        self.records.append(InMemoryRecord.of(envelope, len(self.records)))


@dataclass(frozen=True)
class Deal:
    """An opportunity's life: created, moved, then possibly revalued, overridden, reassigned."""

    opportunity_id: str
    manager_id: str
    branch_id: str
    products: list[str]
    amount: str
    currency: str
    moves: list[str] = field(default_factory=list)
    start: str = "opportunity_created"
    new_amount: str | None = None
    override: int | None = None
    reassign_to: str | None = None

    @property
    def stage(self) -> str:
        return self.moves[-1] if self.moves else self.start

    def events(self, clock: Iterator[int]) -> Stream:
        stream, customer = Stream(self.opportunity_id, clock), "C1"
        stream.add(
            op.OpportunityCreated(
                customer_id=customer,
                title=f"Deal {self.opportunity_id}",
                products=self.products,
                stage=Stage(self.start),
                probability=PROBABILITY[self.start],
                expected_value=money(self.amount, self.currency),
                start_date=date(2026, 11, 1),
                expected_close_date=date(2027, 3, 31),
                manager_id=self.manager_id,
                branch_id=self.branch_id,
                source=op.LeadSource.RELATIONSHIP_MANAGER,
            )
        )
        previous = self.start
        for stage in self.moves:
            lost = "price" if stage == "closed_lost" else None
            stream.add(
                op.OpportunityStageChanged(
                    customer_id=customer,
                    previous_stage=Stage(previous),
                    stage=Stage(stage),
                    probability=PROBABILITY[stage],
                    lost_reason=lost,
                )
            )
            previous = stage
        if self.new_amount is not None:
            stream.add(
                op.OpportunityExpectedValueChanged(
                    customer_id=customer,
                    previous_expected_value=money(self.amount, self.currency),
                    expected_value=money(self.new_amount, self.currency),
                )
            )
        if self.override is not None:
            stream.add(
                op.OpportunityProbabilityOverridden(
                    customer_id=customer,
                    previous_probability=PROBABILITY[self.stage],
                    probability=self.override,
                    reason="manager's judgement",
                )
            )
        if self.reassign_to is not None:
            stream.add(
                op.OpportunityReassigned(
                    customer_id=customer,
                    manager_id=self.reassign_to,
                    previous_manager_id=self.manager_id,
                )
            )
        return stream


DEALS = [
    Deal("O1", "RM-A", "BR-1", ["WM-1"], "200000.00", "CNY", ["proposal", "negotiation"]),
    Deal("O2", "RM-A", "BR-1", ["ML-30", "INS-1"], "1200000", "CNY", ["proposal"], override=55),
    Deal(
        "O3",
        "RM-B",
        "BR-1",
        ["WM-1"],
        "50000.50",
        "USD",
        ["evaluation", "contract_signed", "closed_won"],
    ),
    Deal("O4", "RM-B", "BR-2", ["ML-30"], "300000", "CNY", ["proposal", "closed_lost"]),
    Deal("O5", "RM-C", "BR-2", ["FX-1"], "10000", "USD", new_amount="12500.25", reassign_to="RM-A"),
    Deal("O6", "RM-C", "BR-2", ["WM-1"], "75000", "CNY", ["opportunity_created"], start="lead"),
    Deal(
        "O7",
        "RM-C",
        "BR-1",
        ["WM-1"],
        "99.99",
        "CNY",
        ["negotiation"],
        override=10,
        new_amount="120.01",
    ),
]


def money(amount: str, currency: str) -> Money:
    return Money(amount=Decimal(amount), currency=currency)


def leads_and_needs(clock: Iterator[int]) -> list[Stream]:
    def lead(lead_id: str, branch_id: str, *after: EventPayload) -> Stream:
        stream = Stream(lead_id, clock)
        stream.add(
            op.LeadCaptured(
                contact_name=f"Prospect {lead_id}",
                phone="+86 139 0000 0000",
                source=op.LeadSource.WALK_IN,
                branch_id=branch_id,
            )
        )
        for payload in after:
            stream.add(payload)
        return stream

    def complaint(need_id: str, customer: str, due_in: timedelta, *after: EventPayload) -> Stream:
        stream = Stream(need_id, clock)
        stream.add(
            op.NeedLogged(
                customer_id=customer,
                kind=op.NeedKind.COMPLAINT,
                summary=f"Complaint {need_id}",
                content="...",
                severity=op.Severity.HIGH,
                urgency=op.Urgency.HIGH,
                channel=Channel.PHONE,
                started_at=NOW - timedelta(days=1),
                sla_due_at=NOW + due_in,
            )
        )
        for payload in after:
            stream.add(payload)
        return stream

    return [
        lead("L1", "BR-1"),
        lead("L2", "BR-1", op.LeadQualified(customer_id="C1"), op.LeadAssigned(manager_id="RM-A")),
        lead("L3", "BR-1", op.LeadDisqualified(reason="no budget")),
        lead(
            "L4",
            "BR-2",
            op.LeadQualified(customer_id="C2"),
            op.LeadAssigned(manager_id="RM-B"),
            op.LeadConverted(opportunity_id="O9", customer_id="C2"),
        ),
        complaint(
            "N1", "C1", timedelta(hours=2), op.NeedAssigned(customer_id="C1", manager_id="RM-A")
        ),
        complaint("N2", "C1", -timedelta(hours=1)),
        complaint("N3", "C2", timedelta(days=3)),
        complaint(
            "N4",
            "C1",
            timedelta(hours=1),
            op.NeedResolved(
                customer_id="C1", resolution="refunded", resolved_at=NOW - timedelta(hours=2)
            ),
        ),
        complaint(
            "N5",
            "C2",
            -timedelta(hours=5),
            op.NeedResolved(
                customer_id="C2", resolution="refunded", resolved_at=NOW - timedelta(hours=6)
            ),
            op.NeedStatusChanged(
                customer_id="C2",
                previous_status=op.NeedStatus.RESOLVED,
                status=op.NeedStatus.REOPENED,
                sub_status="not received",
            ),
        ),
    ]


def streams() -> list[Stream]:
    clock = itertools.count()
    return [deal.events(clock) for deal in DEALS] + leads_and_needs(clock)


async def project(
    database: AsyncDatabase[Document], records: list[InMemoryRecord], rng: random.Random
) -> None:
    """Apply ``records`` in random batches; part of them is delivered twice."""
    engine = ProjectionEngine(OpportunityViews(), database, NoDeadLetters(), "test")
    await engine.setup()
    cut = rng.randrange(len(records))
    again = rng.randrange(cut + 1)
    for part in (records[:cut], records[again:]):  # records[again:cut] come back
        start = 0
        while start < len(part):
            size = rng.choice([1, 2, 5, 17, 1000])
            await engine.process(part[start : start + size])
            start += size


def expected_pipeline() -> dict[str, Any]:
    """The pipeline as a bank analyst would compute it from the deals."""

    def figures() -> dict[str, Any]:
        return {"count": 0, "value": defaultdict(Decimal), "weighted": defaultdict(Decimal)}

    totals = figures()
    by: dict[str, dict[str, Any]] = defaultdict(lambda: defaultdict(figures))
    reached: dict[str, int] = defaultdict(int)

    def add(into: dict[str, Any], value: Decimal, currency: str, probability: int) -> None:
        into["count"] += 1
        into["value"][currency] += value
        into["weighted"][currency] += value * probability / 100

    for deal in DEALS:
        stage = deal.stage
        value = Decimal(deal.new_amount or deal.amount)
        probability = deal.override if deal.override is not None else PROBABILITY[stage]
        add(by["stage"][stage], value, deal.currency, probability)
        furthest = max(FUNNEL.index(s) for s in [deal.start, *deal.moves] if s in FUNNEL)
        for s in FUNNEL[: furthest + 1]:
            reached[s] += 1
        if stage == "closed_lost":
            reached["closed_lost"] += 1
        if stage in ("closed_won", "closed_lost"):
            continue
        add(totals, value, deal.currency, probability)
        add(by["manager"][deal.reassign_to or deal.manager_id], value, deal.currency, probability)
        add(by["branch"][deal.branch_id], value, deal.currency, probability)
        for product in deal.products:
            add(by["product"][product], value, deal.currency, probability)
    return {"open": totals, "by": by, "reached": reached}


def decimals(amounts: dict[str, str]) -> dict[str, Decimal]:
    return {currency: Decimal(amount) for currency, amount in amounts.items()}


def assert_figures(actual: dict[str, Any], expected: dict[str, Any]) -> None:
    assert actual["count"] == expected["count"]
    assert decimals(actual["expected_value"]) == dict(expected["value"])
    assert decimals(actual["weighted_value"]) == dict(expected["weighted"])


@pytest.fixture
async def client(crm_servers: Servers) -> AsyncIterator[AsyncMongoClient[Document]]:
    mongo: AsyncMongoClient[Document] = AsyncMongoClient(crm_servers.mongo_uri, tz_aware=True)
    yield mongo
    await mongo.close()


async def test_the_views_are_the_same_whatever_order_and_redelivery(
    client: AsyncMongoClient[Document], mongo_database: str
) -> None:
    all_streams = streams()
    outcomes: list[dict[str, Any]] = []
    for seed in range(5):
        rng = random.Random(seed)
        database = client[f"{mongo_database}_{seed}"]
        try:
            await database[CUSTOMER_OWNERS].insert_many(  # what the customer stream said
                [{"_id": "C1", "branch_id": "BR-1"}, {"_id": "C2", "branch_id": "BR-2"}]
            )
            await project(database, interleave([s.records for s in all_streams], rng), rng)
            book = Book(CustomerBook(database))
            queries = OpportunityQueries(database, book, due_soon_hours=24, now=lambda: NOW)
            every = WHOLE_BOOK
            outcomes.append(
                {
                    "pipeline": (await queries.pipeline(every)).model_dump(),
                    "by_manager_a": (await queries.pipeline(every, manager_id="RM-A")).model_dump(),
                    "wm": (await queries.pipeline(every, product="WM-1")).model_dump(),
                    "o2": await queries.opportunity(every, "O2"),
                    "queue": (await queries.lead_queue(every, "BR-1")).model_dump(),
                    "board": (await queries.sla_board(every)).model_dump(),
                    "board_br2": (await queries.sla_board(every, "BR-2")).model_dump(),
                }
            )
        finally:
            await client.drop_database(database.name)
    assert all(outcome == outcomes[0] for outcome in outcomes[1:])
    result = outcomes[0]

    expected = expected_pipeline()
    pipeline = result["pipeline"]
    assert_figures(pipeline["open"], expected["open"])
    for name, key in [
        ("stage", "by_stage"),
        ("manager", "by_manager"),
        ("branch", "by_branch"),
        ("product", "by_product"),
    ]:
        assert set(pipeline[key]) == set(expected["by"][name]), key
        for group, figures in expected["by"][name].items():
            assert_figures(pipeline[key][group], figures)
    conversion = {step["stage"]: step for step in pipeline["conversion"]}
    for stage, step in conversion.items():
        assert step["reached"] == expected["reached"][stage], stage
    assert conversion["proposal"]["reached_next"] == expected["reached"]["evaluation"]
    assert pipeline["closed_lost"] == 1
    # Spot checks against figures worked by hand.
    # O1 200000.00 x 80% + O2 1200000 x 55% + O6 75000 x 20% + O7 120.01 x 10%
    assert pipeline["open"]["weighted_value"]["CNY"] == "835012.0010"
    assert pipeline["by_stage"]["closed_won"]["weighted_value"] == {"USD": "50000.5000"}
    assert pipeline["by_manager"]["RM-A"]["expected_value"] == {
        "CNY": "1400000.00",
        "USD": "12500.25",
    }

    manager_a = result["by_manager_a"]
    assert set(manager_a["by_manager"]) == {"RM-A"}
    assert manager_a["open"]["count"] == 3
    assert set(result["wm"]["by_product"]) == {"WM-1"}
    assert result["wm"]["open"]["count"] == 3  # O1, O6, O7; O3 is won

    o2: OpportunityView = result["o2"]
    assert (o2.version, o2.stage, o2.probability) == (3, "proposal", 55)
    assert o2.probability_reason == "manager's judgement"
    assert o2.weighted_value == {"amount": "660000.00", "currency": "CNY"}
    assert o2.stages_reached == ["lead", "opportunity_created", "proposal"]

    queue = result["queue"]
    assert [item["lead_id"] for item in queue["items"]] == ["L1", "L2"]  # oldest first
    assert queue["open"] == 2
    assert queue["items"][1]["manager_id"] == "RM-A"

    board = result["board"]
    assert [c["need_id"] for c in board["breached"]] == ["N5", "N2"]  # N5 reopened
    assert [c["need_id"] for c in board["due_soon"]] == ["N1"]
    assert [c["need_id"] for c in board["on_track"]] == ["N3"]
    assert board["open"] == 4
    assert board["due_soon"][0]["owner_id"] == "RM-A"
    assert board["due_soon"][0]["hours_left"] == 2.0
    assert [c["need_id"] for c in result["board_br2"]["breached"]] == ["N5"]
    assert [c["need_id"] for c in result["board_br2"]["on_track"]] == ["N3"]
