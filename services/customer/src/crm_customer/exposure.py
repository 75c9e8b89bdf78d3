"""Credit exposure: what the bank stands to lose on a customer, or on a corporate group.

The rule (``docs/analysis.md``, "Credit exposure"), applied to a set of customers (one
customer, or a group's members):

- a facility *borrowed* by one of them counts directly: its limit, drawn amount and
  exposure, the larger of the two while it is open (the borrower may draw up to the
  limit), what is still drawn once it has matured (nothing more may be drawn);
- a facility borrowed by someone else and *guaranteed* by one or more of them counts
  through the guarantee: the guaranteed amount (their guarantees on it added up), capped
  at the facility's own exposure, and as much of it drawn;
- a facility borrowed inside the set and guaranteed inside it counts once, directly;
- figures are per currency (no exchange rates are applied); utilisation is the drawn share
  of the limit of the open facilities borrowed directly;
- the next maturity is the earliest maturity date of the open facilities counted.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum

PERCENT = Decimal("0.01")
"""Utilisation is given in percent to two decimals."""


class Relation(StrEnum):
    BORROWER = "borrower"
    GUARANTOR = "guarantor"


@dataclass(frozen=True)
class Facility:
    """A facility as the credit system last stated it."""

    facility_id: str
    borrower_id: str
    facility_type: str
    currency: str
    limit: Decimal
    drawn: Decimal
    maturity_date: date
    open: bool
    guarantees: dict[str, Decimal] = field(default_factory=dict)
    """Guaranteed amount by guarantor's customer id."""

    @property
    def exposure(self) -> Decimal:
        return max(self.limit, self.drawn) if self.open else self.drawn


@dataclass(frozen=True)
class Counted:
    """One facility as it counts for the set of customers."""

    facility: Facility
    relation: Relation
    exposure: Decimal
    drawn: Decimal


@dataclass
class CurrencyExposure:
    """The figures of one currency."""

    currency: str
    limit: Decimal = Decimal(0)
    """Of the facilities borrowed directly."""
    drawn: Decimal = Decimal(0)
    """Of the facilities borrowed directly."""
    open_limit: Decimal = Decimal(0)
    open_drawn: Decimal = Decimal(0)
    direct_exposure: Decimal = Decimal(0)
    guaranteed_exposure: Decimal = Decimal(0)
    guaranteed_drawn: Decimal = Decimal(0)

    @property
    def total_exposure(self) -> Decimal:
        return self.direct_exposure + self.guaranteed_exposure

    @property
    def utilisation_percent(self) -> Decimal | None:
        """Drawn share of the open direct limit; ``None`` without an open limit."""
        if not self.open_limit:
            return None
        return (self.open_drawn * 100 / self.open_limit).quantize(PERCENT, ROUND_HALF_UP)


@dataclass(frozen=True)
class Exposure:
    counted: list[Counted]
    by_currency: list[CurrencyExposure]
    next_maturity: Facility | None


def counted_for(customers: Collection[str], facilities: Iterable[Facility]) -> list[Counted]:
    """How each facility counts for ``customers`` (those that do not are left out)."""
    counted = []
    for facility in facilities:
        if facility.borrower_id in customers:
            counted.append(Counted(facility, Relation.BORROWER, facility.exposure, facility.drawn))
            continue
        guaranteed = sum(
            (amount for guarantor, amount in facility.guarantees.items() if guarantor in customers),
            Decimal(0),
        )
        if guaranteed:
            counted.append(
                Counted(
                    facility,
                    Relation.GUARANTOR,
                    min(guaranteed, facility.exposure),
                    min(guaranteed, facility.drawn),
                )
            )
    return sorted(counted, key=lambda c: c.facility.facility_id)


def exposure(customers: Collection[str], facilities: Iterable[Facility]) -> Exposure:
    """The exposure of ``customers`` (one customer or a group's members) to ``facilities``."""
    counted = counted_for(customers, facilities)
    currencies: dict[str, CurrencyExposure] = {}
    for item in counted:
        f = item.facility
        figures = currencies.setdefault(f.currency, CurrencyExposure(f.currency))
        if item.relation is Relation.BORROWER:
            figures.limit += f.limit
            figures.drawn += f.drawn
            figures.direct_exposure += item.exposure
            if f.open:
                figures.open_limit += f.limit
                figures.open_drawn += f.drawn
        else:
            figures.guaranteed_exposure += item.exposure
            figures.guaranteed_drawn += item.drawn
    still_open = [item.facility for item in counted if item.facility.open]
    next_maturity = min(still_open, key=lambda f: (f.maturity_date, f.facility_id), default=None)
    return Exposure(counted, [currencies[c] for c in sorted(currencies)], next_maturity)
