"""Whose book each lead, opportunity and need is in: the one place the service's access
rules live (``docs/access.md``).

Opportunities and needs are their customer's: a caller reaches them when it reaches the
customer (the customer's relationship manager and branch, as ``customer_owners`` holds
them, :class:`crm_backbone.book.CustomerBook`), whoever the opportunity's own manager is.
A lead naming a customer follows that customer too; a lead for a prospect who is not a
customer (yet) is its own manager's and branch's, until it is qualified for a customer.

- :class:`Book` gives the queries their MongoDB filters (lists, counts and aggregations
  are narrowed there, never after) and checks a record's owners;
- :class:`Gate` is how a route reaches one record of the write model, for a read or
  before a command decides: a record out of reach is :class:`NotInReach`, the same 404 as
  a missing one (:class:`~crm_opportunity.application.NotFound`);
- :class:`Personal` says what a masked reach (the analyst) must not see of an answer.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from crm_backbone.access import (
    AccessRefused,
    Reach,
    in_reach,
    require_in_reach,
    scope_filter,
)
from crm_backbone.book import CustomersInReach
from crm_backbone.principal import Principal
from crm_events.opportunity import LeadCaptured, OpportunityCreated
from crm_events.personal import PersonalData, personal_fields

from crm_opportunity.application import OpportunityApplication
from crm_opportunity.domain.base import JsonDict
from crm_opportunity.domain.lead import Lead
from crm_opportunity.domain.need import Need
from crm_opportunity.domain.opportunity import Opportunity

Filter = dict[str, Any]


@dataclass(frozen=True)
class LeadOwners:
    """What a lead's book follows: its customer when it names one, else its own manager
    and branch."""

    customer_id: str | None
    manager_id: str | None
    branch_id: str | None

    @classmethod
    def of(cls, lead: Lead) -> LeadOwners:
        return cls(lead.customer_id, lead.manager_id, lead.branch_id)


class Book:
    """The scope of the service's collections, and the checks of one record's owners."""

    def __init__(self, customers: CustomersInReach) -> None:
        self.customers = customers

    async def of_customers(self, reach: Reach) -> Filter:
        """The filter of the opportunities and needs in reach (``{}``: all of them)."""
        return await self.customers.scope(reach, "customer_id")

    async def of_leads(self, reach: Reach) -> Filter:
        """The filter of the leads in reach: a customer's lead by its customer, a
        prospect's by its own manager and branch (``{}``: all of them)."""
        prospects = scope_filter(reach)
        if not prospects:
            return {}
        customers = await self.customers.scope(reach, "customer_id")
        return {"$or": [customers, {"$and": [{"customer_id": None}, prospects]}]}

    async def require_customer(
        self, reach: Reach, customer_id: str, *, kind: str, key: str
    ) -> None:
        """:class:`NotInReach` (``no {kind} {key}``) unless the customer is in reach."""
        await self.customers.require(reach, customer_id, kind=kind, key=key)

    async def require_lead(self, reach: Reach, owners: LeadOwners, key: str) -> None:
        """:class:`NotInReach` (``no lead {key}``) unless the lead is in reach."""
        if owners.customer_id is not None:
            await self.require_customer(reach, owners.customer_id, kind="lead", key=key)
            return
        own = {"manager_id": owners.manager_id, "branch_id": owners.branch_id}
        require_in_reach(reach, own, kind="lead", key=key)


class Gate:
    """The write model's records as one caller may reach them."""

    def __init__(self, application: OpportunityApplication, book: Book) -> None:
        self.application = application
        self.book = book

    async def lead(self, reach: Reach, lead_id: str) -> Lead:
        lead = await asyncio.to_thread(self.application.lead, lead_id)
        await self.book.require_lead(reach, LeadOwners.of(lead), lead_id)
        return lead

    async def opportunity(self, reach: Reach, opportunity_id: str) -> Opportunity:
        found = await asyncio.to_thread(self.application.opportunity, opportunity_id)
        await self.book.require_customer(
            reach, found.customer_id, kind="opportunity", key=opportunity_id
        )
        return found

    async def need(self, reach: Reach, need_id: str) -> Need:
        found = await asyncio.to_thread(self.application.need, need_id)
        await self.book.require_customer(reach, found.customer_id, kind="need", key=need_id)
        return found

    async def customer(self, reach: Reach, customer_id: str) -> None:
        """A new record names ``customer_id``: it must be in reach (else ``no customer``)."""
        await self.book.require_customer(reach, customer_id, kind="customer", key=customer_id)

    async def new_lead(
        self, reach: Reach, principal: Principal | None, fields: JsonDict
    ) -> JsonDict:
        """``fields`` of a lead about to be captured, once its owners are in reach.

        A lead naming a customer must name one in reach. A prospect's lead is assigned to
        the relationship manager who captures it when it names no manager (their own
        capture is in their book); else its manager or branch must be in reach (403: a
        caller cannot file a lead outside its book).
        """
        if fields.get("customer_id") is not None:
            await self.customer(reach, fields["customer_id"])
            return fields
        if fields.get("manager_id") is None and reach.scope.field == "manager":
            fields = fields | {"manager_id": principal.staff_id if principal else None}
        own = {"manager_id": fields.get("manager_id"), "branch_id": fields["branch_id"]}
        if not in_reach(reach, own):
            raise AccessRefused("a lead for a prospect is captured in the caller's own book")
        return fields


LEAD_PERSONAL = personal_fields(LeadCaptured)
"""A lead's personal data, masked for a masked reach (``crm_backbone.access.as_shown``), as
the contract declares it."""
OPPORTUNITY_PERSONAL = personal_fields(OpportunityCreated)
NEED_PERSONAL = {"content": PersonalData.FREE_TEXT, "feedback": PersonalData.FREE_TEXT}
