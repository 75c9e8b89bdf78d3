"""Reading campaign response tracking: funnels, daily series, the list of campaigns.

Figures are computed when read, by aggregations over ``campaign_targets`` (one document
per campaign and target, holding the first moment it reached each stage), so each
(customer, stage) counts once however often, however late and in whatever order the
responses arrived.

- Each stage column counts the targets that reached that stage; stages are not implied
  (a phone target is ``contacted`` without being ``sent`` anything).
  ``opened_or_contacted`` counts the targets that did either.
- Response rate = responded / targeted; conversion rate = converted / targeted.
- Cost: the contract carries a campaign's budget, not its spending, so the budget is the
  cost; a row gets the share of its targets. Cost per response = cost / responded.
  Revenue is per currency; ROI = (revenue in the budget's currency - cost) / cost.
- Exclusions are per campaign and reason: ``crm.campaign.started`` carries only totals.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Hashable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from crm_backbone.cursor import decode_cursor, encode_cursor
from crm_backbone.projection import Document
from crm_backbone.readmodel import applied_version, wait_until_applied
from crm_events.campaign import ResponseStage
from crm_events.topics import Service
from pydantic import BaseModel, Field
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure

from crm_campaign.views import CAMPAIGNS, TARGETS, CampaignTracking

SOURCE = Service.CAMPAIGN.source
STAGES = tuple(stage.value for stage in ResponseStage)
CENT = Decimal("0.01")
UNKNOWN_TIME_ZONE = 40485
"""MongoDB's error code for a time zone it does not know."""

Amounts = dict[str, str]
"""Currency -> exact decimal amount as text."""


class SegmentKey(BaseModel):
    value_band: str | None
    corporate_tier: str | None = None


class FunnelRow(BaseModel):
    """Response figures of a set of targets: one channel and segment, or a subtotal."""

    channel: str | None = Field(None, description="None in totals and segment subtotals")
    segment: SegmentKey | None = Field(None, description="None in totals and channel subtotals")
    targeted: int
    sent: int
    delivered: int
    opened: int
    contacted: int
    opened_or_contacted: int
    responded: int
    converted: int
    opted_out: int
    response_rate: float | None = Field(description="responded / targeted")
    conversion_rate: float | None = Field(description="converted / targeted")
    cost: str | None = Field(description="The row's share of the budget, in its currency")
    cost_per_response: str | None
    revenue: Amounts = Field(description="Revenue attributed on conversion, per currency")
    roi: float | None = Field(description="(revenue - cost) / cost, in the budget's currency")


class Funnel(BaseModel):
    campaign_id: str
    name: str | None
    status: str | None
    version: int = Field(description="Campaign events applied (for read-your-writes)")
    budget: dict[str, str] | None
    excluded: dict[str, int] = Field(description="Matching customers left off, by reason")
    totals: FunnelRow
    by_channel: list[FunnelRow]
    by_segment: list[FunnelRow]
    rows: list[FunnelRow] = Field(description="One per channel and segment")


class Day(BaseModel):
    day: str = Field(description="Calendar day in the requested time zone")
    reached: dict[str, int] = Field(description="Targets that first reached each stage that day")
    revenue: Amounts = Field(description="Revenue of the conversions of that day")


class Daily(BaseModel):
    campaign_id: str
    timezone: str
    version: int
    days: list[Day]


class CampaignSummary(BaseModel):
    campaign_id: str
    name: str | None
    kind: str | None
    status: str | None
    channels: list[str]
    products: list[str]
    owner_manager_ids: list[str]
    budget: dict[str, str] | None
    planned_start: str | None
    planned_end: str | None
    created_at: datetime | None
    started_at: datetime | None
    excluded: dict[str, int]
    call_lists: list[dict[str, Any]]
    headline: FunnelRow


class CampaignPage(BaseModel):
    items: list[CampaignSummary]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page")


@dataclass
class Tally:
    """Counts per stage (and ``targeted``, ``opened_or_contacted``) and revenue per currency."""

    counts: Counter[str] = field(default_factory=Counter)
    revenue: defaultdict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))

    @classmethod
    def of(cls, group: Document) -> Tally:
        tally = cls(Counter({name: group.get(name, 0) for name in _COUNTED}))
        for item in group.get("revenue", []):
            tally.revenue[item["currency"]] += item["amount"].to_decimal()
        return tally

    def __add__(self, other: Tally) -> Tally:
        revenue = defaultdict(Decimal, self.revenue)
        for currency, amount in other.revenue.items():
            revenue[currency] += amount
        return Tally(self.counts + other.counts, revenue)


_COUNTED = ("targeted", *STAGES, "opened_or_contacted")


def _reached(stage: str) -> Document:
    return {"$ifNull": [f"$stages.{stage}", False]}


def tally_pipeline(match: Document, group_by: Any) -> list[Document]:
    """Tallies of the matching targets, one per value of ``group_by``."""
    counts = {stage: {"$sum": {"$cond": [_reached(stage), 1, 0]}} for stage in STAGES}
    return [
        {"$match": match},
        {
            "$group": {
                "_id": group_by,
                "targeted": {"$sum": {"$cond": [{"$eq": ["$targeted", True]}, 1, 0]}},
                **counts,
                "opened_or_contacted": {
                    "$sum": {"$cond": [{"$or": [_reached("opened"), _reached("contacted")]}, 1, 0]}
                },
                "revenue": {
                    "$push": {
                        "$cond": [
                            {"$ifNull": ["$revenue", False]},
                            {"currency": "$revenue_currency", "amount": "$revenue"},
                            "$$REMOVE",
                        ]
                    }
                },
            }
        },
    ]


@dataclass(frozen=True)
class Pricing:
    """Turns tallies into rows, giving each its targets' share of the budget."""

    budget: dict[str, str] | None
    targeted: int
    """All the campaign's targets."""

    def row(
        self, tally: Tally, channel: str | None = None, segment: SegmentKey | None = None
    ) -> FunnelRow:
        c = tally.counts
        cost = self._cost(c["targeted"])
        cost_per_response = roi = None
        if cost and c["responded"]:
            cost_per_response = (cost / c["responded"]).quantize(CENT)
        if cost and self.budget:
            earned = tally.revenue.get(self.budget["currency"], Decimal(0))
            roi = round(float((earned - cost) / cost), 4)
        return FunnelRow(
            channel=channel,
            segment=segment,
            **{name: c[name] for name in _COUNTED},
            response_rate=_rate(c["responded"], c["targeted"]),
            conversion_rate=_rate(c["converted"], c["targeted"]),
            cost=None if cost is None else format(cost, "f"),
            cost_per_response=None if cost_per_response is None else format(cost_per_response, "f"),
            revenue={k: format(v, "f") for k, v in sorted(tally.revenue.items())},
            roi=roi,
        )

    def _cost(self, targeted: int) -> Decimal | None:
        if self.budget is None or not self.targeted:
            return None
        return (Decimal(self.budget["amount"]) * targeted / self.targeted).quantize(CENT)


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _grouped(tallies: dict[Any, Tally], pick: Any) -> list[tuple[Any, Tally]]:
    groups: dict[Any, Tally] = defaultdict(Tally)
    for key, tally in tallies.items():
        groups[pick(key)] = groups[pick(key)] + tally
    return sorted(groups.items(), key=lambda item: _sortable(item[0]))


def _sortable(key: Hashable) -> Any:
    if isinstance(key, tuple):
        return tuple("" if part is None else str(part) for part in key)
    return "" if key is None else str(key)


class CampaignQueries:
    """Read side of the campaign service."""

    def __init__(self, database: AsyncDatabase[Document]) -> None:
        self.campaigns = database[CAMPAIGNS]
        self.targets = database[TARGETS]
        self.positions = database[f"{CampaignTracking.name}__positions"]

    async def wait_for(self, campaign_id: str, version: int, within: float) -> bool:
        """Wait (bounded) until the views have applied ``version`` of the campaign's events."""
        return await wait_until_applied(self.positions, SOURCE, campaign_id, version, within)

    async def funnel(self, campaign_id: str) -> Funnel | None:
        campaign = await self.campaigns.find_one({"_id": campaign_id})
        if campaign is None:
            return None
        group_by = {"c": "$channel", "v": "$value_band", "t": "$corporate_tier"}
        tallies = {
            (g["_id"].get("c"), g["_id"].get("v"), g["_id"].get("t")): Tally.of(g)
            async for g in await self.targets.aggregate(
                tally_pipeline({"campaign_id": campaign_id}, group_by)
            )
        }
        total = sum(tallies.values(), Tally())
        pricing = Pricing(campaign.get("budget"), total.counts["targeted"])

        def segment(value_band: str | None, tier: str | None) -> SegmentKey:
            return SegmentKey(value_band=value_band, corporate_tier=tier)

        return Funnel(
            campaign_id=campaign_id,
            name=campaign.get("name"),
            status=campaign.get("status"),
            version=await applied_version(self.positions, SOURCE, campaign_id),
            budget=campaign.get("budget"),
            excluded=campaign.get("excluded", {}),
            totals=pricing.row(total),
            by_channel=[
                pricing.row(tally, channel=channel)
                for channel, tally in _grouped(tallies, lambda key: key[0])
            ],
            by_segment=[
                pricing.row(tally, segment=segment(*key))
                for key, tally in _grouped(tallies, lambda key: key[1:])
            ],
            rows=[
                pricing.row(tally, key[0], segment(*key[1:]))
                for key, tally in _grouped(tallies, lambda key: key)
            ],
        )

    async def daily(self, campaign_id: str, timezone: str) -> Daily | None:
        """Per calendar day (in ``timezone``), the targets that first reached each stage."""
        if await self.campaigns.count_documents({"_id": campaign_id}, limit=1) == 0:
            return None
        pipeline: list[Document] = [
            {"$match": {"campaign_id": campaign_id}},
            {"$project": {
                "stage": {"$objectToArray": "$stages"}, "revenue": 1, "revenue_currency": 1,
            }},
            {"$unwind": "$stage"},
            {
                "$group": {
                    "_id": {
                        "day": {
                            "$dateToString": {
                                "format": "%Y-%m-%d", "date": "$stage.v", "timezone": timezone
                            }
                        },
                        "stage": "$stage.k",
                    },
                    "reached": {"$sum": 1},
                    "revenue": {
                        "$push": {
                            "$cond": [
                                {"$and": [
                                    {"$eq": ["$stage.k", ResponseStage.CONVERTED.value]},
                                    {"$ifNull": ["$revenue", False]},
                                ]},
                                {"currency": "$revenue_currency", "amount": "$revenue"},
                                "$$REMOVE",
                            ]
                        }
                    },
                }
            },
        ]  # fmt: skip
        try:
            groups = [group async for group in await self.targets.aggregate(pipeline)]
        except OperationFailure as error:
            if error.code == UNKNOWN_TIME_ZONE:
                raise ValueError(f"unknown time zone {timezone!r}") from None
            raise
        days: dict[str, Day] = {}
        for group in groups:
            key = group["_id"]
            day = days.setdefault(key["day"], Day(day=key["day"], reached={}, revenue={}))
            day.reached[key["stage"]] = group["reached"]
            for item in group["revenue"]:
                before = Decimal(day.revenue.get(item["currency"], "0"))
                day.revenue[item["currency"]] = format(before + item["amount"].to_decimal(), "f")
        return Daily(
            campaign_id=campaign_id,
            timezone=timezone,
            version=await applied_version(self.positions, SOURCE, campaign_id),
            days=[days[day] for day in sorted(days)],
        )

    async def campaigns_page(
        self,
        *,
        status: str | None = None,
        kind: str | None = None,
        owner_manager_id: str | None = None,
        limit: int = 20,
        cursor: str | None = None,
    ) -> CampaignPage:
        """Campaigns, newest first, with their headline figures."""
        query: Document = {}
        for name, value in (
            ("status", status),
            ("kind", kind),
            ("owner_manager_ids", owner_manager_id),
        ):
            if value:
                query[name] = value
        if cursor:
            created_at, last_id = decode_cursor(cursor, datetime.fromisoformat)
            query["$or"] = [
                {"created_at": {"$lt": created_at}},
                {"created_at": created_at, "_id": {"$gt": last_id}},
            ]
        found = self.campaigns.find(query).sort([("created_at", -1), ("_id", 1)])
        documents = [doc async for doc in found.limit(limit + 1)]
        more = len(documents) > limit
        documents = documents[:limit]
        ids = [doc["_id"] for doc in documents]
        tallies = {
            g["_id"]: Tally.of(g)
            async for g in await self.targets.aggregate(
                tally_pipeline({"campaign_id": {"$in": ids}}, "$campaign_id")
            )
        }
        items = [_summary(doc, tallies.get(doc["_id"], Tally())) for doc in documents]
        last = documents[-1] if documents else None
        next_cursor = encode_cursor(last["created_at"], last["_id"]) if more and last else None
        return CampaignPage(items=items, next_cursor=next_cursor)


def _summary(doc: Document, tally: Tally) -> CampaignSummary:
    pricing = Pricing(doc.get("budget"), tally.counts["targeted"])
    return CampaignSummary(
        campaign_id=doc["_id"],
        name=doc.get("name"),
        kind=doc.get("kind"),
        status=doc.get("status"),
        channels=doc.get("channels", []),
        products=doc.get("products", []),
        owner_manager_ids=doc.get("owner_manager_ids", []),
        budget=doc.get("budget"),
        planned_start=doc.get("planned_start"),
        planned_end=doc.get("planned_end"),
        created_at=doc.get("created_at"),
        started_at=doc.get("started_at"),
        excluded=doc.get("excluded", {}),
        call_lists=sorted(doc.get("call_lists", {}).values(), key=lambda c: c["manager_id"]),
        headline=pricing.row(tally),
    )
