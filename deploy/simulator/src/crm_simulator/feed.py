"""A deterministic stream of core-banking events about a simulated population.

``feed(customers, seed=..., start=...)`` plays the bank's core system: customers open
accounts (funded on opening; term products announce their maturity), money moves, term
products mature and are paid out, accounts close, KYC reviews happen and customers change
their phone, e-mail or address. Each event is a contract ``Envelope`` from core banking:
account events have the account number as subject, customer events the customer id, and
versions count from 1 per aggregate. Event ids are UUIDv5 of the stream and the aggregate
version, times come from a simulated clock: the same arguments give the same records.

With ``poison_rate`` > 0, that fraction of the records are poison: corrupted copies of the
next event (own id, never advancing an aggregate) that a consumer must dead-letter
(:mod:`crm_simulator.poison`).
"""

from __future__ import annotations

import calendar
import random
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from itertools import accumulate

from crm_backbone.topic_names import CONTRACT_NAMES
from crm_events import Envelope, EventPayload, Service, to_kafka
from crm_events.common import Address, Money, ValueBand
from crm_events.core_banking import (
    AccountClosed,
    AccountOpened,
    CustomerDataChanged,
    HoldingBalanceChanged,
    KycStatus,
    KycUpdated,
    ProductMaturityScheduled,
    ProductType,
    RiskRating,
)

from crm_simulator.poison import Poison, UpstreamRecord, poisoned_copy
from crm_simulator.population import (
    SimulatedCustomer,
    branch_city,
    new_address,
    new_email,
    new_phone,
)

ACTOR = "core-banking"
SOURCE = Service.CORE_BANKING.source
NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://crm.bank.example/simulator/core-banking")
"""UUIDv5 namespace of the simulator's event ids."""
EVENTS_PER_CUSTOMER_DAY = 4
"""Mean simulated activity: the clock advances by a day per this many events per customer."""

Route = Callable[[str], str]
"""Name of the topic that carries an event type."""


@dataclass(frozen=True)
class FeedEvent:
    """One record to publish, with the event it carries (``None`` for a poison record)."""

    topic: str
    record: UpstreamRecord
    time: datetime
    envelope: Envelope[EventPayload] | None
    poison: Poison | None = None


@dataclass(frozen=True)
class Product:
    """A product of the simulated bank."""

    code: str
    name: str
    type: ProductType
    weight: int
    amount: tuple[float, float]
    """CNY range of the opening amount (deposit, principal, credit limit or annual premium)
    before the value-band factor."""
    term_months: int | None = None
    rate: str | None = None
    """Annual interest rate or expected yield, percent."""


_T = ProductType
INDIVIDUAL_PRODUCTS: tuple[Product, ...] = (
    Product("CUR-P01", "Personal Current Account", _T.CURRENT, 30, (500, 20e3), None, "0.20"),
    Product("SAV-P01", "Personal Savings Account", _T.SAVINGS, 25, (1e3, 50e3), None, "0.35"),
    Product("TD-P06M", "6-Month Time Deposit", _T.TIME_DEPOSIT, 6, (10e3, 200e3), 6, "1.30"),
    Product("TD-P01Y", "1-Year Time Deposit", _T.TIME_DEPOSIT, 6, (10e3, 300e3), 12, "1.55"),
    Product("TD-P03Y", "3-Year Time Deposit", _T.TIME_DEPOSIT, 3, (20e3, 500e3), 36, "1.95"),
    Product("LN-MTG", "Home Mortgage", _T.LOAN, 2, (300e3, 3e6), 300, "3.60"),
    Product("LN-CON", "Consumer Loan", _T.LOAN, 4, (20e3, 200e3), 24, "4.85"),
    Product("CC-PLT", "Platinum Credit Card", _T.CREDIT_CARD, 10, (10e3, 100e3)),
    Product("WM-P180", "Wealth Plan 180 Days", _T.WEALTH_MANAGEMENT, 4, (50e3, 1e6), 6, "2.90"),
    Product("FND-MMF", "Money Market Fund", _T.FUND, 5, (1e3, 100e3)),
    Product("INS-WL", "Whole Life Insurance", _T.INSURANCE, 3, (5e3, 50e3)),
)
ORGANISATION_PRODUCTS: tuple[Product, ...] = (
    Product("CUR-C01", "Corporate Current Account", _T.CURRENT, 30, (50e3, 5e6), None, "0.35"),
    Product("SAV-C01", "Corporate Call Deposit", _T.SAVINGS, 8, (100e3, 10e6), None, "1.00"),
    Product(
        "TD-C01Y", "Corporate Time Deposit 1 Year", _T.TIME_DEPOSIT, 8, (1e6, 50e6), 12, "1.75"
    ),
    Product("LN-WCL", "Working Capital Loan", _T.LOAN, 8, (1e6, 30e6), 12, "3.85"),
    Product("LN-FAL", "Fixed Asset Loan", _T.LOAN, 3, (5e6, 100e6), 60, "4.20"),
    Product("CC-CORP", "Corporate Card", _T.CREDIT_CARD, 4, (50e3, 500e3)),
    Product(
        "WM-C090", "Structured Deposit 90 Days", _T.WEALTH_MANAGEMENT, 5, (1e6, 20e6), 3, "2.40"
    ),
    Product("FND-CMF", "Corporate Money Market Fund", _T.FUND, 4, (1e6, 20e6)),
    Product("INS-GRP", "Group Employee Insurance", _T.INSURANCE, 2, (50e3, 2e6)),
)
MATURING = frozenset({_T.TIME_DEPOSIT, _T.LOAN, _T.WEALTH_MANAGEMENT})
"""Product types with a maturity date."""
_BAND_FACTOR = {ValueBand.LOW: 0.3, ValueBand.MEDIUM: 1.0, ValueBand.HIGH: 4.0}
_CNY_PER_UNIT = {"CNY": 1.0, "USD": 7.1, "EUR": 7.8, "GBP": 9.0, "HKD": 0.91}
_FOREIGN_CURRENCIES = ("USD", "EUR", "GBP", "HKD")
_REVIEW_YEARS = {RiskRating.LOW: 3, RiskRating.MEDIUM: 2, RiskRating.HIGH: 1}


def feed(
    customers: Sequence[SimulatedCustomer],
    *,
    seed: int,
    start: datetime,
    poison_rate: float = 0.0,
    route: Route = CONTRACT_NAMES.of_event,
) -> Iterator[FeedEvent]:
    """Core-banking events about ``customers``, endlessly, from ``start`` (tz-aware) on.

    ``route`` names the topic of each event type (default: the contract's). Valid events
    do not depend on ``poison_rate``: poison records are drawn from a stream of their own.
    """
    if start.utcoffset() is None:
        raise ValueError("start must be timezone-aware")
    if not 0 <= poison_rate < 1:
        raise ValueError("poison_rate must be in [0, 1)")
    if not customers:
        raise ValueError("no customers")
    rng = random.Random(seed)
    poison_rng = random.Random(f"poison/{seed}")
    bank = _Bank(customers, rng)
    clock = start.astimezone(UTC)
    stream = f"{seed}/{len(customers)}/{clock.isoformat()}"
    mean_gap = 86_400 / (EVENTS_PER_CUSTOMER_DAY * len(customers))
    poisoned = 0
    while True:
        clock += timedelta(seconds=rng.expovariate(1 / mean_gap))
        for aggregate_id, version, payload in bank.step(clock):
            envelope = Envelope.new(
                payload,
                aggregate_id=aggregate_id,
                aggregate_version=version,
                actor=ACTOR,
                source=SOURCE,
                event_id=str(uuid.uuid5(NAMESPACE, f"{stream}/{aggregate_id}/{version}")),
                time=clock,
            )
            record = UpstreamRecord(*to_kafka(envelope))
            topic = route(payload.event_type)
            while poison_rng.random() < poison_rate:
                poisoned += 1
                kind = poison_rng.choice(list(Poison))
                poison_id = str(uuid.uuid5(NAMESPACE, f"{stream}/poison/{poisoned}"))
                yield FeedEvent(topic, poisoned_copy(kind, record, poison_id), clock, None, kind)
            yield FeedEvent(topic, record, clock, envelope)


def _money(cents: int, currency: str) -> Money:
    return Money(amount=Decimal(cents).scaleb(-2), currency=currency)


def _different(make: Callable[[], str], current: str) -> str:
    """The first value of ``make`` other than ``current``."""
    while (value := make()) == current:
        pass
    return value


def _add_months(day: date, months: int) -> date:
    year, month = divmod(day.month - 1 + months, 12)
    year += day.year
    return date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))


@dataclass(eq=False)
class _Holder:
    """What core banking knows of a customer now."""

    customer: SimulatedCustomer
    phone: str
    email: str
    address: Address
    version: int = 0
    accounts: list[_Account] = field(default_factory=list)
    """Open accounts, oldest first; the first is the customer's main account."""

    @property
    def id(self) -> str:
        return self.customer.customer_id


@dataclass(eq=False)
class _Account:
    id: str
    holder: _Holder
    product: Product
    currency: str
    amount: int
    """Opening amount in cents: deposit, principal, credit limit or premium."""
    maturity: date | None
    balance: int = 0
    version: int = 0


_Change = tuple[str, int, EventPayload]
"""Aggregate id, its version after the change, payload."""


class _Bank:
    """The simulated core system's state, changed one customer action at a time."""

    def __init__(self, customers: Sequence[SimulatedCustomer], rng: random.Random) -> None:
        self.rng = rng
        self.holders = [_Holder(c, c.phone, c.email, c.address) for c in customers]
        activity = [
            (1, 2, 3)[(ValueBand.LOW, ValueBand.MEDIUM, ValueBand.HIGH).index(c.value_band)]
            * (3 if c.is_organisation else 1)
            for c in customers
        ]
        self.activity = list(accumulate(activity))
        self.actions: list[Callable[[_Holder], None]] = [
            self.move,
            self.open,
            self.close,
            self.review_kyc,
            self.change_data,
        ]
        self.action_weights = list(accumulate((82, 6, 1.5, 1.5, 2)))
        self.products: dict[tuple[bool, bool], tuple[list[Product], list[int]]] = {}
        for organisations, catalogue in (
            (False, INDIVIDUAL_PRODUCTS),
            (True, ORGANISATION_PRODUCTS),
        ):
            for first in (False, True):
                offered = [p for p in catalogue if not first or p.type in (_T.CURRENT, _T.SAVINGS)]
                weights = list(accumulate(p.weight for p in offered))
                self.products[organisations, first] = (offered, weights)
        self.serial = 0
        self.now = datetime.min.replace(tzinfo=UTC)
        self.changes: list[_Change] = []

    @property
    def today(self) -> date:
        return self.now.date()

    def step(self, now: datetime) -> list[_Change]:
        """What one customer does at ``now``: one action, one to three events."""
        self.now, self.changes = now, []
        holder = self.rng.choices(self.holders, cum_weights=self.activity)[0]
        if holder.accounts:
            self.rng.choices(self.actions, cum_weights=self.action_weights)[0](holder)
        else:
            self.open(holder)
        return self.changes

    def emit(self, aggregate: _Holder | _Account, payload: EventPayload) -> None:
        aggregate.version += 1
        self.changes.append((aggregate.id, aggregate.version, payload))

    def open(self, holder: _Holder) -> None:
        """Open an account: funded at once; a term product announces its maturity."""
        if len(holder.accounts) >= 6:
            return self.move(holder)
        rng, customer = self.rng, holder.customer
        offered, weights = self.products[customer.is_organisation, not holder.accounts]
        product = rng.choices(offered, cum_weights=weights)[0]
        currency = "CNY"
        if product.type in (_T.CURRENT, _T.SAVINGS, _T.TIME_DEPOSIT):
            share = 0.3 if customer.nationality != "CN" else 0.08
            if rng.random() < share:
                currency = rng.choice(_FOREIGN_CURRENCIES)
        low, high = product.amount
        units = rng.uniform(low, high) * _BAND_FACTOR[customer.value_band]
        amount = max(100, round(units / _CNY_PER_UNIT[currency], -2)) * 100
        rate = None if product.rate is None else Decimal(product.rate)
        maturity = _add_months(self.today, product.term_months) if product.term_months else None
        self.serial += 1
        prefix = {_T.CREDIT_CARD: "6259", _T.LOAN: "8801"}.get(product.type, "6222")
        account = _Account(
            id=f"{prefix}{customer.branch_id[-3:]}{self.serial:09d}",
            holder=holder,
            product=product,
            currency=currency,
            amount=int(amount),
            maturity=maturity,
        )
        holder.accounts.append(account)
        self.emit(
            account,
            AccountOpened(
                customer_id=holder.id,
                product_code=product.code,
                product_name=product.name,
                product_type=product.type,
                currency=currency,
                branch_id=customer.branch_id,
                opened_on=self.today,
                maturity_date=maturity,
                interest_rate_percent=rate,
            ),
        )
        if product.type is not _T.CREDIT_CARD:
            self.set_balance(account, account.amount)
        if maturity is not None and rate is not None:
            years = Decimal(product.term_months or 0) / 12
            due = account.amount + int(account.amount * rate / 100 * years)
            self.emit(
                account,
                ProductMaturityScheduled(
                    customer_id=holder.id,
                    product_code=product.code,
                    product_type=product.type,
                    maturity_date=maturity,
                    amount_at_maturity=_money(due, currency),
                ),
            )

    def move(self, holder: _Holder) -> None:
        """Money moves on one of the customer's accounts; a matured one is settled."""
        rng = self.rng
        account = rng.choice(holder.accounts)
        if account.maturity is not None and account.maturity <= self.today:
            return self.settle(account, "repaid" if account.product.type is _T.LOAN else "matured")
        balance, kind = account.balance, account.product.type
        draw = account.amount * rng.lognormvariate(0, 0.8)
        if kind in (_T.CURRENT, _T.SAVINGS):
            change = int(draw * 0.15) or 1
            new = balance + change if balance == 0 or rng.random() < 0.55 else balance - change
        elif kind is _T.TIME_DEPOSIT:
            monthly_interest = int(balance * Decimal(account.product.rate or 0) / 1200)
            new = balance + max(1, monthly_interest)
        elif kind is _T.LOAN:
            new = balance - account.amount // (account.product.term_months or 1)
        elif kind is _T.CREDIT_CARD:
            spend = balance == 0 or (rng.random() < 0.65 and balance < account.amount)
            repay = balance if rng.random() < 0.5 else max(1, balance // 10)
            new = (
                min(account.amount, balance + (int(draw * 0.03) or 1)) if spend else balance - repay
            )
        elif kind is _T.INSURANCE:
            new = balance + account.amount
        else:  # wealth management and funds: the net asset value moves
            new = balance + (int(balance * rng.uniform(-0.02, 0.03)) or 1)
        self.set_balance(account, max(0, new))
        if kind is _T.LOAN and account.balance == 0:
            self.settle(account, "repaid")

    def set_balance(self, account: _Account, balance: int) -> None:
        self.emit(
            account,
            HoldingBalanceChanged(
                customer_id=account.holder.id,
                product_type=account.product.type,
                previous_balance=_money(account.balance, account.currency),
                balance=_money(balance, account.currency),
                changed_at=self.now,
            ),
        )
        account.balance = balance

    def close(self, holder: _Holder) -> None:
        """Close an account other than the main one, paying out or settling what is left."""
        if len(holder.accounts) < 2:
            return self.move(holder)
        account = self.rng.choice(holder.accounts[1:])
        reasons = {
            _T.LOAN: "repaid early",
            _T.WEALTH_MANAGEMENT: "redeemed",
            _T.FUND: "redeemed",
            _T.INSURANCE: "policy surrendered",
        }
        self.settle(account, reasons.get(account.product.type, "customer request"))

    def settle(self, account: _Account, reason: str) -> None:
        if account.balance:
            self.set_balance(account, 0)
        self.emit(
            account,
            AccountClosed(customer_id=account.holder.id, closed_on=self.today, reason=reason),
        )
        account.holder.accounts.remove(account)

    def review_kyc(self, holder: _Holder) -> None:
        rng = self.rng
        status = rng.choices(list(KycStatus), weights=(4, 88, 5, 3))[0]
        risk_weights = (50, 40, 10) if holder.customer.is_organisation else (70, 25, 5)
        risk = rng.choices(list(RiskRating), weights=risk_weights)[0]
        due = None
        if status is not KycStatus.REJECTED:
            due = _add_months(self.today, 12 * _REVIEW_YEARS[risk])
        self.emit(
            holder,
            KycUpdated(
                kyc_status=status, risk_rating=risk, reviewed_on=self.today, next_review_due=due
            ),
        )

    def change_data(self, holder: _Holder) -> None:
        """The customer gives a new phone, e-mail address or address (a move)."""
        rng, customer = self.rng, holder.customer
        what = rng.choices(("phone", "email", "address", "phone email"), weights=(40, 30, 25, 5))[0]
        phone = email = address = None
        if "phone" in what:
            phone = holder.phone = _different(lambda: new_phone(rng, customer), holder.phone)
        if "email" in what:
            email = holder.email = _different(lambda: new_email(rng, customer), holder.email)
        if what == "address":
            address = new_address(rng, branch_city(customer.branch_id), customer.is_organisation)
            holder.address = address
        self.emit(holder, CustomerDataChanged(phone=phone, email=email, address=address))
