"""Reading the opportunity service's views: an opportunity, the pipeline, queues and boards.

Figures across opportunities are aggregated by MongoDB when asked, from one document per
opportunity: exact under redelivery and whatever order the aggregates' events arrive in,
since nothing is counted as events pass. Amounts are Decimal128 in MongoDB (exact sums)
and decimal strings per currency in the answers.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from bson.decimal128 import Decimal128
from crm_backbone.access import Reach, as_shown
from crm_backbone.book import CUSTOMER_OWNERS
from crm_backbone.projection import Document
from crm_backbone.readmodel import document_version, wait_until_applied
from crm_events.opportunity import NeedKind
from crm_events.topics import Service
from pydantic import BaseModel, Field
from pymongo.asynchronous.database import AsyncDatabase

from crm_opportunity.domain.opportunity import FUNNEL
from crm_opportunity.ownership import LEAD_PERSONAL, OPPORTUNITY_PERSONAL, Book
from crm_opportunity.views import LEAD_QUEUE_ORDER, LEADS, NEEDS, OPPORTUNITIES, OpportunityViews

SOURCE = Service.OPPORTUNITY.source

Amounts = dict[str, str]
"""Currency -> exact decimal amount as text."""


class Figures(BaseModel):
    count: int = Field(default=0, description="Opportunities")
    expected_value: Amounts = Field(default={}, description="Σ expected value, per currency")
    weighted_value: Amounts = Field(
        default={}, description="Σ expected value * probability / 100, per currency"
    )


class StageConversion(BaseModel):
    stage: str
    reached: int = Field(description="Opportunities that ever reached the stage")
    next_stage: str | None
    reached_next: int | None = Field(description="Of them, those that reached the next")
    rate: float | None = Field(description="reached_next / reached, 4 decimals")


class Pipeline(BaseModel):
    """The sales pipeline of the opportunities matching the filters."""

    manager_id: str | None
    branch_id: str | None
    product: str | None
    open: Figures = Field(description="Open opportunities (not closed won or lost)")
    by_stage: dict[str, Figures] = Field(description="Every stage, closed ones included")
    by_manager: dict[str, Figures] = Field(description="Open opportunities per manager")
    by_branch: dict[str, Figures] = Field(description="Open opportunities per branch")
    by_product: dict[str, Figures] = Field(
        description="Open opportunities per product; one of several products counts fully"
    )
    conversion: list[StageConversion] = Field(description="The funnel, stage to next stage")
    closed_lost: int = Field(description="Opportunities closed lost")


class OpportunityView(BaseModel):
    opportunity_id: str
    version: int = Field(description="Opportunity events applied (for read-your-writes)")
    customer_id: str
    title: str
    products: list[str]
    description: str | None
    sales_method: str | None
    stage: str
    open: bool
    stages_reached: list[str] = Field(description="In funnel order; closed_lost last")
    probability: int
    probability_reason: str | None = Field(default=None, description="Why a manager overrode it")
    expected_value: dict[str, str]
    weighted_value: dict[str, str]
    start_date: str
    expected_close_date: str
    manager_id: str
    branch_id: str
    source: str
    lead_id: str | None
    campaign_id: str | None
    contacts: list[str]
    working_group: list[str]
    competitors: list[str]
    lost_reason: str | None = None
    created_at: datetime
    stage_since: datetime | None = None
    updated_at: datetime


class QueuedLead(BaseModel):
    lead_id: str
    contact_name: str
    phone: str | None = None
    email: str | None = None
    customer_id: str | None = None
    source: str
    campaign_id: str | None = None
    products_of_interest: list[str]
    status: str
    manager_id: str | None = None
    notes: str | None = None
    captured_at: datetime


class LeadQueue(BaseModel):
    branch_id: str
    open: int = Field(description="Open leads in the branch (captured or qualified)")
    items: list[QueuedLead] = Field(description="Oldest first")


class ComplaintItem(BaseModel):
    need_id: str
    customer_id: str
    branch_id: str | None = Field(
        default=None, description="The customer's branch; null while unknown"
    )
    summary: str
    severity: str
    urgency: str
    status: str
    sub_status: str | None = None
    owner_id: str | None = None
    started_at: datetime
    sla_due_at: datetime
    hours_left: float = Field(description="Until the SLA is due; negative once breached")


class SlaBoard(BaseModel):
    as_of: datetime
    branch_id: str | None
    due_soon_hours: int
    open: int = Field(description="Complaints being worked on")
    breached: list[ComplaintItem] = Field(description="Past their SLA due time")
    due_soon: list[ComplaintItem] = Field(description="Due within due_soon_hours")
    on_track: list[ComplaintItem]


class OpportunityQueries:
    """Read side of the opportunity service: every query is of one caller's reach, and
    narrowed to it in MongoDB (``crm_opportunity.ownership``)."""

    def __init__(
        self,
        database: AsyncDatabase[Document],
        book: Book,
        *,
        due_soon_hours: int = 24,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.opportunities = database[OPPORTUNITIES]
        self.leads = database[LEADS]
        self.needs = database[NEEDS]
        self.book = book
        self.positions = database[f"{OpportunityViews.name}__positions"]
        self.due_soon_hours = due_soon_hours
        self.now = now

    async def wait_for(self, aggregate_id: str, version: int, within: float) -> bool:
        """Wait (bounded) until the views have applied ``version`` of the aggregate's events."""
        return await wait_until_applied(self.positions, SOURCE, aggregate_id, version, within)

    async def opportunity(self, reach: Reach, opportunity_id: str) -> OpportunityView | None:
        """The opportunity's view as ``reach`` may see it, if it is there and in reach."""
        query = {"$and": [{"_id": opportunity_id}, await self.book.of_customers(reach)]}
        found = await self.opportunities.find_one(query)
        if found is None:
            return None
        doc = as_shown(reach, found, OPPORTUNITY_PERSONAL)
        value = amount(doc["expected_value"]["amount"])
        currency = doc["expected_value"]["currency"]
        reached = set(doc.get("stages_reached", []))
        fields = {k: v for k, v in doc.items() if k in OpportunityView.model_fields}
        return OpportunityView.model_validate(
            fields
            | {
                "version": document_version(doc, SOURCE, opportunity_id),
                "expected_value": {"amount": _text(value), "currency": currency},
                "weighted_value": {
                    "amount": _text(weighted(value, doc["probability"])),
                    "currency": currency,
                },
                "stages_reached": [s for s in (*FUNNEL, "closed_lost") if s in reached],
            }
        )

    async def pipeline(
        self,
        reach: Reach,
        *,
        manager_id: str | None = None,
        branch_id: str | None = None,
        product: str | None = None,
    ) -> Pipeline:
        match: Document = {}
        if manager_id:
            match["manager_id"] = manager_id
        if branch_id:
            match["branch_id"] = branch_id
        if product:
            match["products"] = product
        open_only = {"$match": {"open": True}}
        one_product = [{"$match": {"products": product}}] if product else []
        facets = {
            "open": [open_only, group_figures(None)],
            "by_stage": [group_figures("$stage")],
            "by_manager": [open_only, group_figures("$manager_id")],
            "by_branch": [open_only, group_figures("$branch_id")],
            "by_product": [
                open_only,
                {"$unwind": "$products"},
                *one_product,
                group_figures("$products"),
            ],
            "reached": [
                {"$unwind": "$stages_reached"},
                {"$group": {"_id": "$stages_reached", "count": {"$sum": 1}}},
            ],
        }
        in_reach = {"$and": [match, await self.book.of_customers(reach)]}
        cursor = await self.opportunities.aggregate([{"$match": in_reach}, {"$facet": facets}])
        result: Document = (await cursor.to_list())[0]
        reached = {row["_id"]: row["count"] for row in result["reached"]}
        return Pipeline(
            manager_id=manager_id,
            branch_id=branch_id,
            product=product,
            open=figures_by(result["open"]).get(None, Figures()),
            by_stage=figures_by(result["by_stage"]),
            by_manager=figures_by(result["by_manager"]),
            by_branch=figures_by(result["by_branch"]),
            by_product=figures_by(result["by_product"]),
            conversion=_conversion(reached),
            closed_lost=reached.get("closed_lost", 0),
        )

    async def lead_queue(self, reach: Reach, branch_id: str, limit: int = 100) -> LeadQueue:
        """The branch's open leads in reach, oldest first."""
        query = {"$and": [{"branch_id": branch_id, "open": True}, await self.book.of_leads(reach)]}
        found = self.leads.find(query).sort(LEAD_QUEUE_ORDER).limit(limit)
        return LeadQueue(
            branch_id=branch_id,
            open=await self.leads.count_documents(query),
            items=[
                QueuedLead.model_validate(as_shown(reach, doc, LEAD_PERSONAL))
                async for doc in found
            ],
        )

    async def sla_board(
        self, reach: Reach, branch_id: str | None = None, due_soon_hours: int | None = None
    ) -> SlaBoard:
        """Open complaints in reach by SLA state at this moment, the most urgent first.

        A complaint's branch is its customer's, as the customer stream last said.
        """
        now, hours = self.now(), due_soon_hours or self.due_soon_hours
        soon = now + timedelta(hours=hours)
        stages: list[Document] = [
            {
                "$match": {
                    "$and": [
                        {"kind": NeedKind.COMPLAINT.value, "open": True},
                        await self.book.of_customers(reach),
                    ]
                }
            },
            {
                "$lookup": {
                    "from": CUSTOMER_OWNERS,
                    "localField": "customer_id",
                    "foreignField": "_id",
                    "as": "customer",
                }
            },
            {"$set": {"branch_id": {"$first": "$customer.branch_id"}}},
        ]
        if branch_id:
            stages.append({"$match": {"branch_id": branch_id}})
        stages.append({"$sort": {"sla_due_at": 1, "_id": 1}})
        board = SlaBoard(
            as_of=now,
            branch_id=branch_id,
            due_soon_hours=hours,
            open=0,
            breached=[],
            due_soon=[],
            on_track=[],
        )
        async for doc in await self.needs.aggregate(stages):
            due: datetime = doc["sla_due_at"]
            item = ComplaintItem.model_validate(
                doc | {"hours_left": round((due - now) / timedelta(hours=1), 2)}
            )
            bucket = board.breached if due <= now else board.due_soon if due <= soon else None
            (board.on_track if bucket is None else bucket).append(item)
            board.open += 1
        return board


def group_figures(key: str | Document | None) -> Document:
    """``$group`` of opportunities by ``key`` and currency: count, Σ value, Σ value * %."""
    return {
        "$group": {
            "_id": {"key": key, "currency": "$expected_value.currency"},
            "count": {"$sum": 1},
            "value": {"$sum": "$expected_value.amount"},
            "weighted": {"$sum": {"$multiply": ["$expected_value.amount", "$probability"]}},
        }
    }


def figures_by(
    rows: Iterable[Document], key: Callable[[Any], Any] = lambda k: k
) -> dict[Any, Figures]:
    """Rows of :func:`group_figures` folded into figures per key (``key`` of the grouped
    value: a hashable one), sorted by key."""
    counts: dict[Any, int] = defaultdict(int)
    values: dict[Any, dict[str, Decimal]] = defaultdict(dict)
    weighted_values: dict[Any, dict[str, Decimal]] = defaultdict(dict)
    for row in rows:
        grouped, currency = key(row["_id"]["key"]), row["_id"]["currency"]
        counts[grouped] += row["count"]
        values[grouped][currency] = amount(row["value"])
        weighted_values[grouped][currency] = amount(row["weighted"]).scaleb(-2)  # Σ v * % / 100
    return {
        grouped: Figures(
            count=counts[grouped],
            expected_value=_texts(values[grouped]),
            weighted_value=_texts(weighted_values[grouped]),
        )
        for grouped in sorted(counts, key=lambda k: (k is not None, k or ""))
    }


def _conversion(reached: dict[str, int]) -> list[StageConversion]:
    funnel = []
    for stage, after in zip(FUNNEL, (*FUNNEL[1:], None), strict=True):
        count = reached.get(stage, 0)
        following = reached.get(after, 0) if after else None
        rate = round(following / count, 4) if following is not None and count else None
        funnel.append(
            StageConversion(
                stage=stage,
                reached=count,
                next_stage=after,
                reached_next=following,
                rate=rate,
            )
        )
    return funnel


def amount(value: Decimal128 | Decimal | int) -> Decimal:
    return value.to_decimal() if isinstance(value, Decimal128) else Decimal(value)


def weighted(value: Decimal, probability: int) -> Decimal:
    """``value`` * ``probability`` %, exactly."""
    return (value * probability).scaleb(-2)


def _text(amount: Decimal) -> str:
    return format(amount, "f")


def _texts(amounts: dict[str, Decimal]) -> Amounts:
    return {currency: _text(amount) for currency, amount in sorted(amounts.items())}
