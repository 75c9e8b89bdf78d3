"""Reading campaign response tracking: funnels, daily series, the list of campaigns.

Figures are computed when read, by aggregations over ``campaign_targets`` (one document
per campaign and target, holding the first moment it reached each stage), so each
(customer, stage) counts once however often, however late and in whatever order the
responses arrived; ``figures.py`` holds how they are counted and priced. Exclusions are
per campaign and reason: ``crm.campaign.started`` carries only totals.

Every read takes the caller's reach (``access.py``): every campaign is listed, and its
figures count the targets whose customer is in reach, in the aggregations' ``$match``;
exclusions and the budget's cost go to an organisation-wide reach only.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from crm_backbone.access import Reach
from crm_backbone.cursor import decode_cursor, encode_cursor
from crm_backbone.projection import Document
from crm_backbone.readmodel import applied_version, wait_until_applied
from crm_events.campaign import ResponseStage
from crm_events.topics import Service
from pydantic import BaseModel, Field
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure

from crm_campaign.access import CampaignAccess, sees_whole
from crm_campaign.figures import (
    Amounts,
    FunnelRow,
    Pricing,
    SegmentKey,
    Tally,
    grouped,
    tally_pipeline,
)
from crm_campaign.views import CAMPAIGNS, TARGETS, CampaignTracking

SOURCE = Service.CAMPAIGN.source
UNKNOWN_TIME_ZONE = 40485
"""MongoDB's error code for a time zone it does not know."""


class Funnel(BaseModel):
    campaign_id: str
    name: str | None
    status: str | None
    version: int = Field(description="Campaign events applied (for read-your-writes)")
    budget: dict[str, str] | None
    excluded: dict[str, int] = Field(
        description="Matching customers left off, by reason (organisation-wide readers only)"
    )
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


class CampaignQueries:
    """Read side of the campaign service."""

    def __init__(
        self, database: AsyncDatabase[Document], daily_timezone: str, access: CampaignAccess
    ) -> None:
        self.daily_timezone = daily_timezone
        """Time zone of the calendar days of the daily series, unless a read names one."""
        self.campaigns = database[CAMPAIGNS]
        self.targets = database[TARGETS]
        self.positions = database[f"{CampaignTracking.name}__positions"]
        self.access = access

    async def wait_for(self, campaign_id: str, version: int, within: float) -> bool:
        """Wait (bounded) until the views have applied ``version`` of the campaign's events."""
        return await wait_until_applied(self.positions, SOURCE, campaign_id, version, within)

    async def _targets_match(self, reach: Reach, campaigns: Any) -> Document:
        """The ``$match`` of the targets of ``campaigns`` (an id or a condition on ids)
        whose customer is in reach."""
        match: Document = {"campaign_id": campaigns}
        in_reach = await self.access.targets_scope(reach)
        return {"$and": [match, in_reach]} if in_reach else match

    async def funnel(self, reach: Reach, campaign_id: str) -> Funnel | None:
        """The campaign's response funnel over its targets in reach."""
        campaign = await self.campaigns.find_one({"_id": campaign_id})
        if campaign is None:
            return None
        group_by = {"c": "$channel", "v": "$value_band", "t": "$corporate_tier"}
        match = await self._targets_match(reach, campaign_id)
        tallies = {
            (g["_id"].get("c"), g["_id"].get("v"), g["_id"].get("t")): Tally.of(g)
            async for g in await self.targets.aggregate(tally_pipeline(match, group_by))
        }
        total = sum(tallies.values(), Tally())
        pricing = _pricing(reach, campaign, total)

        def segment(value_band: str | None, tier: str | None) -> SegmentKey:
            return SegmentKey(value_band=value_band, corporate_tier=tier)

        return Funnel(
            campaign_id=campaign_id,
            name=campaign.get("name"),
            status=campaign.get("status"),
            version=await applied_version(self.positions, SOURCE, campaign_id),
            budget=campaign.get("budget"),
            excluded=_excluded(reach, campaign),
            totals=pricing.row(total),
            by_channel=[
                pricing.row(tally, channel=channel)
                for channel, tally in grouped(tallies, lambda key: key[0])
            ],
            by_segment=[
                pricing.row(tally, segment=segment(*key))
                for key, tally in grouped(tallies, lambda key: key[1:])
            ],
            rows=[
                pricing.row(tally, key[0], segment(*key[1:]))
                for key, tally in grouped(tallies, lambda key: key)
            ],
        )

    async def daily(
        self, reach: Reach, campaign_id: str, timezone: str | None = None
    ) -> Daily | None:
        """Per calendar day (in ``timezone``, the service's by default), the targets in
        reach that first reached each stage."""
        timezone = timezone or self.daily_timezone
        if await self.campaigns.count_documents({"_id": campaign_id}, limit=1) == 0:
            return None
        match = await self._targets_match(reach, campaign_id)
        try:
            found = await self.targets.aggregate(_daily_pipeline(match, timezone))
            groups = [group async for group in found]
        except OperationFailure as error:
            if error.code == UNKNOWN_TIME_ZONE:
                raise ValueError(f"unknown time zone {timezone!r}") from None
            raise
        return Daily(
            campaign_id=campaign_id,
            timezone=timezone,
            version=await applied_version(self.positions, SOURCE, campaign_id),
            days=_days(groups),
        )

    async def campaigns_page(
        self,
        reach: Reach,
        *,
        status: str | None = None,
        kind: str | None = None,
        owner_manager_id: str | None = None,
        limit: int = 20,
        cursor: str | None = None,
    ) -> CampaignPage:
        """Campaigns, newest first, with their headline figures over the targets in reach."""
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
        match = await self._targets_match(reach, {"$in": ids})
        tallies = {
            g["_id"]: Tally.of(g)
            async for g in await self.targets.aggregate(tally_pipeline(match, "$campaign_id"))
        }
        items = [_summary(reach, doc, tallies.get(doc["_id"], Tally())) for doc in documents]
        last = documents[-1] if documents else None
        next_cursor = encode_cursor(last["created_at"], last["_id"]) if more and last else None
        return CampaignPage(items=items, next_cursor=next_cursor)


def _pricing(reach: Reach, campaign: Document, tally: Tally) -> Pricing:
    """The campaign's budget as the cost of the targets in reach: a share of it would tell
    how many targets lie outside the reach, so only an organisation-wide reach is priced."""
    return Pricing(campaign.get("budget") if sees_whole(reach) else None, tally.counts["targeted"])


def _excluded(reach: Reach, campaign: Document) -> dict[str, int]:
    """Exclusions are counted per campaign, not per customer: organisation-wide only."""
    excluded: dict[str, int] = campaign.get("excluded", {})
    return excluded if sees_whole(reach) else {}


def _summary(reach: Reach, doc: Document, tally: Tally) -> CampaignSummary:
    pricing = _pricing(reach, doc, tally)
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
        excluded=_excluded(reach, doc),
        call_lists=sorted(_call_lists(reach, doc), key=lambda c: c["manager_id"]),
        headline=pricing.row(tally),
    )


def _call_lists(reach: Reach, campaign: Document) -> list[dict[str, Any]]:
    """Call lists count customers per manager, as frozen at the start: organisation-wide only."""
    return list(campaign.get("call_lists", {}).values()) if sees_whole(reach) else []


def _daily_pipeline(match: Document, timezone: str) -> list[Document]:
    """Per day (in ``timezone``) and stage: the targets ``match`` selects that first
    reached the stage that day, and the revenue of the conversions among them."""
    converted_with_revenue = {
        "$and": [
            {"$eq": ["$stage.k", ResponseStage.CONVERTED.value]},
            {"$ifNull": ["$revenue", False]},
        ]
    }
    day = {"$dateToString": {"format": "%Y-%m-%d", "date": "$stage.v", "timezone": timezone}}
    return [
        {"$match": match},
        {"$project": {"stage": {"$objectToArray": "$stages"}, "revenue": 1, "revenue_currency": 1}},
        {"$unwind": "$stage"},
        {
            "$group": {
                "_id": {"day": day, "stage": "$stage.k"},
                "reached": {"$sum": 1},
                "revenue": {
                    "$push": {
                        "$cond": [
                            converted_with_revenue,
                            {"currency": "$revenue_currency", "amount": "$revenue"},
                            "$$REMOVE",
                        ]
                    }
                },
            }
        },
    ]


def _days(groups: list[Document]) -> list[Day]:
    """The groups of :func:`_daily_pipeline` as days, in order, revenue summed per currency."""
    days: dict[str, Day] = {}
    for group in groups:
        key = group["_id"]
        day = days.setdefault(key["day"], Day(day=key["day"], reached={}, revenue={}))
        day.reached[key["stage"]] = group["reached"]
        for item in group["revenue"]:
            before = Decimal(day.revenue.get(item["currency"], "0"))
            day.revenue[item["currency"]] = format(before + item["amount"].to_decimal(), "f")
    return [days[day] for day in sorted(days)]
