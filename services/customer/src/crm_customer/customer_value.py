"""Customer value: one figure per customer, its band, and how value spreads over a book.

The rule (``docs/analysis.md``, "Customer value"), with the parameters of
:class:`ValueRule` (the service's settings):

- a customer's **value** is a yearly profit equivalent in the reporting currency:
  ``aum_weight`` x assets under management (open asset accounts' balances)
  + ``loan_weight`` x loans (open loan accounts' balances and drawn credit facilities they
  borrow) + ``contribution_weight`` x the contribution management accounting reported
  for them over the last ``contribution_months`` months (the window ends with the latest
  month reported for the bank). Balances say what the customer holds today, the
  contribution what they actually earned the bank: a customer who just brought money in
  has no contribution yet, one who costs more than they bring has a negative one;
- amounts in another currency are converted at ``reference_rates`` (units of the reporting
  currency per unit); a currency without a rate is left out, and named in the answer;
- the **value band** is ``high`` from ``high_from``, ``medium`` from ``medium_from``, else
  ``low``: absolute thresholds, so a customer's band does not depend on who looks at which
  book; a customer whose segment (``segment.value_band``) differs from it is proposed for
  a segment review;
- the **Pareto curve** of a book: the share of its total AUM (and of its total
  contribution) held by its top 1, 5, 10 and 20 % of customers ranked by that figure, the
  top p % being the ``ceil(n x p / 100)`` first customers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from decimal import ROUND_HALF_UP, Decimal

from crm_events.common import ValueBand

CENT = Decimal("0.01")
PARETO_TOP_PERCENTS = (1, 5, 10, 20)
BOTTOM_FIFTH_PERCENT = 20
REFERENCE_RATES: Mapping[str, Decimal] = {
    "CNY": Decimal(1),
    "USD": Decimal("7.10"),
    "EUR": Decimal("7.80"),
    "GBP": Decimal("9.00"),
    "HKD": Decimal("0.91"),
    "JPY": Decimal("0.048"),
}
"""Default reference rates into CNY; a deployment sets its own (the bank's month-end rates)."""


def cents(amount: Decimal) -> Decimal:
    return amount.quantize(CENT, ROUND_HALF_UP)


@dataclass(frozen=True)
class ValueRule:
    """The parameters of the value rule (see the module's docstring)."""

    aum_weight: Decimal = Decimal("0.01")
    loan_weight: Decimal = Decimal("0.015")
    contribution_weight: Decimal = Decimal(1)
    contribution_months: int = 12
    high_from: Decimal = Decimal(30_000)
    medium_from: Decimal = Decimal(3_000)
    reporting_currency: str = "CNY"
    reference_rates: Mapping[str, Decimal] = field(default_factory=lambda: dict(REFERENCE_RATES))

    def __post_init__(self) -> None:
        if not self.medium_from <= self.high_from:
            raise ValueError("medium_from must not exceed high_from")
        if self.contribution_months < 1:
            raise ValueError("contribution_months must be at least 1")

    def converted(self, amounts: Iterable[tuple[str, Decimal]], unconverted: set[str]) -> Decimal:
        """The sum of ``(currency, amount)`` in the reporting currency; currencies without a
        rate are added to ``unconverted`` and left out."""
        total = Decimal(0)
        for currency, amount in amounts:
            rate = self.reference_rates.get(currency)
            if rate is None:
                unconverted.add(currency)
            else:
                total += amount * rate
        return total

    def value(self, aum: Decimal, loans: Decimal, contribution: Decimal) -> Decimal:
        return cents(
            self.aum_weight * aum
            + self.loan_weight * loans
            + self.contribution_weight * contribution
        )

    def band(self, value: Decimal) -> ValueBand:
        if value >= self.high_from:
            return ValueBand.HIGH
        if value >= self.medium_from:
            return ValueBand.MEDIUM
        return ValueBand.LOW


@dataclass(frozen=True, kw_only=True)
class Amounts:
    """The figures of a customer, or added up over customers, in the reporting currency."""

    aum: Decimal
    loans: Decimal
    revenue: Decimal
    cost: Decimal
    contribution: Decimal
    value: Decimal

    def amounts(self) -> dict[str, Decimal]:
        return {name: getattr(self, name) for name in AMOUNT_NAMES}


AMOUNT_NAMES = tuple(f.name for f in fields(Amounts))


@dataclass(frozen=True, kw_only=True)
class CustomerFigures(Amounts):
    """A customer's figures, and what the rule makes of them."""

    customer_id: str
    manager_id: str | None
    branch_id: str | None
    segment: ValueBand | None
    band: ValueBand

    @property
    def disagrees(self) -> bool:
        """Whether the customer's segment is set and is not their value band."""
        return self.segment is not None and self.segment is not self.band


@dataclass(frozen=True)
class ParetoPoint:
    top_percent: int
    customers: int
    share_percent: Decimal | None
    """Of the book's total; ``None`` when the total is zero. Above 100 when the rest of the
    book adds up to less than nothing (negative contributions)."""


def pareto(
    amounts: Sequence[Decimal], tops: Sequence[int] = PARETO_TOP_PERCENTS
) -> list[ParetoPoint]:
    """The share of the total of ``amounts`` held by the largest top p % of them."""
    ranked = sorted(amounts, reverse=True)
    total = sum(ranked, Decimal(0))
    points = []
    for top in tops:
        count = math.ceil(len(ranked) * top / 100)
        held = sum(ranked[:count], Decimal(0))
        share = cents(held * 100 / total) if total else None
        points.append(ParetoPoint(top, count, share))
    return points


@dataclass(frozen=True, kw_only=True)
class Totals(Amounts):
    customers: int
    median_value: Decimal | None


def totals(figures: Sequence[CustomerFigures]) -> Totals:
    values = sorted(f.value for f in figures)
    middle = len(values) // 2
    median = None
    if values:
        median = (
            values[middle] if len(values) % 2 else cents((values[middle - 1] + values[middle]) / 2)
        )
    added = {
        name: cents(sum((getattr(f, name) for f in figures), Decimal(0))) for name in AMOUNT_NAMES
    }
    return Totals(customers=len(figures), median_value=median, **added)


def bottom_fifth(figures: Sequence[CustomerFigures]) -> list[CustomerFigures]:
    """The bottom 20 % of customers by contribution (``ceil(n / 5)``, the lowest first)."""
    count = math.ceil(len(figures) * BOTTOM_FIFTH_PERCENT / 100)
    return sorted(figures, key=lambda f: (f.contribution, f.customer_id))[:count]


def grouped(
    figures: Iterable[CustomerFigures], key: Callable[[CustomerFigures], str]
) -> dict[str, list[CustomerFigures]]:
    groups: dict[str, list[CustomerFigures]] = {}
    for figure in figures:
        groups.setdefault(key(figure), []).append(figure)
    return dict(sorted(groups.items()))
