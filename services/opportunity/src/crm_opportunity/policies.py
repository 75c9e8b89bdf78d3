"""How the opportunity service reacts to other systems' events by capturing leads.

A customer who **responded** to a campaign becomes a lead with source ``campaign``, once:
its id is derived from the campaign and the customer (``campaign_lead_id``), so a
redelivered or repeated response changes nothing. The lead names the customer, who their
relationship manager is (the lead is assigned to them), their branch, and the campaign's
products as its products of interest.

For that the policy keeps, in MongoDB, what it learns from the customer stream
(``known_customers``: name, branch, manager) and from campaign creation
(``known_campaigns``: name, products). A response for a customer it does not know yet
(the two topics are not ordered against each other) is **parked** and captured when the
customer's registration arrives. Both sides write first and read second (the response
parks, then looks for the customer again; the registration records the customer, then
looks for parked responses), so whichever runs last sees the other's write, even when the
two topics are consumed by different instances.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, ClassVar

import structlog
from crm_backbone.context import command_context
from crm_backbone.policy import Policy, PolicyHandler
from crm_backbone.projection import Document
from crm_events import campaign as cmp
from crm_events import customer as cu
from crm_events.envelope import Envelope
from crm_events.registry import EventPayload
from crm_events.topics import CAMPAIGN_EVENTS, CUSTOMER_EVENTS
from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from crm_opportunity.application import OpportunityApplication

log = structlog.get_logger(__name__)

KNOWN_CUSTOMERS = "known_customers"
KNOWN_CAMPAIGNS = "known_campaigns"
PARKED = "parked_campaign_responses"

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
        self.parked = database[PARKED]

    def handlers(self) -> Mapping[str, PolicyHandler]:
        typed: dict[type[EventPayload], PolicyHandler] = {
            cmp.CampaignCreated: self.campaign_created,
            cmp.CampaignResponseRecorded: self.response_recorded,
            cu.CustomerRegistered: self.customer_registered,
            cu.RelationshipManagerAssigned: self.manager_assigned,
            cu.CoreDataApplied: self.core_data_applied,
        }
        return {model.event_type: handler for model, handler in typed.items()}

    async def setup(self) -> None:
        await self.parked.create_indexes([IndexModel([("customer_id", ASCENDING)])])

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
        await self._capture_parked(e.aggregateid)

    async def manager_assigned(self, e: Event) -> None:
        d = e.data
        assert isinstance(d, cu.RelationshipManagerAssigned)
        await self._know(e.aggregateid, {"manager_id": d.manager_id, "branch_id": d.branch_id})

    async def core_data_applied(self, e: Event) -> None:
        d = e.data
        assert isinstance(d, cu.CoreDataApplied)
        if d.name is not None:
            await self._know(e.aggregateid, {"name": d.name.full_name})

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
        if await self._capture(response):
            return
        await self.parked.update_one({"_id": e.id}, {"$setOnInsert": response}, upsert=True)
        log.info("campaign response parked until its customer is known", event_id=e.id)
        await self._capture_parked(d.customer_id)

    async def _capture_parked(self, customer_id: str) -> None:
        async for parked in self.parked.find({"customer_id": customer_id}):
            if await self._capture(parked):
                await self.parked.delete_one({"_id": parked["_id"]})

    async def _capture(self, response: Mapping[str, Any]) -> bool:
        """Capture the response's lead (or find it captured); False if the customer is unknown."""
        customer = await self.customers.find_one({"_id": response["customer_id"]})
        if customer is None or "name" not in customer or "branch_id" not in customer:
            return False
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
