"""Erasure of a customer's personal data on request, and the legal holds that refuse it.

The one place that decides whether a customer may be erased now. A bank must keep some
records whatever the customer asks (PIPL Art. 47 para. 2, GDPR Art. 17(3)(b)):

- **open accounts**: an account core banking has not closed is a live business
  relationship, and the bank needs to know whose it is;
- **anti-money-laundering retention**: China's Anti-Money-Laundering Law keeps customer
  identity and transaction records at least five years after the business relationship
  ends; the CRM takes the end as the latest day it knows the relationship was alive (the
  last account closure, the last KYC review) and the period from settings;
- **open complaints**: a complaint still being handled needs its complainant.

Each hold says why in words free of personal data; the API answers them in its 409.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from crm_events.personal import ERASED

from crm_customer.rules import CustomerError

ERASED_NAME = {"full_name": ERASED}
"""The name an erased customer's record shows: valid, and nothing of the person."""
AML_RETENTION_YEARS = 5
"""China's AML law: records kept at least five years after the relationship ends."""


@dataclass(frozen=True)
class AccountState:
    """One of the customer's core-banking accounts as the CRM knows it."""

    account_id: str
    closed_on: date | None
    """None: open (not closed, whatever else the CRM knows of it)."""


@dataclass(frozen=True)
class RelationshipFacts:
    """What the CRM knows of the customer's business relationship with the bank."""

    accounts: tuple[AccountState, ...] = ()
    last_kyc_review: date | None = None
    open_complaints: int = 0
    lead_ids: tuple[str, ...] = ()
    """The leads captured for (or qualified into) the customer: sealed under keys of their
    own, which erasure destroys too."""

    def relationship_ended_on(self) -> date | None:
        """The latest day the relationship is known alive, once every account is closed;
        None when the CRM knows of no relationship (a prospect)."""
        days = [a.closed_on for a in self.accounts if a.closed_on is not None]
        if self.last_kyc_review is not None:
            days.append(self.last_kyc_review)
        return max(days, default=None)


class HoldKind(StrEnum):
    OPEN_ACCOUNTS = "open_accounts"
    AML_RETENTION = "aml_retention"
    OPEN_COMPLAINTS = "open_complaints"


@dataclass(frozen=True)
class LegalHold:
    """A reason the customer's data must be kept for now."""

    kind: HoldKind
    detail: str
    until: date | None = None
    """When the hold ends by itself; None: when the fact behind it changes."""


def years_after(day: date, years: int) -> date:
    """The same day ``years`` later (29 February: 28 February in a common year)."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)


def legal_holds(
    facts: RelationshipFacts, today: date, *, retention_years: int = AML_RETENTION_YEARS
) -> list[LegalHold]:
    """Every hold on erasing the customer ``today``; none: it may be erased."""
    holds = []
    open_accounts = sorted(a.account_id for a in facts.accounts if a.closed_on is None)
    if open_accounts:
        holds.append(
            LegalHold(
                HoldKind.OPEN_ACCOUNTS,
                f"{len(open_accounts)} account(s) not closed: {', '.join(open_accounts)}",
            )
        )
    ended = facts.relationship_ended_on()
    if not open_accounts and ended is not None:
        until = years_after(ended, retention_years)
        if today < until:
            holds.append(
                LegalHold(
                    HoldKind.AML_RETENTION,
                    f"anti-money-laundering records are kept {retention_years} years after "
                    f"the business relationship ended ({ended.isoformat()})",
                    until,
                )
            )
    if facts.open_complaints:
        holds.append(
            LegalHold(HoldKind.OPEN_COMPLAINTS, f"{facts.open_complaints} complaint(s) still open")
        )
    return holds


class LegalHoldApplies(CustomerError):
    """Erasure refused while a legal hold applies (HTTP 409)."""

    def __init__(self, customer_id: str, holds: Iterable[LegalHold]) -> None:
        self.holds = list(holds)
        kinds = ", ".join(h.kind.value for h in self.holds)
        super().__init__(f"customer {customer_id} may not be erased yet: {kinds}")


class CustomerErasedError(CustomerError):
    """The customer's personal data was erased: no command applies to it (HTTP 410)."""

    def __init__(self, customer_id: str, erased_at: str) -> None:
        super().__init__(f"customer {customer_id} was erased at {erased_at}")
        self.customer_id = customer_id
        self.erased_at = erased_at
