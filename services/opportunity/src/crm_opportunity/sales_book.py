"""A manager's sales book: their opportunity list, the forecast by expected close month,
and the lead sources' conversion.

All three read the documents ``crm_opportunity.views`` keeps, one per opportunity and one
per lead, each touched only by its own aggregate's events (so late, redelivered or
interleaved streams give the same documents, and ``crm-ops rebuild opportunity_view``
rebuilds them); the figures are aggregated by MongoDB when asked, over the records in the
caller's reach (``crm_opportunity.ownership``), never kept as counters.

Rules:

- **Forecast**: the *open* opportunities (not closed won or lost) by the month of their
  expected close date: count, Σ expected value and Σ expected value * probability / 100
  (weighted), per currency; broken down by the opportunity's manager, branch, or the
  branch's region (the organisation read model); by default one level below the caller's
  reach (:func:`grouping_for`). An opportunity whose close date has
  passed while it is still open counts in its (past) month: an overdue forecast shows.
- **Lead sources**: per source, the leads captured, those **qualified** (ever: converted
  leads were qualified first), **converted** to an opportunity, and **won** (converted,
  and their opportunity is closed won); rates are of the leads captured, and ``win_rate``
  of the converted, to 4 decimals (none without a denominator).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime
from typing import Any, Literal

from crm_backbone.access import Reach, as_shown
from crm_backbone.cursor import decode_cursor, encode_cursor
from crm_backbone.organisation import UNITS
from crm_backbone.projection import Document
from crm_events.opportunity import LeadSource, OpportunityStage
from pydantic import BaseModel, ConfigDict, Field
from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

from crm_opportunity.domain.lead import LeadStatus
from crm_opportunity.ownership import OPPORTUNITY_PERSONAL, Book
from crm_opportunity.queries import Figures, amount, figures_by, group_figures, weighted
from crm_opportunity.views import LEADS, OPPORTUNITIES

GroupBy = Literal["manager", "branch", "region"]
GROUP_FIELDS: dict[GroupBy, str] = {
    "manager": "$manager_id",
    "branch": "$branch_id",
    "region": "$region_id",
}
CLOSE_ORDER = [("expected_close_date", ASCENDING), ("_id", ASCENDING)]


OPPORTUNITY_EXAMPLE: dict[str, Any] = {
    "opportunity_id": "OPP-7d1e",
    "customer_id": "C00012345",
    "title": "Wealth plan for the Zhang family",
    "products": ["WM-STEADY-12M"],
    "stage": "proposal",
    "open": True,
    "probability": 40,
    "expected_value": {"amount": "500000.00", "currency": "CNY"},
    "weighted_value": {"amount": "200000.00", "currency": "CNY"},
    "expected_close_date": "2026-12-15",
    "manager_id": "RM-0042",
    "branch_id": "BR-001",
    "source": "referral",
}
OPPORTUNITY_LIST_EXAMPLE: dict[str, Any] = {
    "items": [OPPORTUNITY_EXAMPLE],
    "next_cursor": encode_cursor("2026-12-15", "OPP-7d1e"),
}
"""The OpenAPI examples of an opportunity of the list, and of a page of it."""


class OpportunityItem(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [OPPORTUNITY_EXAMPLE]})
    opportunity_id: str
    customer_id: str
    title: str
    products: list[str]
    stage: str
    open: bool
    probability: int
    expected_value: dict[str, str]
    weighted_value: dict[str, str] = Field(description="expected value * probability / 100")
    expected_close_date: date
    manager_id: str
    branch_id: str
    source: str


class OpportunityList(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [OPPORTUNITY_LIST_EXAMPLE]})
    items: list[OpportunityItem] = Field(description="By expected close date, then id")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page")


class ForecastMonth(BaseModel):
    month: str = Field(description="Expected close month, YYYY-MM", examples=["2026-12"])
    total: Figures
    by_group: dict[str, Figures] = Field(description="Per manager, branch or region")


class Forecast(BaseModel):
    """The open pipeline by expected close month."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "group_by": "manager",
                    "from_month": "2026-11",
                    "to_month": "2027-04",
                    "months": [
                        {
                            "month": "2026-12",
                            "total": {
                                "count": 2,
                                "expected_value": {"CNY": "800000.00"},
                                "weighted_value": {"CNY": "380000.00"},
                            },
                            "by_group": {
                                "RM-0042": {
                                    "count": 2,
                                    "expected_value": {"CNY": "800000.00"},
                                    "weighted_value": {"CNY": "380000.00"},
                                }
                            },
                        }
                    ],
                }
            ]
        }
    )
    group_by: GroupBy
    from_month: str | None
    to_month: str | None
    months: list[ForecastMonth] = Field(description="Months with open opportunities, in order")


class SourceConversion(BaseModel):
    source: LeadSource
    leads: int = Field(description="Leads captured")
    qualified: int = Field(description="Of them, qualified (converted ones included)")
    converted: int = Field(description="Of them, converted to an opportunity")
    won: int = Field(description="Of them, whose opportunity is closed won")
    qualification_rate: float | None = Field(description="qualified / leads")
    conversion_rate: float | None = Field(description="converted / leads")
    win_rate: float | None = Field(description="won / converted")


class LeadSources(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "branch_id": "BR-001",
                    "sources": [
                        {
                            "source": "referral",
                            "leads": 20,
                            "qualified": 12,
                            "converted": 8,
                            "won": 3,
                            "qualification_rate": 0.6,
                            "conversion_rate": 0.4,
                            "win_rate": 0.375,
                        }
                    ],
                }
            ]
        }
    )
    branch_id: str | None
    sources: list[SourceConversion] = Field(description="Sources with leads, in source order")


def grouping_for(reach: Reach) -> GroupBy:
    """The forecast's default breakdown, one level below the caller's reach: per manager
    for a manager's book or a branch, per branch for a region, per region for the bank."""
    scope = reach.scope
    if scope.field is None:
        return "region"
    if scope.field == "branch" and len(scope.values) > 1:
        return "branch"
    return "manager"


class SalesBook:
    """The manager's list, the forecast and the lead sources, of one caller's reach."""

    def __init__(self, database: AsyncDatabase[Document], book: Book) -> None:
        self.opportunities = database[OPPORTUNITIES]
        self.leads = database[LEADS]
        self.book = book

    async def opportunity_list(
        self,
        reach: Reach,
        *,
        manager_id: str | None = None,
        stage: OpportunityStage | None = None,
        close_month: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> OpportunityList:
        """The opportunities in reach matching the filters, by expected close date."""
        match: Document = {}
        if manager_id:
            match["manager_id"] = manager_id
        if stage:
            match["stage"] = stage.value
        if close_month:
            match["expected_close_date"] = month_range(close_month)
        if cursor:
            closing, last_id = decode_cursor(cursor, str)
            match["$or"] = [
                {"expected_close_date": {"$gt": closing}},
                {"expected_close_date": closing, "_id": {"$gt": last_id}},
            ]
        query = {"$and": [match, await self.book.of_customers(reach)]}
        found = self.opportunities.find(query).sort(CLOSE_ORDER).limit(limit + 1)
        docs = [doc async for doc in found]
        more = len(docs) > limit
        items = [_item(as_shown(reach, doc, OPPORTUNITY_PERSONAL)) for doc in docs[:limit]]
        last = docs[limit - 1] if more else None
        return OpportunityList(
            items=items,
            next_cursor=encode_cursor(last["expected_close_date"], last["_id"]) if last else None,
        )

    async def forecast(
        self,
        reach: Reach,
        group_by: GroupBy | None = None,
        from_month: str | None = None,
        to_month: str | None = None,
    ) -> Forecast:
        """The open opportunities in reach by expected close month (``from_month`` to
        ``to_month``, both included), in total and per ``group_by`` (default: by reach)."""
        group_by = group_by or grouping_for(reach)
        closing: Document = {}
        if from_month:
            closing["$gte"] = month_range(from_month)["$gte"]
        if to_month:
            closing["$lt"] = month_range(to_month)["$lt"]
        match: Document = {"open": True} | ({"expected_close_date": closing} if closing else {})
        stages: list[Document] = [
            {"$match": {"$and": [match, await self.book.of_customers(reach)]}},
            {"$set": {"month": {"$substrBytes": ["$expected_close_date", 0, 7]}}},
        ]
        if group_by == "region":
            stages += [
                {
                    "$lookup": {
                        "from": UNITS,
                        "localField": "branch_id",
                        "foreignField": "_id",
                        "as": "unit",
                    }
                },
                {"$set": {"region_id": {"$first": "$unit.region_id"}}},
            ]
        facets = {
            "total": [group_figures("$month")],
            "groups": [group_figures({"month": "$month", "group": GROUP_FIELDS[group_by]})],
        }
        cursor = await self.opportunities.aggregate([*stages, {"$facet": facets}])
        result: Document = (await cursor.to_list())[0]
        totals = figures_by(result["total"])
        groups: dict[str, dict[str, Figures]] = defaultdict(dict)
        for key, figures in figures_by(result["groups"], key=_month_and_group).items():
            month, group = key
            groups[month][group] = figures
        return Forecast(
            group_by=group_by,
            from_month=from_month,
            to_month=to_month,
            months=[
                ForecastMonth(month=month, total=total, by_group=groups[month])
                for month, total in totals.items()
            ],
        )

    async def lead_sources(
        self,
        reach: Reach,
        branch_id: str | None = None,
        captured_from: datetime | None = None,
        captured_before: datetime | None = None,
    ) -> LeadSources:
        """The conversion of the leads in reach captured in the period, per source."""
        match: Document = {"branch_id": branch_id} if branch_id else {}
        captured: Document = {}
        if captured_from:
            captured["$gte"] = captured_from
        if captured_before:
            captured["$lt"] = captured_before
        if captured:
            match["captured_at"] = captured
        stages: list[Document] = [
            {"$match": {"$and": [match, await self.book.of_leads(reach)]}},
            {
                "$lookup": {
                    "from": OPPORTUNITIES,
                    "localField": "opportunity_id",
                    "foreignField": "_id",
                    "as": "opportunity",
                }
            },
            {
                "$group": {
                    "_id": "$source",
                    "leads": {"$sum": 1},
                    "qualified": _count({"$ifNull": ["$qualified_at", False]}),
                    "converted": _count({"$eq": ["$status", LeadStatus.CONVERTED.value]}),
                    "won": _count(
                        {
                            "$and": [
                                {"$eq": ["$status", LeadStatus.CONVERTED.value]},
                                {
                                    "$in": [
                                        OpportunityStage.CLOSED_WON.value,
                                        "$opportunity.stage",
                                    ]
                                },
                            ]
                        }
                    ),
                }
            },
        ]
        rows = {row["_id"]: row async for row in await self.leads.aggregate(stages)}
        return LeadSources(
            branch_id=branch_id,
            sources=[
                _conversion(source, rows[source.value])
                for source in LeadSource
                if source.value in rows
            ],
        )


def month_range(month: str) -> Document:
    """The ``expected_close_date`` (ISO text) range of a ``YYYY-MM`` month."""
    year, number = int(month[:4]), int(month[5:7])
    following = f"{year + number // 12:04d}-{number % 12 + 1:02d}"
    return {"$gte": f"{month}-01", "$lt": f"{following}-01"}


def _month_and_group(key: Any) -> tuple[str, str]:
    return key["month"], key["group"] or "unknown"


def _count(condition: Document) -> Document:
    return {"$sum": {"$cond": [condition, 1, 0]}}


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _conversion(source: LeadSource, row: Document) -> SourceConversion:
    leads, qualified, converted, won = (row[k] for k in ("leads", "qualified", "converted", "won"))
    return SourceConversion(
        source=source,
        leads=leads,
        qualified=qualified,
        converted=converted,
        won=won,
        qualification_rate=_rate(qualified, leads),
        conversion_rate=_rate(converted, leads),
        win_rate=_rate(won, converted),
    )


def _item(doc: Document) -> OpportunityItem:
    value = amount(doc["expected_value"]["amount"])
    currency = doc["expected_value"]["currency"]
    fields = {k: v for k, v in doc.items() if k in OpportunityItem.model_fields}
    return OpportunityItem.model_validate(
        fields
        | {
            "expected_value": {"amount": format(value, "f"), "currency": currency},
            "weighted_value": {
                "amount": format(weighted(value, doc["probability"]), "f"),
                "currency": currency,
            },
        }
    )
