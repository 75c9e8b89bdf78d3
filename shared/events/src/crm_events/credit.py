"""Upstream events of the bank's credit system: credit facilities granted to customers.

A facility (its facility id is the subject) is granted to one borrower, may be guaranteed
by other customers, is drawn, repaid and changed, and finally matures. Every event carries
the facility's terms and drawn amount as they stand after it, not only what changed: a
consumer keeps the latest version of a facility it has seen, so an event arriving after a
later one of the same facility (late, or redelivered) changes nothing, and the figures are
the same in whatever order the events come. No field is personal data: a facility names
its customers by id only.
"""

from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Self

from pydantic import Field, model_validator

from crm_events.common import CurrencyCode, DecimalString, Id
from crm_events.registry import EventPayload, FrozenModel, event

Amount = Annotated[DecimalString, Field(ge=Decimal(0))]
"""An amount in the facility's currency, never negative."""


class FacilityType(StrEnum):
    REVOLVING = "revolving"
    TERM_LOAN = "term_loan"
    TRADE_FINANCE = "trade_finance"


class FacilityStatus(StrEnum):
    OPEN = "open"
    """May be drawn up to its limit."""
    MATURED = "matured"
    """Past its maturity: nothing more may be drawn; what is drawn is still owed."""


class Guarantee(FrozenModel):
    """Another customer guarantees the facility up to ``amount``: that much of it counts
    in the guarantor's exposure too."""

    guarantor_customer_id: Id
    amount: Amount


class FacilityTerms(FrozenModel):
    """The facility as it stands after the event."""

    customer_id: Id = Field(description="The borrower")
    facility_type: FacilityType
    currency: CurrencyCode
    limit: Amount
    drawn: Amount = Field(description="Outstanding (drawn and not repaid)")
    maturity_date: date
    status: FacilityStatus
    guarantees: list[Guarantee] = Field(default_factory=list)

    @model_validator(mode="after")
    def _guarantors_are_others(self) -> Self:
        guarantors = [g.guarantor_customer_id for g in self.guarantees]
        if self.customer_id in guarantors or len(set(guarantors)) != len(guarantors):
            raise ValueError("a guarantor is another customer, named once")
        return self


@event("bank.credit.facility.granted")
class FacilityGranted(FacilityTerms, EventPayload):
    granted_on: date


@event("bank.credit.facility.changed")
class FacilityChanged(FacilityTerms, EventPayload):
    """Limit, maturity or guarantees changed (a renewal, an increase, a guarantee added)."""

    changed_on: date


@event("bank.credit.facility.drawn")
class FacilityDrawn(FacilityTerms, EventPayload):
    amount: Annotated[DecimalString, Field(gt=Decimal(0))]
    drawn_on: date


@event("bank.credit.facility.repaid")
class FacilityRepaid(FacilityTerms, EventPayload):
    amount: Annotated[DecimalString, Field(gt=Decimal(0))]
    repaid_on: date


@event("bank.credit.facility.matured")
class FacilityMatured(FacilityTerms, EventPayload):
    """The facility reached its maturity (its status is now ``matured``): nothing more may
    be drawn; what is still drawn stays owed until repaid."""

    matured_on: date
