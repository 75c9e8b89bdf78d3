"""The cross-sell rule: the product types a customer's segment usually holds and the
customer does not (``docs/analysis.md``, "Cross-sell gaps").

A segment's holding rate of a product type is the share of the segment's active customers
holding at least one open account of that type (distinct customers: three savings
accounts count once). A type is *usual* in a segment when that rate is at least
``min_rate_percent`` and the segment has at least ``min_segment_customers`` customers (a
rate over a handful of customers says nothing). A customer's gaps are the usual types of
their segment they hold no open account of.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any


@dataclass(frozen=True)
class CrossSellRule:
    """The rule's parameters (``CustomerSettings``, ``CRM_CROSS_SELL_*``)."""

    min_rate_percent: Decimal = Decimal(50)
    min_segment_customers: int = 10


@dataclass(frozen=True)
class SegmentHoldings:
    """One segment across the book: its customers and, per product type, how many of
    them hold it."""

    customers: int
    holders: Mapping[str, int] = field(default_factory=dict)

    def rate(self, product_type: str) -> Decimal:
        """Percentage of the segment's customers holding ``product_type``, to one decimal
        (shown; the rule compares the exact share)."""
        if not self.customers:
            return Decimal(0)
        return round(Decimal(self.holders.get(product_type, 0)) * 100 / self.customers, 1)

    def products_per_customer(self) -> Decimal:
        """Mean number of distinct product types a customer of the segment holds."""
        if not self.customers:
            return Decimal(0)
        return round(Decimal(sum(self.holders.values())) / self.customers, 2)

    def usual(self, rule: CrossSellRule) -> dict[str, Decimal]:
        """The product types usual in the segment, with their holding rates."""
        if self.customers < rule.min_segment_customers:
            return {}
        return {
            t: self.rate(t)
            for t, n in sorted(self.holders.items())
            if n * 100 >= rule.min_rate_percent * self.customers
        }


def held_types(accounts: Iterable[Mapping[str, Any]]) -> frozenset[str]:
    """The product types of a customer's open accounts."""
    return frozenset(
        a["product_type"]
        for a in accounts
        if a.get("product_type") and a.get("status", "open") != "closed"
    )


def gaps(
    held: frozenset[str], segment: SegmentHoldings | None, rule: CrossSellRule
) -> dict[str, Decimal]:
    """The usual product types of the customer's segment the customer does not hold,
    with the segment's holding rate of each."""
    if segment is None:
        return {}
    return {t: rate for t, rate in segment.usual(rule).items() if t not in held}
