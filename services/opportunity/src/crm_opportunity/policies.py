"""How the opportunity service reacts to other systems' events by capturing leads.

A customer who **responded** to a campaign becomes a lead with source ``campaign``, once:
its id is derived from the campaign and the customer (``campaign_lead_id``), so a
redelivered or repeated response changes nothing. The lead names the customer, who their
relationship manager is (the lead is assigned to them), their branch, and the campaign's
products as its products of interest.

For that the policy keeps, in MongoDB, what it learns from the customer stream
(``known_customers``: name, branch, manager) and from campaign creation
(``known_campaigns``: name, products). A customer erased (``crm.customer.erased``) is
forgotten there (the leads captured for them: ``erasure.py``); a response of an erased
customer makes no lead. A response for a customer it does not know yet
(the two topics are not ordered against each other) is **parked** (the backbone's
parking lot, under the customer's id) and captured when the customer's registration
arrives: the registration records the customer, then releases what was parked for them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, ClassVar

from crm_backbone.context import command_context
from crm_backbone.policy import NotYet, Policy, PolicyHandler
from crm_backbone.projection import Document
from crm_events import campaign as cmp
from crm_events import customer as cu
from crm_events.envelope import Envelope
from crm_events.registry import EventPayload
from crm_events.topics import CAMPAIGN_EVENTS, CUSTOMER_EVENTS
from pymongo.asynchronous.database import AsyncDatabase

from crm_opportunity.application import OpportunityApplication

KNOWN_CUSTOMERS = "known_customers"
KNOWN_CAMPAIGNS = "known_campaigns"

Event = Envelope[EventPayload]


class CampaignLeads(Policy):
    name: ClassVar[str] = "campaign_leads"
    topics: ClassVar[tuple[str, ...]] = (CAMPAIGN_EVENTS.name, CUSTOMER_EVENTS.name)

    def __init__(
        self, application: OpportunityApplication, database: AsyncDatabase[Document]
    ) -> None:
        self.application = application
        self.customers = database[KNOWN_CUSTOMERS]
        self.campaigns = database[KNOWN_CAMPAIGNS]

    def handlers(self) -> Mapping[str, PolicyHandler]:
        typed: dict[type[EventPayload], PolicyHandler] = {
            cmp.CampaignCreated: self.campaign_created,
            cmp.CampaignResponseRecorded: self.response_recorded,
            cu.CustomerRegistered: self.customer_registered,
            cu.RelationshipManagerAssigned: self.manager_assigned,
            cu.CoreDataApplied: self.core_data_applied,
            cu.CustomerErased: self.customer_erased,
        }
        return {model.event_type: handler for model, handler in typed.items()}

    def hold_of(self, e: Event) -> str | None:
        """A response (one that makes a lead) waits for its customer to be known."""
        d = e.data
        if isinstance(d, cmp.CampaignResponseRecorded) and d.stage is cmp.ResponseStage.RESPONDED:
            return d.customer_id
        return None

    def releases(self, e: Event) -> str | None:
        return e.aggregateid if isinstance(e.data, cu.CustomerRegistered) else None

    async def ready(self, hold: str) -> bool:
        return await self._known_customer(hold) is not None

    # What the policy learns -------------------------------------------------------------

    async def campaign_created(self, e: Event) -> None:
        d = e.data
        assert isinstance(d, cmp.CampaignCreated)
        await self.campaigns.update_one(
            {"_id": e.aggregateid}, {"$set": {"name": d.name, "products": d.products}}, upsert=True
        )

    async def customer_registered(self, e: Event) -> None:
        d = e.data
        assert isinstance(d, cu.CustomerRegistered)
        await self._know(e.aggregateid, {"name": d.name.full_name, "branch_id": d.branch_id})

    async def manager_assigned(self, e: Event) -> None:
        d = e.data
        assert isinstance(d, cu.RelationshipManagerAssigned)
        await self._know(e.aggregateid, {"manager_id": d.manager_id, "branch_id": d.branch_id})

    async def core_data_applied(self, e: Event) -> None:
        d = e.data
        assert isinstance(d, cu.CoreDataApplied)
        if d.name is not None:
            await self._know(e.aggregateid, {"name": d.name.full_name})

    async def customer_erased(self, e: Event) -> None:
        """Forget the person's name (their leads and the rest: ``erasure.py``)."""
        assert isinstance(e.data, cu.CustomerErased)
        await self.customers.update_one(
            {"_id": e.aggregateid}, {"$set": {"erased": True}, "$unset": {"name": ""}}, upsert=True
        )

    # The reaction -----------------------------------------------------------------------

    async def response_recorded(self, e: Event) -> None:
        d = e.data
        assert isinstance(d, cmp.CampaignResponseRecorded)
        if d.stage is not cmp.ResponseStage.RESPONDED:
            return
        response = {
            "campaign_id": e.aggregateid,
            "customer_id": d.customer_id,
            "channel": d.channel.value,
            "actor": e.actor,
            "correlation_id": e.correlationid,
            "event_id": e.id,
        }
        if not await self._capture(response):
            raise NotYet("customer not known yet")

    async def _known_customer(self, customer_id: str) -> Document | None:
        """What the policy knows of the customer, if enough for a lead (name and branch) or
        to know it makes none (erased)."""
        customer = await self.customers.find_one({"_id": customer_id})
        if customer is None:
            return None
        if customer.get("erased") or ("name" in customer and "branch_id" in customer):
            return customer
        return None

    async def _capture(self, response: Mapping[str, Any]) -> bool:
        """Capture the response's lead (or find it captured); False if the customer is unknown."""
        customer = await self._known_customer(response["customer_id"])
        if customer is None:
            return False
        if customer.get("erased"):
            return True  # an erased customer's response makes no lead
        campaign = await self.campaigns.find_one({"_id": response["campaign_id"]}) or {}
        campaign_name = campaign.get("name", response["campaign_id"])

        def capture() -> bool:
            with command_context(
                response["actor"], response["correlation_id"], response["event_id"]
            ):
                return self.application.capture_campaign_lead(
                    campaign_id=response["campaign_id"],
                    customer_id=response["customer_id"],
                    contact_name=customer["name"],
                    branch_id=customer["branch_id"],
                    products=campaign.get("products", []),
                    manager_id=customer.get("manager_id"),
                    notes=f"responded to campaign {campaign_name} by {response['channel']}",
                )

        await asyncio.to_thread(capture)
        return True

    async def _know(self, customer_id: str, fields: Document) -> None:
        await self.customers.update_one({"_id": customer_id}, {"$set": fields}, upsert=True)
