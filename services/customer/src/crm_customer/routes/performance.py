"""``/performance``: the managers' league table (rules: ``performance.py``)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Annotated

from crm_backbone.callers import Reader
from crm_backbone.service_api import IsoDate
from fastapi import APIRouter, Query
from pydantic import Field, WithJsonSchema

from crm_customer.performance import RANKED_FIGURES, GroupBy, PeriodKind
from crm_customer.performance_models import LeagueTable
from crm_customer.routes.dependencies import Performance

router = APIRouter(tags=["performance"])

RankedFigure = StrEnum("RankedFigure", {name: name for name in RANKED_FIGURES})  # type: ignore[misc]
"""The figures a league may be ranked by, as the query's enumeration."""
BY_AUM_AVERAGE = RankedFigure("aum_daily_average")
LeagueDay = Annotated[
    IsoDate,
    Field(ge=date(1900, 1, 1), le=date(2999, 12, 31)),
    WithJsonSchema(
        {"type": "string", "format": "date", "pattern": "^(19|2[0-9])[0-9]{2}-[0-9]{2}-[0-9]{2}$"}
    ),
]
"""A day of the years 1900 to 2999 (a period and the one before it are dates)."""


@router.get(
    "/performance",
    summary="Manager performance and the league table",
    description="Deposits, loans and AUM (period end and daily average), new and lost "
    "customers, products per customer, opportunities won, contacts, tasks done on time and "
    "complaints closed within SLA, per manager, branch or region, for the day, month or year "
    "holding `at`; each row's rank in the whole league by `rank_by`, the previous period's "
    "figures and rank, and the change. Every row is ranked; the caller sees the figures of "
    "the rows in their reach only (a relationship manager: their own row, and so their "
    "rank; a branch's row needs the branch in reach, a region's every branch of it). "
    "Amounts in the reporting currency. Rules: docs/analysis.md.",
)
async def league_table(
    caller: Reader,
    performance: Performance,
    period: Annotated[
        PeriodKind, Query(description="The period's length", examples=["month"])
    ] = PeriodKind.MONTH,
    at: Annotated[
        LeagueDay | None,
        Query(description="A day of the period (default: today, UTC)", examples=["2026-03-15"]),
    ] = None,
    group_by: Annotated[
        GroupBy, Query(description="The league's rows", examples=["branch"])
    ] = GroupBy.MANAGER,
    rank_by: Annotated[
        RankedFigure,
        Query(description="The figure ranked, highest first", examples=["aum_daily_average"]),
    ] = BY_AUM_AVERAGE,
) -> LeagueTable:
    day = at or datetime.now(UTC).date()
    return await performance.league(period, day, group_by, str(rank_by), caller.reach)
