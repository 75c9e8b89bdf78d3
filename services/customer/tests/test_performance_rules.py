"""The league table's rules (``performance.py``): periods, the daily average, folding
managers into branches and regions, ranking, the change and who sees which row. The
aggregations themselves run on the genuine MongoDB (``tests/integration``)."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from crm_backbone.access import Reach, reach_for
from crm_backbone.principal import Principal
from crm_backbone.testing_identity import TestIdentity
from crm_customer.performance import (
    AMOUNTS,
    COUNTS,
    GroupBy,
    Period,
    PeriodKind,
    RowKey,
    Tally,
    change,
    fold,
    ranks,
    visible,
)
from hypothesis import given
from hypothesis import strategies as st

days = st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 12, 31))
kinds = st.sampled_from(PeriodKind)


@given(kinds, days)
def test_a_period_holds_its_day_and_follows_the_previous_one(kind: PeriodKind, day: date) -> None:
    period = Period.holding(kind, day)
    assert period.start <= day <= period.end
    assert period.days == len({period.start + timedelta(days=n) for n in range(period.days)})
    previous = period.previous()
    assert previous.kind == kind
    assert previous.end + timedelta(days=1) == period.start
    assert Period.holding(kind, period.end) == period
    assert Period.holding(kind, period.end + timedelta(days=1)).start == period.end + timedelta(
        days=1
    )


def test_periods_are_days_calendar_months_and_years() -> None:
    assert Period.holding(PeriodKind.MONTH, date(2028, 2, 10)).days == 29
    assert Period.holding(PeriodKind.YEAR, date(2026, 7, 1)).days == 365
    assert Period.holding(PeriodKind.DAY, date(2026, 7, 1)).days == 1


closings = st.lists(st.integers(min_value=0, max_value=10**9), min_size=1, max_size=31)


@given(closings, st.integers(min_value=0, max_value=30))
def test_the_daily_average_is_the_sum_of_the_days_closings_over_the_period_s_days(
    held: list[int], unheld: int
) -> None:
    """Days the manager did not hold the customer count zero: ``unheld`` such days."""
    start = date(2026, 1, 1)
    period = Period(PeriodKind.MONTH, start, start + timedelta(days=len(held) + unheld - 1))
    tally = Tally()
    tally.amounts["aum_day_sum"] = Decimal(sum(held))
    shown = tally.figures(period)
    exact = Decimal(sum(held)) / (len(held) + unheld)
    assert abs(shown["aum_daily_average"] - exact) <= Decimal("0.005")  # type: ignore[operator]
    if len(set(held)) == 1 and unheld == 0:  # a balance that never changed is its average
        assert shown["aum_daily_average"] == held[0]


def test_products_per_customer_and_none_without_customers() -> None:
    period = Period.holding(PeriodKind.DAY, date(2026, 3, 1))
    tally = Tally()
    assert tally.figures(period)["products_per_customer"] is None
    tally.counts |= {"customers": 3, "products": 7}
    assert tally.figures(period)["products_per_customer"] == Decimal("2.33")


def _tally(counts: list[int], amounts: list[Decimal]) -> Tally:
    return Tally(dict(zip(COUNTS, counts, strict=True)), dict(zip(AMOUNTS, amounts, strict=True)))


tallies = st.builds(
    _tally,
    st.lists(st.integers(0, 100), min_size=len(COUNTS), max_size=len(COUNTS)),
    st.lists(st.decimals(0, 10**6, places=2), min_size=len(AMOUNTS), max_size=len(AMOUNTS)),
)
MANAGERS = [
    ("RM-0001", "BR-001"),
    ("RM-0002", "BR-001"),
    ("RM-0005", "BR-002"),
    ("RM-0009", "BR-003"),
]
REGIONS = {"BR-001": "RG-01", "BR-002": "RG-01", "BR-003": "RG-02"}


@given(st.lists(tallies, min_size=4, max_size=4))
def test_branches_and_regions_add_their_managers_up(managers: list[Tally]) -> None:
    rows = [(m, b, t) for (m, b), t in zip(MANAGERS, managers, strict=True)]
    by_region = fold(rows, GroupBy.REGION, REGIONS)
    region = RowKey("RG-01", region_id="RG-01", branch_ids=frozenset({"BR-001", "BR-002"}))
    for name in COUNTS:
        assert by_region[region].counts[name] == sum(t.counts[name] for t in managers[:3])
    by_branch = fold(rows, GroupBy.BRANCH, REGIONS)
    for name in AMOUNTS:
        assert by_branch[RowKey("BR-001", branch_id="BR-001")].amounts[name] == sum(
            t.amounts[name] for t in managers[:2]
        )
    assert len(fold(rows, GroupBy.MANAGER, REGIONS)) == 4


def test_a_branch_without_a_region_is_left_out_of_the_regions_league() -> None:
    assert fold([("RM-0001", "BR-404", Tally())], GroupBy.REGION, REGIONS) == {}


@given(st.dictionaries(st.text(min_size=1, max_size=3), st.integers(0, 5), max_size=8))
def test_equal_figures_share_a_rank_and_the_next_rank_skips(values: dict[str, int]) -> None:
    ranked = ranks(dict(values))
    for key, value in values.items():
        assert ranked[key] == 1 + sum(1 for other in values.values() if other > value)


def test_no_figure_ranks_last() -> None:
    assert ranks({"a": None, "b": Decimal(0), "c": Decimal(2)}) == {"c": 1, "b": 2, "a": 3}


def test_the_change_is_none_without_a_previous_period() -> None:
    assert change({"aum_end": Decimal(5)}, None) is None
    assert change(
        {"aum_end": Decimal(5), "products_per_customer": None},
        {"aum_end": Decimal(2), "products_per_customer": Decimal(1)},
    ) == {"aum_end": Decimal(3), "products_per_customer": None}


async def reach_of(staff_id: str) -> Reach:
    position = await TestIdentity().positions.position_of(staff_id)
    assert position is not None
    principal = Principal(subject=staff_id, staff_id=staff_id, roles=frozenset({position.role}))
    return reach_for(principal, position)


async def test_a_relationship_manager_sees_their_own_row_only() -> None:
    staff = ("RM-0001", "BM-0001", "RH-0001", "HO-0001")
    rm, bm, head, analyst = [await reach_of(s) for s in staff]
    own = RowKey("RM-0001@BR-001", manager_id="RM-0001", branch_id="BR-001")
    colleague = RowKey("RM-0002@BR-001", manager_id="RM-0002", branch_id="BR-001")
    branch = RowKey("BR-001", branch_id="BR-001")
    other_branch = RowKey("BR-002", branch_id="BR-002")
    region = RowKey("RG-01", region_id="RG-01", branch_ids=frozenset({"BR-001", "BR-002"}))
    assert [visible(rm, r) for r in (own, colleague, branch, region)] == [True, False, False, False]
    assert [visible(bm, r) for r in (own, colleague, branch, other_branch, region)] == [
        True,
        True,
        True,
        False,
        False,
    ]
    assert [visible(head, r) for r in (own, branch, other_branch, region)] == [True] * 4
    assert all(visible(analyst, r) for r in (own, colleague, branch, other_branch, region))
