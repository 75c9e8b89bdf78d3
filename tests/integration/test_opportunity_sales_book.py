"""The manager's opportunity list, the forecast by close month and the lead sources'
conversion on the genuine MongoDB, whatever the order of events.

Records go straight to the projection engine (no Kafka), so the test decides how the
aggregates' streams interleave, how batches are cut and which records are redelivered
(late, reordered and duplicated events). The expected figures are computed here from the
deals' and leads' descriptions, independently of the service's code.
"""

from __future__ import annotations

import itertools
import random
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from crm_backbone.access import SERVICE_REACHES, Reach, Scope, ServiceRole, Surface
from crm_backbone.book import CUSTOMER_OWNERS, CustomerBook
from crm_backbone.organisation import UNITS
from crm_backbone.projection import Document
from crm_backbone.testing import interleave
from crm_events import opportunity as op
from crm_opportunity.ownership import Book
from crm_opportunity.sales_book import SalesBook
from local_infra.pytest_plugin import Servers
from pymongo import AsyncMongoClient

from tests.integration.test_opportunity_pipeline_view import (
    PROBABILITY,
    Stream,
    money,
    project,
)

pytestmark = pytest.mark.integration

Stage = op.OpportunityStage
WHOLE_BOOK = SERVICE_REACHES[ServiceRole.CRM_SERVICE]
OWNERS = {  # customer -> (manager, branch): what the customer stream said
    "C1": ("RM-A", "BR-1"),
    "C2": ("RM-A", "BR-1"),
    "C3": ("RM-B", "BR-1"),
    "C4": ("RM-C", "BR-2"),
}
REGIONS = {"BR-1": "RG-N", "BR-2": "RG-S"}
PATHS = [  # stage moves after creation
    [],
    ["proposal"],
    ["proposal", "negotiation"],
    ["evaluation", "contract_signed", "closed_won"],
    ["proposal", "closed_lost"],
    ["closed_won"],
]
CLOSED = ("closed_won", "closed_lost")


@dataclass(frozen=True)
class Deal:
    opportunity_id: str
    customer_id: str
    manager_id: str
    branch_id: str
    amount: str
    currency: str
    close: date
    moves: list[str]
    override: int | None
    reassign_to: str | None
    lead_id: str | None

    @property
    def stage(self) -> str:
        return self.moves[-1] if self.moves else "opportunity_created"

    @property
    def probability(self) -> int:
        return self.override if self.override is not None else PROBABILITY[self.stage]

    @property
    def manager(self) -> str:
        return self.reassign_to or self.manager_id

    def events(self, clock: Iterator[int]) -> Stream:
        stream = Stream(self.opportunity_id, clock)
        stream.add(
            op.OpportunityCreated(
                customer_id=self.customer_id,
                title=f"Deal {self.opportunity_id}",
                products=["WM-1"],
                probability=PROBABILITY["opportunity_created"],
                expected_value=money(self.amount, self.currency),
                start_date=date(2026, 10, 1),
                expected_close_date=self.close,
                manager_id=self.manager_id,
                branch_id=self.branch_id,
                source=op.LeadSource.REFERRAL if self.lead_id else op.LeadSource.OTHER,
                lead_id=self.lead_id,
            )
        )
        previous = "opportunity_created"
        for stage in self.moves:
            stream.add(
                op.OpportunityStageChanged(
                    customer_id=self.customer_id,
                    previous_stage=Stage(previous),
                    stage=Stage(stage),
                    probability=PROBABILITY[stage],
                    lost_reason="price" if stage == "closed_lost" else None,
                )
            )
            previous = stage
        if self.override is not None:
            stream.add(
                op.OpportunityProbabilityOverridden(
                    customer_id=self.customer_id,
                    previous_probability=PROBABILITY[self.stage],
                    probability=self.override,
                    reason="judgement",
                )
            )
        if self.reassign_to:
            stream.add(
                op.OpportunityReassigned(
                    customer_id=self.customer_id,
                    manager_id=self.reassign_to,
                    previous_manager_id=self.manager_id,
                )
            )
        return stream


@dataclass(frozen=True)
class Lead:
    lead_id: str
    source: op.LeadSource
    branch_id: str
    fate: str  # captured, qualified, disqualified (after qualifying), dropped, converted
    opportunity_id: str | None

    def events(self, clock: Iterator[int]) -> Stream:
        stream = Stream(self.lead_id, clock)
        stream.add(
            op.LeadCaptured(
                contact_name=f"Prospect {self.lead_id}",
                phone="+86 139 0000 0000",
                source=self.source,
                campaign_id="CMP-1" if self.source is op.LeadSource.CAMPAIGN else None,
                branch_id=self.branch_id,
            )
        )
        if self.fate == "dropped":
            stream.add(op.LeadDisqualified(reason="no budget"))
        if self.fate in ("qualified", "disqualified", "converted"):
            stream.add(op.LeadQualified(customer_id="C1"))
            stream.add(op.LeadAssigned(manager_id="RM-A"))
        if self.fate == "disqualified":
            stream.add(op.LeadDisqualified(reason="moved abroad"))
        if self.fate == "converted":
            assert self.opportunity_id
            stream.add(op.LeadConverted(opportunity_id=self.opportunity_id, customer_id="C1"))
        return stream


def book_of(rng: random.Random) -> tuple[list[Deal], list[Lead]]:
    """Deals and leads drawn at random; converted leads name deals made from them."""
    deals: list[Deal] = []
    leads: list[Lead] = []
    for n in range(40):
        customer = rng.choice(list(OWNERS))
        manager, branch = OWNERS[customer]
        fate = rng.choice(["captured", "qualified", "disqualified", "dropped", "converted"])
        lead_id = f"L{n}"
        converted = fate == "converted"
        deal_id = f"O{n}"
        leads.append(
            Lead(
                lead_id,
                rng.choice(list(op.LeadSource)),
                branch,
                fate,
                deal_id if converted else None,
            )
        )
        if converted or rng.random() < 0.5:
            customer = "C1" if converted else customer
            manager, branch = OWNERS[customer]
            deals.append(
                Deal(
                    deal_id,
                    customer,
                    manager,
                    branch,
                    f"{rng.randrange(1, 10_000_000)}.{rng.randrange(100):02d}",
                    rng.choice(["CNY", "CNY", "USD"]),
                    date(2026, rng.choice([11, 12]), rng.randrange(1, 29))
                    if rng.random() < 0.6
                    else date(2027, rng.randrange(1, 4), rng.randrange(1, 29)),
                    rng.choice(PATHS),
                    rng.choice([None, None, 35]),
                    rng.choice([None, None, "RM-B"]),
                    lead_id if converted else None,
                )
            )
    return deals, leads


def open_deals(deals: list[Deal]) -> list[Deal]:
    return [d for d in deals if d.stage not in CLOSED]


def expected_forecast(deals: list[Deal], group: str) -> dict[str, Any]:
    """month -> (total, {group: figures}), figures as (count, value, weighted) per currency."""

    def figures() -> dict[str, Any]:
        return {"count": 0, "value": defaultdict(Decimal), "weighted": defaultdict(Decimal)}

    months: dict[str, Any] = defaultdict(lambda: (figures(), defaultdict(figures)))
    for deal in open_deals(deals):
        key = {
            "manager": deal.manager,
            "branch": deal.branch_id,
            "region": REGIONS[deal.branch_id],
        }[group]
        total, groups = months[deal.close.isoformat()[:7]]
        for into in (total, groups[key]):
            value = Decimal(deal.amount)
            into["count"] += 1
            into["value"][deal.currency] += value
            into["weighted"][deal.currency] += value * deal.probability / 100
    return months


def assert_figures(actual: dict[str, Any], expected: dict[str, Any]) -> None:
    assert actual["count"] == expected["count"]
    assert {c: Decimal(a) for c, a in actual["expected_value"].items()} == dict(expected["value"])
    assert {c: Decimal(a) for c, a in actual["weighted_value"].items()} == dict(
        expected["weighted"]
    )


def rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def expected_sources(leads: list[Lead], deals: list[Deal]) -> dict[str, dict[str, Any]]:
    stage_of = {d.opportunity_id: d.stage for d in deals}
    rows: dict[str, dict[str, Any]] = {}
    for source in op.LeadSource:
        mine = [lead for lead in leads if lead.source is source]
        if not mine:
            continue
        qualified = sum(lead.fate in ("qualified", "disqualified", "converted") for lead in mine)
        converted = [lead for lead in mine if lead.fate == "converted"]
        won = sum(stage_of[lead.opportunity_id or ""] == "closed_won" for lead in converted)
        rows[source.value] = {
            "source": source.value,
            "leads": len(mine),
            "qualified": qualified,
            "converted": len(converted),
            "won": won,
            "qualification_rate": rate(qualified, len(mine)),
            "conversion_rate": rate(len(converted), len(mine)),
            "win_rate": rate(won, len(converted)),
        }
    return rows


@pytest.fixture
async def client(crm_servers: Servers) -> AsyncIterator[AsyncMongoClient[Document]]:
    mongo: AsyncMongoClient[Document] = AsyncMongoClient(crm_servers.mongo_uri, tz_aware=True)
    yield mongo
    await mongo.close()


def manager_reach(manager_id: str) -> Reach:
    scope = Scope("manager", frozenset({manager_id}))
    return Reach(scope, frozenset({Surface.BOOK}), may_read=True, may_write=True, masked=False)


async def read_everything(sales: SalesBook) -> dict[str, Any]:
    every, rm_a = WHOLE_BOOK, manager_reach("RM-A")
    pages: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = await sales.opportunity_list(rm_a, limit=7, cursor=cursor)
        pages += [item.model_dump(mode="json") for item in page.items]
        if (cursor := page.next_cursor) is None:
            break
    return {
        "forecast": {
            group: (await sales.forecast(every, group)).model_dump()
            for group in ("manager", "branch", "region")
        },
        "forecast_rm_a": (await sales.forecast(rm_a, "manager")).model_dump(),
        "forecast_window": (
            await sales.forecast(every, "branch", "2026-12", "2027-01")
        ).model_dump(),
        "list_rm_a": pages,
        "proposals_december": [
            item.opportunity_id
            for item in (
                await sales.opportunity_list(
                    every, stage=Stage.PROPOSAL, close_month="2026-12", limit=500
                )
            ).items
        ],
        "sources": (await sales.lead_sources(every)).model_dump(mode="json"),
        "sources_br2": (await sales.lead_sources(every, "BR-2")).model_dump(mode="json"),
    }


async def test_list_forecast_and_lead_sources_whatever_order_and_redelivery(
    client: AsyncMongoClient[Document], mongo_database: str
) -> None:
    deals, leads = book_of(random.Random(16))
    clock = itertools.count()
    streams = [d.events(clock) for d in deals] + [lead.events(clock) for lead in leads]
    outcomes: list[dict[str, Any]] = []
    for seed in range(4):
        rng = random.Random(seed)
        database = client[f"{mongo_database}_{seed}"]
        try:
            await database[CUSTOMER_OWNERS].insert_many(
                [{"_id": c, "manager_id": m, "branch_id": b} for c, (m, b) in OWNERS.items()]
            )
            await database[UNITS].insert_many(
                [{"_id": b, "kind": "branch", "region_id": r} for b, r in REGIONS.items()]
            )
            await project(database, interleave([s.records for s in streams], rng), rng)
            outcomes.append(
                await read_everything(SalesBook(database, Book(CustomerBook(database))))
            )
        finally:
            await client.drop_database(database.name)
    assert all(outcome == outcomes[0] for outcome in outcomes[1:])
    result = outcomes[0]

    for group in ("manager", "branch", "region"):
        expected = expected_forecast(deals, group)
        months = result["forecast"][group]["months"]
        assert [m["month"] for m in months] == sorted(expected)
        for month in months:
            total, groups = expected[month["month"]]
            assert_figures(month["total"], total)
            assert set(month["by_group"]) == set(groups)
            for key, figures in groups.items():
                assert_figures(month["by_group"][key], figures)

    own = [d for d in deals if OWNERS[d.customer_id][0] == "RM-A"]
    own_forecast = expected_forecast(own, "manager")
    assert [m["month"] for m in result["forecast_rm_a"]["months"]] == sorted(own_forecast)
    for month in result["forecast_rm_a"]["months"]:
        assert_figures(month["total"], own_forecast[month["month"]][0])
    window = expected_forecast(
        [d for d in deals if "2026-12" <= d.close.isoformat()[:7] <= "2027-01"], "branch"
    )
    assert [m["month"] for m in result["forecast_window"]["months"]] == sorted(window)

    by_close = sorted(own, key=lambda d: (d.close, d.opportunity_id))
    listed = result["list_rm_a"]
    assert [item["opportunity_id"] for item in listed] == [d.opportunity_id for d in by_close]
    for item, deal in zip(listed, by_close, strict=True):
        assert (item["stage"], item["manager_id"], item["probability"]) == (
            deal.stage,
            deal.manager,
            deal.probability,
        )
        value = Decimal(deal.amount)
        assert Decimal(item["expected_value"]["amount"]) == value
        assert Decimal(item["weighted_value"]["amount"]) == value * deal.probability / 100
    assert result["proposals_december"] == [
        d.opportunity_id
        for d in sorted(deals, key=lambda d: (d.close, d.opportunity_id))
        if d.stage == "proposal" and d.close.isoformat()[:7] == "2026-12"
    ]

    sources = expected_sources(leads, deals)
    assert result["sources"]["sources"] == [
        sources[s.value] for s in op.LeadSource if s.value in sources
    ]
    in_br2 = expected_sources([lead for lead in leads if lead.branch_id == "BR-2"], deals)
    assert result["sources_br2"]["sources"] == [
        in_br2[s.value] for s in op.LeadSource if s.value in in_br2
    ]
    assert any(row["won"] for row in sources.values())  # the draw exercises every figure
