"""Upstream events of the bank's management-accounting system (MIS): what each customer
earned and cost the bank in a month.

A statement is one customer's month; its subject is ``<customer id>:<YYYY-MM>``
(:func:`statement_id`). A restatement is the next version of the same statement and
carries every figure again, so the latest version a consumer has seen is the month's
figures whatever order the versions arrive in.
"""

from typing import Annotated

from pydantic import Field, StringConstraints

from crm_events.common import CurrencyCode, DecimalString, Id
from crm_events.registry import EventPayload, event

Month = Annotated[str, StringConstraints(pattern=r"^[0-9]{4}-(0[1-9]|1[0-2])$")]
"""A calendar month, ``YYYY-MM``."""


def statement_id(customer_id: str, month: str) -> str:
    """The subject of a customer's statement for ``month``."""
    return f"{customer_id}:{month}"


@event("bank.mis.contribution.reported")
class ContributionReported(EventPayload):
    """A customer's monthly profitability as management accounting states it: revenue
    (net interest income and fees) less the cost of serving them (operations, funding,
    expected credit loss) is their contribution, negative for a customer who costs more
    than they bring. The CRM takes the figures as stated."""

    customer_id: Id
    month: Month
    currency: CurrencyCode = Field(description="The reporting currency")
    interest_income: DecimalString = Field(description="Net interest income, part of revenue")
    revenue: DecimalString
    cost: DecimalString
    contribution: DecimalString
