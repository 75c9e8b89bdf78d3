"""Upstream events published by core banking under the same contract.

Account events have the account number as subject; customer events the unified customer
id (the CRM's customer id). The bank publishes them in clear; the personal fields are
marked all the same, so that what the CRM keeps of them is sealed and erasable (an
account event's data subject is its ``customer_id``).
"""

from datetime import date
from enum import StrEnum

from pydantic import AwareDatetime

from crm_events.common import CoreOwnedData, CurrencyCode, DecimalString, Id, Money, Name, Notes
from crm_events.registry import EventPayload, event


class ProductType(StrEnum):
    CURRENT = "current"
    SAVINGS = "savings"
    TIME_DEPOSIT = "time_deposit"
    LOAN = "loan"
    CREDIT_CARD = "credit_card"
    WEALTH_MANAGEMENT = "wealth_management"
    FUND = "fund"
    INSURANCE = "insurance"


ASSET_TYPES = frozenset(
    {
        ProductType.CURRENT,
        ProductType.SAVINGS,
        ProductType.TIME_DEPOSIT,
        ProductType.WEALTH_MANAGEMENT,
        ProductType.FUND,
        ProductType.INSURANCE,
    }
)
"""Product types counted in assets under management; loans and cards are liabilities."""


class KycStatus(StrEnum):
    PENDING = "pending"
    VERIFIED = "verified"
    EXPIRED = "expired"
    REJECTED = "rejected"


class RiskRating(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


@event("bank.corebanking.account.opened")
class AccountOpened(EventPayload):
    customer_id: Id
    product_code: Id
    product_name: Name
    product_type: ProductType
    currency: CurrencyCode
    branch_id: Id
    opened_on: date
    maturity_date: date | None = None
    interest_rate_percent: DecimalString | None = None


@event("bank.corebanking.account.closed")
class AccountClosed(EventPayload):
    subject_field = "customer_id"

    customer_id: Id
    closed_on: date
    reason: Notes | None = None


@event("bank.corebanking.account.balance_changed")
class HoldingBalanceChanged(EventPayload):
    """The balance (holding) of an account changed; loans carry the outstanding amount."""

    customer_id: Id
    product_type: ProductType
    previous_balance: Money
    balance: Money
    changed_at: AwareDatetime


@event("bank.corebanking.account.maturity_scheduled")
class ProductMaturityScheduled(EventPayload):
    """A time deposit, loan or wealth product will mature: a care and retention moment."""

    customer_id: Id
    product_code: Id
    product_type: ProductType
    maturity_date: date
    amount_at_maturity: Money


@event("bank.corebanking.customer.kyc_updated")
class KycUpdated(EventPayload):
    kyc_status: KycStatus
    risk_rating: RiskRating
    reviewed_on: date
    next_review_due: date | None = None


@event("bank.corebanking.customer.data_changed")
class CustomerDataChanged(CoreOwnedData, EventPayload):
    """Customer master data changed in core banking; a null field is unchanged."""
