"""The manager's sales book: ``GET /opportunities`` (their list), ``/forecast`` (by
expected close month) and ``/lead-sources`` (conversion per source)."""

from __future__ import annotations

from typing import Annotated

from crm_backbone.callers import Reader
from crm_backbone.read_audit import PersonalReads
from crm_backbone.service_api import IsoDateTime
from crm_events.opportunity import OpportunityStage
from fastapi import APIRouter, Query

from crm_opportunity.routes.dependencies import SalesBookQueries
from crm_opportunity.sales_book import (
    OPPORTUNITY_LIST_EXAMPLE,
    Forecast,
    GroupBy,
    LeadSources,
    OpportunityList,
)

router = APIRouter(tags=["views"])

Month = Annotated[
    str,
    Query(pattern=r"^\d{4}-(0[1-9]|1[0-2])$", description="A month, YYYY-MM", examples=["2026-12"]),
]
NEXT_PAGE = OPPORTUNITY_LIST_EXAMPLE["next_cursor"]
REACH = (
    "Over the opportunities in the caller's reach (their customers': a relationship "
    "manager's own book, a branch manager's branch, a regional head's region, everything "
    "for the analyst, names masked)."
)


@router.get(
    "/opportunities",
    summary="The manager's opportunity list, by expected close date",
    description=f"{REACH} Filtered by the opportunity's manager, stage and expected "
    "close month; pages with `cursor`.",
)
async def opportunity_list(
    caller: Reader,
    reads: PersonalReads,
    sales: SalesBookQueries,
    manager_id: Annotated[str | None, Query(examples=["RM-0042"])] = None,
    stage: Annotated[OpportunityStage | None, Query(examples=["proposal"])] = None,
    close_month: Month | None = None,
    limit: Annotated[int, Query(ge=1, le=500, examples=[50])] = 50,
    cursor: Annotated[
        str | None,
        Query(description="`next_cursor` of the page before", examples=[NEXT_PAGE]),
    ] = None,
) -> OpportunityList:
    listed = await sales.opportunity_list(
        caller.reach,
        manager_id=manager_id,
        stage=stage,
        close_month=close_month,
        limit=limit,
        cursor=cursor,
    )
    await reads.record(item.customer_id for item in listed.items)
    return listed


@router.get(
    "/forecast",
    summary="The forecast: open opportunities by expected close month",
    description=f"{REACH} Per month: count, Σ expected value and Σ probability-weighted "
    "value per currency, in total and per manager, branch or region (`group_by`; by "
    "default one level below the caller's reach: per manager for a relationship or branch "
    "manager, per branch for a regional head, per region for the analyst).",
)
async def forecast(
    caller: Reader,
    sales: SalesBookQueries,
    group_by: Annotated[GroupBy | None, Query(examples=["manager"])] = None,
    from_month: Month | None = None,
    to_month: Month | None = None,
) -> Forecast:
    return await sales.forecast(caller.reach, group_by, from_month, to_month)


@router.get(
    "/lead-sources",
    summary="Lead sources and their conversion",
    description="Over the leads in the caller's reach captured in the period: per source, "
    "leads, qualified, converted to an opportunity, won (the opportunity closed won), and "
    "the rates.",
)
async def lead_sources(
    caller: Reader,
    sales: SalesBookQueries,
    branch_id: Annotated[str | None, Query(examples=["BR-001"])] = None,
    captured_from: Annotated[
        IsoDateTime | None, Query(description="Included", examples=["2026-10-01T00:00:00+08:00"])
    ] = None,
    captured_before: Annotated[
        IsoDateTime | None, Query(description="Excluded", examples=["2026-11-01T00:00:00+08:00"])
    ] = None,
) -> LeadSources:
    return await sales.lead_sources(caller.reach, branch_id, captured_from, captured_before)
