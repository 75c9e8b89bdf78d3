"""The churn rules: which signals a customer shows as of a day, and when a quiet customer
becomes dormant (``docs/analysis.md``, "Churn worklist and dormancy").

Pure functions of what the views hold and of ``as_of``, a day the caller gives (the book's
time, ``worklists.book_time``): no rule reads a clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

from crm_events.customer import CustomerStatus

CLOSED_NEEDS = frozenset({"resolved", "confirmed"})
"""Need statuses that end a complaint."""
DAYS_KEPT = 92
"""Days with changes an account's balance history keeps: the longest window the
balance-fall rule can look back over is ``DAYS_KEPT - 1`` days."""


class SignalKind(StrEnum):
    BALANCE_FALLING = "balance_falling"
    NO_CONTACT = "no_contact"
    NO_TRANSACTION = "no_transaction"
    OPEN_COMPLAINT = "open_complaint"
    MATURITY_NOT_ROLLED_OVER = "maturity_not_rolled_over"


@dataclass(frozen=True)
class ChurnParameters:
    """The churn rules' thresholds (``CustomerSettings``, ``CRM_CHURN_*``)."""

    fall_percent: Decimal = Decimal(20)
    """A customer's assets in one currency fell by more than this share ..."""
    fall_days: int = 30
    """... between this many days ago and the day asked about."""
    no_contact_days: int = 60
    no_transaction_days: int = 60
    maturity_grace_days: int = 7
    """Days after a maturity date by which the product must be renewed or replaced."""
    maturity_lookback_days: int = 90
    """Maturities older than this no longer count as a fresh loss."""

    def __post_init__(self) -> None:
        if not 0 < self.fall_days < DAYS_KEPT:
            raise ValueError(f"fall_days must be between 1 and {DAYS_KEPT - 1}")


@dataclass(frozen=True)
class Signal:
    kind: SignalKind
    detail: str
    since: str | None = None
    """The day the signal's fact dates from (last contact, maturity, window start)."""


@dataclass(frozen=True)
class AccountHistory:
    """One asset account's days with changes: day -> (balance before the day's first
    change, balance after its last), for the last ``DAYS_KEPT`` days it changed on; and its
    closing day when known."""

    currency: str
    days: Mapping[date, tuple[Decimal, Decimal]]
    closed_on: date | None = None

    def closing(self, day: date) -> Decimal:
        """The balance at the end of ``day``, exact for any day of the ``DAYS_KEPT`` before
        the account's last change (and after): the closing of the last day with changes
        on or before it, else the opening of the first day after it; zero once closed."""
        if (self.closed_on is not None and self.closed_on <= day) or not self.days:
            return Decimal(0)
        earlier = [d for d in self.days if d <= day]
        if earlier:
            return self.days[max(earlier)][1]
        return self.days[min(self.days)][0]


def totals_on(accounts: Iterable[AccountHistory], day: date) -> dict[str, Decimal]:
    """Closing asset totals per currency at the end of ``day``."""
    totals: dict[str, Decimal] = {}
    for account in accounts:
        totals[account.currency] = totals.get(account.currency, Decimal(0)) + account.closing(day)
    return totals


def balance_fall(
    accounts: Iterable[AccountHistory], as_of: date, params: ChurnParameters
) -> Signal | None:
    """Assets in a currency fell by more than ``fall_percent`` over ``fall_days``."""
    accounts = list(accounts)
    start = as_of - timedelta(days=params.fall_days)
    before, now = totals_on(accounts, start), totals_on(accounts, as_of)
    falls = [
        ((was - now.get(currency, Decimal(0))) * 100 / was, currency, was)
        for currency, was in before.items()
        if was > 0
    ]
    worst = max(falls, default=None)
    if worst is None or worst[0] <= params.fall_percent:
        return None
    percent, currency, was = worst
    detail = (
        f"{currency} assets fell {round(percent, 1)}% in {params.fall_days} days "
        f"({was} to {now.get(currency, Decimal(0))})"
    )
    return Signal(SignalKind.BALANCE_FALLING, detail, start.isoformat())


def days_quiet(last: datetime | None, as_of: date) -> int | None:
    """Whole days from ``last`` to ``as_of`` (never negative); ``None`` if never."""
    return None if last is None else max(0, (as_of - last.date()).days)


def quiet_signal(
    kind: SignalKind, what: str, last: datetime | None, as_of: date, days: int
) -> Signal | None:
    quiet = days_quiet(last, as_of)
    if quiet is not None and quiet <= days:
        return None
    since = None if last is None else last.date().isoformat()
    return Signal(kind, f"no {what} for more than {days} days", since)


def open_complaints(needs: Iterable[Mapping[str, Any]]) -> Signal | None:
    open_ones = [
        n for n in needs if n.get("kind") == "complaint" and n.get("status") not in CLOSED_NEEDS
    ]
    if not open_ones:
        return None
    first = min((str(n.get("started_at") or "")[:10] for n in open_ones), default="")
    return Signal(SignalKind.OPEN_COMPLAINT, f"{len(open_ones)} open complaint(s)", first or None)


def maturities_lost(
    maturities: Iterable[Mapping[str, Any]],
    accounts: Iterable[Mapping[str, Any]],
    as_of: date,
    params: ChurnParameters,
) -> Signal | None:
    """A product matured between ``maturity_lookback_days`` and ``maturity_grace_days`` ago
    and was neither renewed (its account holds no later maturity: core banking schedules
    the renewal's maturity on the same account) nor replaced (no account of the same
    product type opened from ``maturity_grace_days`` before the maturity on)."""
    accounts = list(accounts)
    grace = timedelta(days=params.maturity_grace_days)
    oldest = as_of - timedelta(days=params.maturity_lookback_days)
    lost = []
    for maturity in maturities:
        due = date.fromisoformat(maturity["maturity_date"])
        if not oldest <= due <= as_of - grace:
            continue
        replaced = any(
            a.get("product_type") == maturity.get("product_type")
            and a.get("opened_on")
            and date.fromisoformat(a["opened_on"]) >= due - grace
            for a in accounts
        )
        if not replaced:
            lost.append((due, maturity.get("product_type")))
    if not lost:
        return None
    due, product_type = min(lost)
    return Signal(
        SignalKind.MATURITY_NOT_ROLLED_OVER,
        f"{len(lost)} matured product(s) not rolled over (first: {product_type} on {due})",
        due.isoformat(),
    )


@dataclass(frozen=True)
class CustomerFacts:
    """What the churn rules read of one customer."""

    status: str | None
    last_contact_at: datetime | None
    last_transaction_at: datetime | None
    needs: tuple[Mapping[str, Any], ...] = ()
    maturities: tuple[Mapping[str, Any], ...] = ()
    accounts: tuple[Mapping[str, Any], ...] = ()
    balances: tuple[AccountHistory, ...] = ()
    reactivated_at: datetime | None = None
    """When the customer last came back from dormant or churned to active."""


def churn_signals(facts: CustomerFacts, as_of: date, params: ChurnParameters) -> list[Signal]:
    """Every churn signal the customer shows as of ``as_of``, in :class:`SignalKind` order."""
    found = [
        balance_fall(facts.balances, as_of, params),
        quiet_signal(
            SignalKind.NO_CONTACT, "contact", facts.last_contact_at, as_of, params.no_contact_days
        ),
        quiet_signal(
            SignalKind.NO_TRANSACTION,
            "transaction",
            facts.last_transaction_at,
            as_of,
            params.no_transaction_days,
        ),
        open_complaints(facts.needs),
        maturities_lost(facts.maturities, facts.accounts, as_of, params),
    ]
    return [signal for signal in found if signal is not None]


def dormancy_reason(facts: CustomerFacts, as_of: date, days: int) -> str | None:
    """Why an active customer is now dormant by rule, or ``None``: no contact and no
    transaction for more than ``days`` days, counted from the latest of the last contact,
    the last transaction and the customer's last reactivation (a manager's reversal starts
    the count again). A customer of whom no contact or transaction is known at all is
    unknown, not quiet."""
    if facts.status != CustomerStatus.ACTIVE:
        return None
    moments = [m for m in (facts.last_contact_at, facts.last_transaction_at) if m is not None]
    if not moments:
        return None
    if facts.reactivated_at is not None:
        moments.append(facts.reactivated_at)
    quiet = days_quiet(max(moments), as_of)
    if quiet is None or quiet <= days:
        return None
    return (
        f"dormancy rule: no contact and no transaction for more than {days} days "
        f"(last activity {max(moments).date().isoformat()}, as of {as_of.isoformat()})"
    )
