"""The customer value rule (``customer_value.py``): value, band, Pareto shares."""

from __future__ import annotations

import math
from decimal import Decimal

import pytest
from crm_customer.customer_value import ValueRule, pareto
from crm_events.common import ValueBand
from hypothesis import given
from hypothesis import strategies as st

D = Decimal
RULE = ValueRule()


def test_value_weighs_holdings_loans_and_contribution() -> None:
    assert RULE.value(D(1_000_000), D(200_000), D(5_000)) == D("18000.00")
    assert RULE.value(D(0), D(0), D(-700)) == D("-700.00")


def test_bands_start_at_their_thresholds() -> None:
    assert RULE.band(D(30_000)) is ValueBand.HIGH
    assert RULE.band(D("29999.99")) is ValueBand.MEDIUM
    assert RULE.band(D(3_000)) is ValueBand.MEDIUM
    assert RULE.band(D(-1)) is ValueBand.LOW
    with pytest.raises(ValueError, match="medium_from"):
        ValueRule(high_from=D(1), medium_from=D(2))


def test_other_currencies_convert_at_reference_rates_or_are_named() -> None:
    unconverted: set[str] = set()
    total = RULE.converted([("CNY", D(100)), ("USD", D(10)), ("XAU", D(1))], unconverted)
    assert total == D(100) + D("71.00")
    assert unconverted == {"XAU"}


def test_pareto_shares_of_a_small_book() -> None:
    points = pareto([D(50), D(30), D(10), D(5), D(5)])
    assert [(p.top_percent, p.customers, p.share_percent) for p in points] == [
        (1, 1, D("50.00")),
        (5, 1, D("50.00")),
        (10, 1, D("50.00")),
        (20, 1, D("50.00")),
    ]
    negative = pareto([D(100), D(-50)], tops=[50])
    assert negative[0].share_percent == D("200.00")
    assert pareto([D(0)])[0].share_percent is None
    assert [(p.customers, p.share_percent) for p in pareto([])] == [(0, None)] * 4


@given(st.lists(st.integers(0, 10**12).map(D), min_size=1, max_size=300))
def test_pareto_shares_grow_with_the_top_and_count_the_ceiling(amounts: list[Decimal]) -> None:
    points = pareto(amounts)
    assert [p.customers for p in points] == [
        math.ceil(len(amounts) * top / 100) for top in (1, 5, 10, 20)
    ]
    shares = [p.share_percent for p in points]
    if sum(amounts) == 0:
        assert shares == [None] * 4
    else:
        assert shares == sorted(s for s in shares if s is not None)
        assert all(D(0) <= s <= D(100) for s in shares if s is not None)
