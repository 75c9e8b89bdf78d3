"""Manager performance and the league table: the rules (``docs/analysis.md``).

- **Periods**: a day, a calendar month or a calendar year holding a date; the previous
  period is the one just before (the previous day, month, year).
- **The book on the day**: every figure of a customer is credited to the manager (and
  their branch) who holds the customer on that day, as ``RelationshipManagerAssigned``
  says from the day it was made; a reassigned customer's balances and facts move to the
  new manager from the day of the reassignment. A branch's figures are its managers'
  sums, a region's its branches' (the region as HR places the branch now).
- **Daily average**: each day's closing position is the last balance change on or before
  that day (a day with no change carries the previous closing forward; before an
  account's first change the CRM knows it counts zero); the period's average is the sum
  of the days' closings credited to the manager divided by the number of days of the
  period (so days the manager did not hold a customer count zero for them).
- **Period end**: the closings of the period's last day, of the customers held that day.
- Amounts are in the reporting currency at the reference rates (``customer_value``);
  deposits are current, savings and time deposit accounts; loans are loans; AUM is every
  asset type (``ASSET_TYPES``).
- **Counts**: new customers (registered), customers lost (status became churned), contacts
  made, tasks done and done on time (completed no later than due), complaints closed and
  closed within SLA (resolved no later than the SLA due time; one without an SLA due time
  is within it), won opportunities and their value (the expected value when won), each on
  the day of its moment; customers and products held at the period's end (accounts opened
  on or before it and not closed by it) and products per customer.
- **Ranking**: the rows of the whole league (every manager, branch or region) ordered by
  the figure chosen, highest first; equal figures share a rank (1, 2, 2, 4).
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from enum import StrEnum

from crm_backbone.access import Reach, in_reach
from crm_events.core_banking import ASSET_TYPES, ProductType


class PeriodKind(StrEnum):
    DAY = "day"
    MONTH = "month"
    YEAR = "year"


class GroupBy(StrEnum):
    MANAGER = "manager"
    BRANCH = "branch"
    REGION = "region"


DEPOSIT_TYPES = frozenset({ProductType.CURRENT, ProductType.SAVINGS, ProductType.TIME_DEPOSIT})
LOAN_TYPES = frozenset({ProductType.LOAN})
POSITION_CLASSES: Mapping[str, frozenset[ProductType]] = {
    "deposits": DEPOSIT_TYPES,
    "loans": LOAN_TYPES,
    "aum": ASSET_TYPES,
}
"""Each position figure and the product types it adds up."""

COUNTS = (
    "new_customers",
    "customers_lost",
    "contacts",
    "tasks_done",
    "tasks_done_on_time",
    "complaints_closed",
    "complaints_closed_within_sla",
    "opportunities_won",
    "customers",
    "products",
)
"""Additive counts of a row."""
AMOUNTS = (
    *(f"{name}_day_sum" for name in POSITION_CLASSES),
    *(f"{name}_end" for name in POSITION_CLASSES),
    "won_value",
)
"""Additive amounts of a row (a ``_day_sum`` is the sum of the period's daily closings)."""


@dataclass(frozen=True)
class Period:
    kind: PeriodKind
    start: date
    end: date
    """The last day, included."""

    @classmethod
    def holding(cls, kind: PeriodKind, day: date) -> Period:
        match kind:
            case PeriodKind.DAY:
                return cls(kind, day, day)
            case PeriodKind.MONTH:
                last = calendar.monthrange(day.year, day.month)[1]
                return cls(kind, day.replace(day=1), day.replace(day=last))
            case PeriodKind.YEAR:
                return cls(kind, date(day.year, 1, 1), date(day.year, 12, 31))

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def previous(self) -> Period:
        return Period.holding(self.kind, self.start - timedelta(days=1))


Figures = dict[str, Decimal | int | None]
"""A row's figures by name, as ``GET /performance`` shows them."""


@dataclass
class Tally:
    """A row's additive figures: managers' tallies add up to their branch's."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTS, 0))
    amounts: dict[str, Decimal] = field(default_factory=lambda: dict.fromkeys(AMOUNTS, Decimal(0)))

    def add(self, other: Tally) -> None:
        for name, count in other.counts.items():
            self.counts[name] += count
        for name, amount in other.amounts.items():
            self.amounts[name] += amount

    def figures(self, period: Period) -> Figures:
        """What a row shows: the counts, the period-end positions, the daily averages
        and products per customer (none without customers)."""
        customers, products = self.counts["customers"], self.counts["products"]
        shown: Figures = dict(self.counts)
        for name in POSITION_CLASSES:
            shown[f"{name}_end"] = self.amounts[f"{name}_end"]
            shown[f"{name}_daily_average"] = round(self.amounts[f"{name}_day_sum"] / period.days, 2)
        shown["won_value"] = self.amounts["won_value"]
        shown["products_per_customer"] = (
            round(Decimal(products) / customers, 2) if customers else None
        )
        return shown


def change(now: Figures, before: Figures | None) -> Figures | None:
    """Each figure minus the previous period's (none where either is none)."""
    if before is None:
        return None
    return {name: _minus(value, before[name]) for name, value in now.items()}


def _minus(value: Decimal | int | None, other: Decimal | int | None) -> Decimal | int | None:
    return None if value is None or other is None else value - other


RANKED_FIGURES = (
    *(f"{name}_daily_average" for name in POSITION_CLASSES),
    *(f"{name}_end" for name in POSITION_CLASSES),
    "won_value",
    *COUNTS,
    "products_per_customer",
)
"""The figures a league may be ranked by."""


def ranks(values: Mapping[str, Decimal | int | None]) -> dict[str, int]:
    """Competition ranks, highest first (equal values share a rank; none ranks last)."""
    ordered = sorted(values.items(), key=lambda kv: (kv[1] is None, -(kv[1] or 0), kv[0]))
    ranked: dict[str, int] = {}
    rank, last = 0, None
    for position, (key, value) in enumerate(ordered, start=1):
        if position == 1 or value != last:
            rank, last = position, value
        ranked[key] = rank
    return ranked


@dataclass(frozen=True)
class RowKey:
    """Who a row is: a manager at a branch, a branch, or a region and its branches."""

    key: str
    manager_id: str | None = None
    branch_id: str | None = None
    region_id: str | None = None
    branch_ids: frozenset[str] = frozenset()


def visible(reach: Reach, row: RowKey) -> bool:
    """Whether the caller sees a row's figures: a manager's when the manager's customers
    are in their reach (a relationship manager: their own), a branch's when the branch is,
    a region's when every branch of it is (``docs/analysis.md``: others' ranks only)."""
    if row.manager_id is not None:
        return in_reach(reach, {"manager_id": row.manager_id, "branch_id": row.branch_id})
    if row.branch_id is not None:
        return in_reach(reach, {"branch_id": row.branch_id})
    return bool(row.branch_ids) and all(
        in_reach(reach, {"branch_id": branch}) for branch in row.branch_ids
    )


def fold(
    rows: Iterable[tuple[str, str, Tally]],
    group_by: GroupBy,
    regions: Mapping[str, str],
) -> dict[RowKey, Tally]:
    """Managers' tallies (manager, branch, tally) folded into the rows of ``group_by``;
    ``regions`` maps each branch to its region (a branch without one is left out of a
    league of regions)."""
    folded: dict[RowKey, Tally] = {}
    members: dict[str, set[str]] = {}
    for branch, region in regions.items():
        members.setdefault(region, set()).add(branch)
    for manager, branch, tally in rows:
        match group_by:
            case GroupBy.MANAGER:
                key = RowKey(f"{manager}@{branch}", manager_id=manager, branch_id=branch)
            case GroupBy.BRANCH:
                key = RowKey(branch, branch_id=branch)
            case GroupBy.REGION:
                region_id = regions.get(branch)
                if region_id is None:
                    continue
                key = RowKey(
                    region_id, region_id=region_id, branch_ids=frozenset(members[region_id])
                )
        folded.setdefault(key, Tally()).add(tally)
    return folded
