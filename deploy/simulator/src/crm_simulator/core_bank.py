"""The simulated core-banking system's state, changed one customer action at a time: accounts
opened, funded, moved, matured and closed, KYC reviews and customers' changes of contact
details; each change is the payload of the next version of its aggregate."""

from __future__ import annotations

import calendar
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from itertools import accumulate

from crm_events import EventPayload
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

from crm_simulator.population import (
    SimulatedCustomer,
    branch_city,
    new_address,
    new_email,
    new_phone,
)
from crm_simulator.products import (
    BAND_FACTOR,
    CNY_PER_UNIT,
    FOREIGN_CURRENCIES,
    INDIVIDUAL_PRODUCTS,
    ORGANISATION_PRODUCTS,
    Product,
)

_REVIEW_YEARS = {RiskRating.LOW: 3, RiskRating.MEDIUM: 2, RiskRating.HIGH: 1}


def _money(cents: int, currency: str) -> Money:
    return Money(amount=Decimal(cents).scaleb(-2), currency=currency)


def _different(make: Callable[[], str], current: str) -> str:
    """The first value of ``make`` other than ``current``."""
    while (value := make()) == current:
        pass
    return value


def add_months(day: date, months: int) -> date:
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

LEAVERS_EVERY = 15
"""One customer in this many leaves the bank (the churn worklist's and the dormancy
rule's cases): from ``WITHDRAWING_FROM`` on, each move of money takes it out (a current
or savings account down to 40 %, a deposit, wealth product or fund redeemed early); from
``QUIET_FROM`` on, the customer does nothing more."""
WITHDRAWING_FROM = timedelta(days=10)
QUIET_FROM = timedelta(days=20)
"""Simulated time since the feed's first event."""
_WITHDRAWN = frozenset({ProductType.CURRENT, ProductType.SAVINGS})
_REDEEMED = frozenset({ProductType.TIME_DEPOSIT, ProductType.WEALTH_MANAGEMENT, ProductType.FUND})


class CoreBank:
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
                offered = [
                    p
                    for p in catalogue
                    if not first or p.type in (ProductType.CURRENT, ProductType.SAVINGS)
                ]
                weights = list(accumulate(p.weight for p in offered))
                self.products[organisations, first] = (offered, weights)
        self.serial = 0
        self.leavers = frozenset(
            h.id for n, h in enumerate(self.holders) if n % LEAVERS_EVERY == LEAVERS_EVERY - 1
        )
        self.start: datetime | None = None
        self.now = datetime.min.replace(tzinfo=UTC)
        self.changes: list[_Change] = []

    @property
    def today(self) -> date:
        return self.now.date()

    def step(self, now: datetime) -> list[_Change]:
        """What one customer does at ``now``: one action, one to three events."""
        self.now, self.changes = now, []
        self.start = self.start or now
        holder = self.rng.choices(self.holders, cum_weights=self.activity)[0]
        if self._leaving(holder, QUIET_FROM):
            return self.changes
        if holder.accounts:
            self.rng.choices(self.actions, cum_weights=self.action_weights)[0](holder)
        else:
            self.open(holder)
        return self.changes

    def _leaving(self, holder: _Holder, since: timedelta) -> bool:
        """Whether ``holder`` is a leaver and ``since`` has passed since the feed began."""
        return holder.id in self.leavers and self.now - (self.start or self.now) >= since

    def emit(self, aggregate: _Holder | _Account, payload: EventPayload) -> None:
        aggregate.version += 1
        self.changes.append((aggregate.id, aggregate.version, payload))

    def open(self, holder: _Holder) -> None:
        """Open an account: funded at once; a term product announces its maturity. A
        customer with six, or leaving the bank, moves money instead."""
        if len(holder.accounts) >= 6 or (
            holder.accounts and self._leaving(holder, WITHDRAWING_FROM)
        ):
            return self.move(holder)
        rng, customer = self.rng, holder.customer
        offered, weights = self.products[customer.is_organisation, not holder.accounts]
        product = rng.choices(offered, cum_weights=weights)[0]
        currency = "CNY"
        if product.type in (ProductType.CURRENT, ProductType.SAVINGS, ProductType.TIME_DEPOSIT):
            share = 0.3 if customer.nationality != "CN" else 0.08
            if rng.random() < share:
                currency = rng.choice(FOREIGN_CURRENCIES)
        low, high = product.amount
        units = rng.uniform(low, high) * BAND_FACTOR[customer.value_band]
        amount = max(100, round(units / CNY_PER_UNIT[currency], -2)) * 100
        rate = None if product.rate is None else Decimal(product.rate)
        maturity = add_months(self.today, product.term_months) if product.term_months else None
        self.serial += 1
        prefix = {ProductType.CREDIT_CARD: "6259", ProductType.LOAN: "8801"}.get(
            product.type, "6222"
        )
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
        if product.type is not ProductType.CREDIT_CARD:
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
            return self.settle(
                account, "repaid" if account.product.type is ProductType.LOAN else "matured"
            )
        balance, kind = account.balance, account.product.type
        if self._leaving(holder, WITHDRAWING_FROM) and kind in _WITHDRAWN:
            if balance * 2 // 5 != balance:  # nothing left to take out: nothing happens
                self.set_balance(account, balance * 2 // 5)
            return None
        if self._leaving(holder, WITHDRAWING_FROM) and kind in _REDEEMED:
            return self.settle(account, "redeemed early")
        draw = account.amount * rng.lognormvariate(0, 0.8)
        if kind in (ProductType.CURRENT, ProductType.SAVINGS):
            change = int(draw * 0.15) or 1
            new = balance + change if balance == 0 or rng.random() < 0.55 else balance - change
        elif kind is ProductType.TIME_DEPOSIT:
            monthly_interest = int(balance * Decimal(account.product.rate or 0) / 1200)
            new = balance + max(1, monthly_interest)
        elif kind is ProductType.LOAN:
            new = balance - account.amount // (account.product.term_months or 1)
        elif kind is ProductType.CREDIT_CARD:
            spend = balance == 0 or (rng.random() < 0.65 and balance < account.amount)
            repay = balance if rng.random() < 0.5 else max(1, balance // 10)
            new = (
                min(account.amount, balance + (int(draw * 0.03) or 1)) if spend else balance - repay
            )
        elif kind is ProductType.INSURANCE:
            new = balance + account.amount
        else:  # wealth management and funds: the net asset value moves
            new = balance + (int(balance * rng.uniform(-0.02, 0.03)) or 1)
        self.set_balance(account, max(0, new))
        if kind is ProductType.LOAN and account.balance == 0:
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
            ProductType.LOAN: "repaid early",
            ProductType.WEALTH_MANAGEMENT: "redeemed",
            ProductType.FUND: "redeemed",
            ProductType.INSURANCE: "policy surrendered",
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
            due = add_months(self.today, 12 * _REVIEW_YEARS[risk])
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
