"""Response figures: what a set of targets reached, what it cost and what it earned.

A :class:`Tally` counts, per stage, the targets of a group (from :func:`tally_pipeline`,
an aggregation over ``campaign_targets``); :class:`Pricing` turns tallies into
:class:`FunnelRow` s.

- Each stage column counts the targets that reached that stage; stages are not implied
  (a phone target is ``contacted`` without being ``sent`` anything).
  ``opened_or_contacted`` counts the targets that did either.
- Response rate = responded / targeted; conversion rate = converted / targeted.
- Cost: the contract carries a campaign's budget, not its spending, so the budget is the
  cost; a row gets the share of its targets. Cost per response = cost / responded.
  Revenue is per currency; ROI = (revenue in the budget's currency - cost) / cost.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from crm_backbone.projection import Document
from crm_events.campaign import ResponseStage
from pydantic import BaseModel, Field

STAGES = tuple(stage.value for stage in ResponseStage)
CENT = Decimal("0.01")

Amounts = dict[str, str]
"""Currency -> exact decimal amount as text."""


class SegmentKey(BaseModel):
    value_band: str | None
    corporate_tier: str | None = None


class FunnelRow(BaseModel):
    """Response figures of a set of targets: one channel and segment, or a subtotal."""

    channel: str | None = Field(None, description="None in totals and segment subtotals")
    segment: SegmentKey | None = Field(None, description="None in totals and channel subtotals")
    targeted: int
    sent: int
    delivered: int
    opened: int
    contacted: int
    opened_or_contacted: int
    responded: int
    converted: int
    opted_out: int
    response_rate: float | None = Field(description="responded / targeted")
    conversion_rate: float | None = Field(description="converted / targeted")
    cost: str | None = Field(description="The row's share of the budget, in its currency")
    cost_per_response: str | None
    revenue: Amounts = Field(description="Revenue attributed on conversion, per currency")
    roi: float | None = Field(description="(revenue - cost) / cost, in the budget's currency")


@dataclass
class Tally:
    """Counts per stage (and ``targeted``, ``opened_or_contacted``) and revenue per currency."""

    counts: Counter[str] = field(default_factory=Counter)
    revenue: defaultdict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))

    @classmethod
    def of(cls, group: Document) -> Tally:
        tally = cls(Counter({name: group.get(name, 0) for name in _COUNTED}))
        for item in group.get("revenue", []):
            tally.revenue[item["currency"]] += item["amount"].to_decimal()
        return tally

    def __add__(self, other: Tally) -> Tally:
        revenue = defaultdict(Decimal, self.revenue)
        for currency, amount in other.revenue.items():
            revenue[currency] += amount
        return Tally(self.counts + other.counts, revenue)


_COUNTED = ("targeted", *STAGES, "opened_or_contacted")


def _reached(stage: str) -> Document:
    return {"$ifNull": [f"$stages.{stage}", False]}


def tally_pipeline(match: Document, group_by: Any) -> list[Document]:
    """Tallies of the matching targets, one per value of ``group_by``."""
    counts = {stage: {"$sum": {"$cond": [_reached(stage), 1, 0]}} for stage in STAGES}
    return [
        {"$match": match},
        {
            "$group": {
                "_id": group_by,
                "targeted": {"$sum": {"$cond": [{"$eq": ["$targeted", True]}, 1, 0]}},
                **counts,
                "opened_or_contacted": {
                    "$sum": {"$cond": [{"$or": [_reached("opened"), _reached("contacted")]}, 1, 0]}
                },
                "revenue": {
                    "$push": {
                        "$cond": [
                            {"$ifNull": ["$revenue", False]},
                            {"currency": "$revenue_currency", "amount": "$revenue"},
                            "$$REMOVE",
                        ]
                    }
                },
            }
        },
    ]


@dataclass(frozen=True)
class Pricing:
    """Turns tallies into rows, giving each its targets' share of the budget."""

    budget: dict[str, str] | None
    targeted: int
    """All the campaign's targets."""

    def row(
        self, tally: Tally, channel: str | None = None, segment: SegmentKey | None = None
    ) -> FunnelRow:
        c = tally.counts
        cost = self._cost(c["targeted"])
        cost_per_response = roi = None
        if cost and c["responded"]:
            cost_per_response = (cost / c["responded"]).quantize(CENT)
        if cost and self.budget:
            earned = tally.revenue.get(self.budget["currency"], Decimal(0))
            roi = round(float((earned - cost) / cost), 4)
        return FunnelRow(
            channel=channel,
            segment=segment,
            **{name: c[name] for name in _COUNTED},
            response_rate=_rate(c["responded"], c["targeted"]),
            conversion_rate=_rate(c["converted"], c["targeted"]),
            cost=None if cost is None else format(cost, "f"),
            cost_per_response=None if cost_per_response is None else format(cost_per_response, "f"),
            revenue={k: format(v, "f") for k, v in sorted(tally.revenue.items())},
            roi=roi,
        )

    def _cost(self, targeted: int) -> Decimal | None:
        if self.budget is None or not self.targeted:
            return None
        return (Decimal(self.budget["amount"]) * targeted / self.targeted).quantize(CENT)


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def grouped(tallies: dict[Any, Tally], pick: Callable[[Any], Any]) -> list[tuple[Any, Tally]]:
    """The tallies summed by ``pick`` of their keys, in key order (None first)."""
    groups: dict[Any, Tally] = defaultdict(Tally)
    for key, tally in tallies.items():
        groups[pick(key)] = groups[pick(key)] + tally
    return sorted(groups.items(), key=lambda item: _sortable(item[0]))


def _sortable(key: Hashable) -> Any:
    if isinstance(key, tuple):
        return tuple("" if part is None else str(part) for part in key)
    return "" if key is None else str(key)
