"""The cross-sell rule (``cross_sell.py``): holding rates, usual product types, gaps."""

from __future__ import annotations

from decimal import Decimal

from crm_customer.cross_sell import CrossSellRule, SegmentHoldings, gaps, held_types
from hypothesis import given
from hypothesis import strategies as st

RULE = CrossSellRule()  # usual: held by >= 50 % of a segment of >= 10 customers
TYPES = ("current", "savings", "time_deposit", "loan", "fund")


def test_rates_count_customers_and_the_usual_types_reach_the_share() -> None:
    high = SegmentHoldings(20, {"current": 20, "time_deposit": 10, "fund": 9})
    assert high.rate("time_deposit") == Decimal("50.0")
    assert high.rate("loan") == 0
    assert high.usual(RULE) == {"current": Decimal("100.0"), "time_deposit": Decimal("50.0")}
    assert high.products_per_customer() == Decimal("1.95")


def test_a_small_segment_has_no_usual_type() -> None:
    assert SegmentHoldings(9, {"current": 9}).usual(RULE) == {}
    assert SegmentHoldings(0).rate("current") == 0


def test_a_customer_lacks_the_usual_types_they_hold_no_open_account_of() -> None:
    accounts = [
        {"product_type": "current", "status": "open"},
        {"product_type": "time_deposit", "status": "closed"},
        {"product_type": "savings"},  # known from a balance only: open
        {"status": "closed"},  # closed before it was opened: no type yet
    ]
    held = held_types(accounts)
    assert held == {"current", "savings"}
    segment = SegmentHoldings(10, {"current": 10, "time_deposit": 6, "savings": 2})
    assert gaps(held, segment, RULE) == {"time_deposit": Decimal("60.0")}
    assert gaps(held, None, RULE) == {}


@given(
    st.integers(0, 50),
    st.dictionaries(st.sampled_from(TYPES), st.integers(0, 50)),
    st.frozensets(st.sampled_from(TYPES)),
    st.integers(0, 100),
)
def test_gaps_are_the_usual_types_not_held(
    customers: int, holders: dict[str, int], held: frozenset[str], share: int
) -> None:
    holders = {t: min(n, customers) for t, n in holders.items()}
    rule = CrossSellRule(min_rate_percent=Decimal(share), min_segment_customers=10)
    found = gaps(held, SegmentHoldings(customers, holders), rule)
    expected = {
        t
        for t, n in holders.items()
        if customers >= 10 and t not in held and Decimal(n * 100) / customers >= share
    }
    assert set(found) == expected
