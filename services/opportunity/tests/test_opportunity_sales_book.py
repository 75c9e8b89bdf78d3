"""The sales book's rules that need no database: a close month's range of dates, and the
forecast's default breakdown by the caller's reach."""

from __future__ import annotations

from datetime import date

from crm_backbone.access import EVERYTHING, Reach, Scope, Surface
from crm_opportunity.sales_book import grouping_for, month_range
from hypothesis import given
from hypothesis import strategies as st

dates = st.dates(min_value=date(2000, 1, 1), max_value=date(2099, 12, 31))


@given(dates, dates)
def test_a_month_s_range_holds_exactly_its_dates(day: date, other: date) -> None:
    bounds = month_range(day.isoformat()[:7])
    inside = bounds["$gte"] <= other.isoformat() < bounds["$lt"]
    assert inside == ((other.year, other.month) == (day.year, day.month))
    assert bounds["$gte"] <= day.isoformat() < bounds["$lt"]


def reach(scope: Scope) -> Reach:
    return Reach(scope, frozenset({Surface.BOOK}), may_read=True, may_write=True, masked=False)


def test_the_forecast_is_broken_down_one_level_below_the_caller_s_reach() -> None:
    assert grouping_for(reach(Scope("manager", frozenset({"RM-1"})))) == "manager"
    assert grouping_for(reach(Scope("branch", frozenset({"BR-1"})))) == "manager"
    assert grouping_for(reach(Scope("branch", frozenset({"BR-1", "BR-2"})))) == "branch"
    assert grouping_for(reach(EVERYTHING)) == "region"
