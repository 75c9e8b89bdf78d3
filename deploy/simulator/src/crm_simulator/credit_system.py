"""The simulated bank's credit system and management accounting.

The credit system grants credit facilities to the organisations among the customers, some
guaranteed by another company of the same corporate group (:func:`corporate_groups`: the
groups the scripted day records in the CRM); facilities are drawn, repaid, raised and
mature, one action at a time. Each event carries the facility as it stands after it
(``crm_events.credit``). Management accounting states every customer's revenue, cost and
contribution once a month ends, the low value band often costing more than it brings.
Both are deterministic from the seed, with random streams of their own, so core banking's
feed is the same with or without them.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from crm_events import EventPayload
from crm_events import credit as cr
from crm_events.common import ValueBand
from crm_events.management_accounting import ContributionReported, statement_id

from crm_simulator.core_bank import add_months
from crm_simulator.population import SimulatedCustomer

GROUP_SIZE = 3
"""Organisations of one branch are grouped in threes, in population order (a last pair
too; a single one is left alone)."""
LIMIT_CNY = {ValueBand.LOW: 2e6, ValueBand.MEDIUM: 10e6, ValueBand.HIGH: 50e6}
"""Typical facility limit of an organisation, by value band."""
MAX_FACILITIES = 3
GUARANTEED_SHARE = 0.4
"""Share of the facilities of a group's company that another company of it guarantees."""
MONTHLY_REVENUE = {ValueBand.LOW: 80, ValueBand.MEDIUM: 900, ValueBand.HIGH: 4_000}
MONTHLY_COST = {ValueBand.LOW: 320, ValueBand.MEDIUM: 400, ValueBand.HIGH: 800}
"""CNY a month an individual customer typically brings and costs, by value band ..."""
ORGANISATION_REVENUE_FACTOR, ORGANISATION_COST_FACTOR = 4, 3
"""... and how much more an organisation does."""
STATED_MONTHS_AT_START = 3
"""The feed begins with the statements of this many months before the month it starts in:
those stated before it starts at once, the last one on the first of that month at 06:00."""

_Change = tuple[str, int, EventPayload]


def corporate_groups(customers: Sequence[SimulatedCustomer]) -> dict[str, tuple[str, int]]:
    """Each grouped organisation's group id and its place in the group (0: the parent)."""
    by_branch: dict[str, list[SimulatedCustomer]] = {}
    for customer in customers:
        if customer.is_organisation:
            by_branch.setdefault(customer.branch_id, []).append(customer)
    groups: dict[str, tuple[str, int]] = {}
    for branch_id, organisations in sorted(by_branch.items()):
        for n in range(0, len(organisations), GROUP_SIZE):
            members = organisations[n : n + GROUP_SIZE]
            if len(members) < 2:
                continue
            group_id = f"GRP-{branch_id}-{n // GROUP_SIZE + 1:02d}"
            groups |= {m.customer_id: (group_id, place) for place, m in enumerate(members)}
    return groups


@dataclass(eq=False)
class _Facility:
    id: str
    borrower: SimulatedCustomer
    facility_type: cr.FacilityType
    limit: int
    maturity: date
    guarantees: dict[str, int] = field(default_factory=dict)
    drawn: int = 0
    status: cr.FacilityStatus = cr.FacilityStatus.OPEN
    version: int = 0

    def terms(self) -> dict[str, object]:
        return {
            "customer_id": self.borrower.customer_id,
            "facility_type": self.facility_type,
            "currency": "CNY",
            "limit": Decimal(self.limit),
            "drawn": Decimal(self.drawn),
            "maturity_date": self.maturity,
            "status": self.status,
            "guarantees": [
                cr.Guarantee(guarantor_customer_id=g, amount=Decimal(a))
                for g, a in sorted(self.guarantees.items())
            ],
        }


class CreditSystem:
    """The simulated credit system's facilities, changed one action at a time."""

    def __init__(self, customers: Sequence[SimulatedCustomer], rng: random.Random) -> None:
        self.rng = rng
        self.borrowers = [c for c in customers if c.is_organisation]
        self.groups = corporate_groups(customers)
        self.members: dict[str, list[str]] = {}
        for customer_id, (group_id, _) in self.groups.items():
            self.members.setdefault(group_id, []).append(customer_id)
        self.facilities: dict[str, list[_Facility]] = {c.customer_id: [] for c in self.borrowers}
        self.serial = 0
        self.today = date.min
        self.changes: list[_Change] = []

    def step(self, now: datetime) -> list[_Change]:
        """What the credit system does at ``now``: facilities due mature, then one
        organisation's facility is granted, drawn, repaid or raised."""
        self.today, self.changes = now.date(), []
        if not self.borrowers:
            return []
        for facilities in self.facilities.values():
            for facility in facilities:
                if facility.status is cr.FacilityStatus.OPEN and facility.maturity <= self.today:
                    facility.status = cr.FacilityStatus.MATURED
                    self.emit(facility, cr.FacilityMatured, matured_on=self.today)
        borrower = self.rng.choice(self.borrowers)
        owned = [
            f
            for f in self.facilities[borrower.customer_id]
            if f.drawn or f.status is cr.FacilityStatus.OPEN
        ]
        if not owned or (len(owned) < MAX_FACILITIES and self.rng.random() < 0.1):
            self.grant(borrower)
        else:
            self.move(self.rng.choice(owned))
        return self.changes

    def emit(self, facility: _Facility, kind: type[EventPayload], **fields: object) -> None:
        facility.version += 1
        payload = kind.model_validate(facility.terms() | fields)
        self.changes.append((facility.id, facility.version, payload))

    def grant(self, borrower: SimulatedCustomer) -> None:
        rng = self.rng
        self.serial += 1
        limit = round(LIMIT_CNY[borrower.value_band] * rng.uniform(0.5, 1.5), -4)
        facility = _Facility(
            id=f"CF{borrower.branch_id[-3:]}{self.serial:07d}",
            borrower=borrower,
            facility_type=rng.choice(list(cr.FacilityType)),
            limit=int(limit),
            maturity=add_months(self.today, rng.choice((12, 24, 36))),
        )
        group = self.groups.get(borrower.customer_id)
        others = (
            [m for m in self.members.get(group[0], []) if m != borrower.customer_id]
            if group
            else []
        )
        if others and rng.random() < GUARANTEED_SHARE:
            facility.guarantees[rng.choice(others)] = int(limit * rng.choice((0.5, 1.0)))
        self.facilities[borrower.customer_id].append(facility)
        self.emit(facility, cr.FacilityGranted, granted_on=self.today)

    def move(self, facility: _Facility) -> None:
        """Draw on an open facility, repay, or raise its limit."""
        rng, room = self.rng, facility.limit - facility.drawn
        is_open = facility.status is cr.FacilityStatus.OPEN
        if is_open and room > 0 and (not facility.drawn or rng.random() < 0.45):
            amount = min(room, max(10_000, int(round(room * rng.uniform(0.1, 0.6), -4))))
            facility.drawn += amount
            self.emit(facility, cr.FacilityDrawn, amount=Decimal(amount), drawn_on=self.today)
        elif facility.drawn and (not is_open or rng.random() < 0.85):
            whole = not is_open or rng.random() < 0.2
            part = max(10_000, int(round(facility.drawn * 0.3, -4)))
            amount = facility.drawn if whole else min(part, facility.drawn)
            facility.drawn -= amount
            self.emit(facility, cr.FacilityRepaid, amount=Decimal(amount), repaid_on=self.today)
        elif is_open:
            facility.limit = int(round(facility.limit * 1.2, -4))
            self.emit(facility, cr.FacilityChanged, changed_on=self.today)


def month_of(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def monthly_statements(
    customers: Sequence[SimulatedCustomer], month: str, seed: int
) -> list[_Change]:
    """Management accounting's statements of ``month`` (``YYYY-MM``), one per customer."""
    statements: list[_Change] = []
    for customer in customers:
        rng = random.Random(f"mis/{seed}/{customer.customer_id}/{month}")
        band, organisation = customer.value_band, customer.is_organisation
        revenue_factor = ORGANISATION_REVENUE_FACTOR if organisation else 1
        cost_factor = ORGANISATION_COST_FACTOR if organisation else 1
        revenue = round(MONTHLY_REVENUE[band] * revenue_factor * rng.lognormvariate(0, 0.5), 2)
        cost = round(MONTHLY_COST[band] * cost_factor * rng.uniform(0.8, 1.2), 2)
        revenue_d, cost_d = Decimal(str(revenue)), Decimal(str(cost))
        payload = ContributionReported(
            customer_id=customer.customer_id,
            month=month,
            currency="CNY",
            interest_income=(revenue_d * Decimal("0.7")).quantize(Decimal("0.01")),
            revenue=revenue_d,
            cost=cost_d,
            contribution=revenue_d - cost_d,
        )
        statements.append((statement_id(customer.customer_id, month), 1, payload))
    return statements
