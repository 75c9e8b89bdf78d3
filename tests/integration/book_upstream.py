"""A book of corporate customers as the bank's upstream systems describe it, for the credit
exposure and customer value tests: core banking's accounts, the credit system's facilities
and management accounting's statements, sent late, duplicated and out of order; and the
figures expected from them, worked out here by hand from the events sent (never by the
customer service's code).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from crm_events import Envelope, EventPayload, to_kafka
from crm_events import core_banking as cb
from crm_events import credit as cr
from crm_events import management_accounting as mis
from crm_events.common import Money
from crm_events.topics import Service, topic_for

D = Decimal
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
RATES = {"CNY": D(1), "USD": D("7.10")}
"""The service's default reference rates of the currencies used here."""
AUM_WEIGHT, LOAN_WEIGHT = D("0.01"), D("0.015")
HIGH_FROM, MEDIUM_FROM = D(30_000), D(3_000)


@dataclass(frozen=True)
class Sent:
    """An event as sent: its aggregate, version and payload, and who sends it."""

    aggregate_id: str
    version: int
    payload: EventPayload
    system: Service

    def record(self, route: Callable[[str], str], n: int) -> tuple[str, Any]:
        envelope = Envelope.new(
            self.payload,
            self.aggregate_id,
            self.version,
            actor=self.system.value,
            source=self.system.source,
            time=T0 + timedelta(seconds=n),
        )
        return route(topic_for(envelope.type).name), tuple(to_kafka(envelope))


def terms(
    borrower: str,
    limit: int,
    drawn: int,
    maturity: date,
    *,
    currency: str = "CNY",
    guarantees: Mapping[str, int] | None = None,
    status: cr.FacilityStatus = cr.FacilityStatus.OPEN,
) -> dict[str, Any]:
    return {
        "customer_id": borrower,
        "facility_type": cr.FacilityType.REVOLVING,
        "currency": currency,
        "limit": D(limit),
        "drawn": D(drawn),
        "maturity_date": maturity,
        "status": status,
        "guarantees": [
            cr.Guarantee(guarantor_customer_id=g, amount=D(a))
            for g, a in (guarantees or {}).items()
        ],
    }


class Book:
    """Customers A, B, C (RM-0001, BR-001) and D (RM-0005, BR-002) of one test run; A, B
    and D are a corporate group, C is not in it; X is a borrower the CRM does not know."""

    def __init__(self, run: str) -> None:
        self.a, self.b, self.c, self.d, self.x = (f"C-{run}-{n}" for n in "ABCDX")
        self.group = f"GRP-{run}"
        self.run = run

    def accounts(self) -> list[Sent]:
        """A's time deposit, B's USD current account, C's loan, each opened and funded."""
        sent = []
        for n, (owner, kind, currency, balance) in enumerate(
            (
                (self.a, cb.ProductType.TIME_DEPOSIT, "CNY", 2_000_000),
                (self.b, cb.ProductType.CURRENT, "USD", 100_000),
                (self.c, cb.ProductType.LOAN, "CNY", 300_000),
            )
        ):
            account = f"AC-{self.run}-{n}"
            opened = cb.AccountOpened(
                customer_id=owner,
                product_code="P-1",
                product_name="Product",
                product_type=kind,
                currency=currency,
                branch_id="BR-001",
                opened_on=T0.date(),
            )
            funded = cb.HoldingBalanceChanged(
                customer_id=owner,
                product_type=kind,
                previous_balance=Money(amount=D(0), currency=currency),
                balance=Money(amount=D(balance), currency=currency),
                changed_at=T0,
            )
            sent += [
                Sent(account, 1, opened, Service.CORE_BANKING),
                Sent(account, 2, funded, Service.CORE_BANKING),
            ]
        return sent

    def facilities(self) -> list[Sent]:
        """Every facility's events, in version order."""
        a, b, c, d, x = self.a, self.b, self.c, self.d, self.x
        mature, day = date(2027, 6, 30), T0.date()

        def facility(name: str, *events: EventPayload) -> list[Sent]:
            return [
                Sent(f"CF-{self.run}-{name}", v, e, Service.CREDIT) for v, e in enumerate(events, 1)
            ]

        return [
            *facility(
                "1",
                cr.FacilityGranted(**terms(a, 1_000_000, 0, mature), granted_on=day),
                cr.FacilityDrawn(
                    **terms(a, 1_000_000, 400_000, mature), amount=D(400_000), drawn_on=day
                ),
                cr.FacilityChanged(
                    **terms(a, 1_500_000, 400_000, mature, guarantees={b: 500_000}), changed_on=day
                ),
                cr.FacilityRepaid(
                    **terms(a, 1_500_000, 300_000, mature, guarantees={b: 500_000}),
                    amount=D(100_000),
                    repaid_on=day,
                ),
            ),
            *facility(
                "2",
                cr.FacilityGranted(
                    **terms(d, 200_000, 0, date(2027, 3, 31), guarantees={a: 300_000}),
                    granted_on=day,
                ),
                cr.FacilityDrawn(
                    **terms(d, 200_000, 200_000, date(2027, 3, 31), guarantees={a: 300_000}),
                    amount=D(200_000),
                    drawn_on=day,
                ),
            ),
            *facility(
                "3",
                cr.FacilityGranted(**terms(c, 100_000, 0, date(2026, 6, 30)), granted_on=day),
                cr.FacilityDrawn(
                    **terms(c, 100_000, 50_000, date(2026, 6, 30)), amount=D(50_000), drawn_on=day
                ),
                cr.FacilityMatured(
                    **terms(
                        c, 100_000, 50_000, date(2026, 6, 30), status=cr.FacilityStatus.MATURED
                    ),
                    matured_on=date(2026, 6, 30),
                ),
            ),
            *facility(
                "4",
                cr.FacilityGranted(
                    **terms(x, 5_000_000, 2_500_000, date(2028, 1, 31), guarantees={b: 1_000_000}),
                    granted_on=day,
                ),
            ),
            *facility(
                "5",
                cr.FacilityGranted(
                    **terms(a, 100_000, 10_000, date(2026, 12, 31), currency="USD"), granted_on=day
                ),
            ),
        ]

    def statements(self) -> list[Sent]:
        """Management accounting's statements, A's October restated (version 2)."""

        def statement(customer: str, month: str, revenue: int, cost: int, version: int = 1) -> Sent:
            payload = mis.ContributionReported(
                customer_id=customer,
                month=month,
                currency="CNY",
                interest_income=D(revenue) * D("0.8"),
                revenue=D(revenue),
                cost=D(cost),
                contribution=D(revenue - cost),
            )
            subject = mis.statement_id(customer, month)
            return Sent(subject, version, payload, Service.MANAGEMENT_ACCOUNTING)

        a, b, c, d = self.a, self.b, self.c, self.d
        return [
            statement(a, "2026-09", 20_000, 5_000),
            statement(a, "2026-10", 10_000, 4_000),
            statement(a, "2026-10", 12_000, 4_000, version=2),
            statement(b, "2026-09", 3_000, 9_000),
            statement(b, "2026-10", 2_000, 8_000),
            statement(c, "2025-10", 50_000, 0),  # before the 12 months' window
            statement(c, "2026-09", 1_000, 1_500),
            statement(c, "2026-10", 1_000, 500),
            statement(d, "2026-09", 4_000, 1_000),
        ]


def disordered(events: list[Sent]) -> list[Sent]:
    """``events`` sent as a network and a replaying system would: each aggregate's versions
    reversed in pairs (a version arrives before the one it follows, which comes late), then
    every event again."""
    swapped: list[Sent] = []
    for n in range(0, len(events) - 1, 2):
        swapped += [events[n + 1], events[n]]
    if len(events) % 2:
        swapped.append(events[-1])
    return swapped + events


def latest(events: Iterable[Sent]) -> dict[str, EventPayload]:
    """Each aggregate's payload of the highest version sent."""
    versions: dict[str, Sent] = {}
    for event in events:
        if (
            event.aggregate_id not in versions
            or event.version > versions[event.aggregate_id].version
        ):
            versions[event.aggregate_id] = event
    return {key: sent.payload for key, sent in versions.items()}


def expected_exposure(
    customers: set[str], facilities: Mapping[str, EventPayload], named: set[str]
) -> dict[str, Any]:
    """The exposure of ``customers``, by hand: a borrowed facility counts its limit while
    open (or its drawn amount when larger), its drawn amount once matured; a guaranteed one
    the guarantees of ``customers`` on it, capped at that; once each."""
    counted: list[dict[str, Any]] = []
    currencies: dict[str, dict[str, Decimal]] = {}
    for facility_id, payload in sorted(facilities.items()):
        assert isinstance(payload, cr.FacilityTerms)
        is_open = payload.status is cr.FacilityStatus.OPEN
        own = max(payload.limit, payload.drawn) if is_open else payload.drawn
        guaranteed = sum(
            (g.amount for g in payload.guarantees if g.guarantor_customer_id in customers), D(0)
        )
        if payload.customer_id in customers:
            relation, exposure, drawn = "borrower", own, payload.drawn
        elif guaranteed:
            relation, exposure, drawn = (
                "guarantor",
                min(guaranteed, own),
                min(guaranteed, payload.drawn),
            )
        else:
            continue
        figures = currencies.setdefault(
            payload.currency,
            dict.fromkeys(
                ("limit", "drawn", "open_limit", "open_drawn", "direct", "guaranteed", "g_drawn"),
                D(0),
            ),
        )
        if relation == "borrower":
            figures["limit"] += payload.limit
            figures["drawn"] += payload.drawn
            figures["direct"] += exposure
            if is_open:
                figures["open_limit"] += payload.limit
                figures["open_drawn"] += payload.drawn
        else:
            figures["guaranteed"] += exposure
            figures["g_drawn"] += drawn
        counted.append(
            {
                "facility_id": facility_id,
                "relation": relation,
                "borrower_customer_id": payload.customer_id
                if payload.customer_id in named
                else None,
                "status": payload.status.value,
                "currency": payload.currency,
                "limit": payload.limit,
                "drawn": payload.drawn,
                "maturity_date": payload.maturity_date.isoformat(),
                "exposure": exposure,
                "exposure_drawn": drawn,
                "open": is_open,
            }
        )
    by_currency = [
        {
            "currency": currency,
            "limit": f["limit"],
            "drawn": f["drawn"],
            "utilisation_percent": round(f["open_drawn"] * 100 / f["open_limit"], 2)
            if f["open_limit"]
            else None,
            "direct_exposure": f["direct"],
            "guaranteed_exposure": f["guaranteed"],
            "guaranteed_drawn": f["g_drawn"],
            "total_exposure": f["direct"] + f["guaranteed"],
        }
        for currency, f in sorted(currencies.items())
    ]
    still_open = sorted(
        (c for c in counted if c["open"]), key=lambda c: (c["maturity_date"], c["facility_id"])
    )
    return {
        "by_currency": by_currency,
        "next_maturity": still_open[0]["facility_id"] if still_open else None,
        "facilities": [{k: v for k, v in c.items() if k != "open"} for c in counted],
    }


@dataclass(frozen=True)
class Expected:
    """A customer's value figures, by hand, in CNY."""

    customer_id: str
    aum: Decimal
    loans: Decimal
    revenue: Decimal
    cost: Decimal
    contribution: Decimal

    @property
    def value(self) -> Decimal:
        return round(AUM_WEIGHT * self.aum + LOAN_WEIGHT * self.loans + self.contribution, 2)

    @property
    def band(self) -> str:
        if self.value >= HIGH_FROM:
            return "high"
        return "medium" if self.value >= MEDIUM_FROM else "low"


def expected_values(book: Book, customers: list[str]) -> dict[str, Expected]:
    """The value figures of ``customers`` from what ``book`` sends: open asset and loan
    balances, drawn facilities they borrow, statements of the 12 months to October 2026."""
    balances = latest(book.accounts())
    facilities = latest(book.facilities())
    statements = latest(book.statements())
    expected = {}
    for customer in customers:
        aum = loans = D(0)
        for payload in balances.values():
            if isinstance(payload, cb.HoldingBalanceChanged) and payload.customer_id == customer:
                amount = payload.balance.amount * RATES[payload.balance.currency]
                if payload.product_type is cb.ProductType.LOAN:
                    loans += amount
                else:
                    aum += amount
        for payload in facilities.values():
            assert isinstance(payload, cr.FacilityTerms)
            if payload.customer_id == customer:
                loans += payload.drawn * RATES[payload.currency]
        mine = [
            s
            for s in statements.values()
            if isinstance(s, mis.ContributionReported)
            and s.customer_id == customer
            and "2025-11" <= s.month <= "2026-10"
        ]
        expected[customer] = Expected(
            customer,
            aum,
            loans,
            sum((s.revenue for s in mine), D(0)),
            sum((s.cost for s in mine), D(0)),
            sum((s.contribution for s in mine), D(0)),
        )
    return expected


def expected_pareto(amounts: list[Decimal]) -> list[tuple[int, int, Decimal | None]]:
    ranked, total = sorted(amounts, reverse=True), sum(amounts, D(0))
    points = []
    for top in (1, 5, 10, 20):
        count = math.ceil(len(ranked) * top / 100)
        share = round(sum(ranked[:count], D(0)) * 100 / total, 2) if total else None
        points.append((top, count, share))
    return points
