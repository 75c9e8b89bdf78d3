"""How the customer service reacts to other systems' events by changing customers.

- Core banking's customer data changes are applied to the customer (the CRM mirrors the
  master data it does not own), exactly once per upstream version.
- An opt-out asked for through a campaign becomes the customer's consent.

An upstream event for a customer the CRM does not know yet is **parked** (kept in
MongoDB with its original record) and applied when that customer is registered: the
CRM's invariants (every customer has a type, a legal name and a branch) cannot hold for
a record built from a data change alone, and parking loses nothing. The single customer
view does not wait: accounts and KYC of an unknown customer already show in its document.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import ClassVar

import structlog
from crm_backbone.context import command_context
from crm_backbone.policy import Policy, PolicyHandler
from crm_backbone.projection import Document
from crm_events.campaign import OptOutRequested
from crm_events.core_banking import CustomerDataChanged
from crm_events.customer import CustomerRegistered
from crm_events.envelope import Envelope, from_kafka, to_kafka
from crm_events.registry import EventPayload
from crm_events.topics import CAMPAIGN_EVENTS, COREBANKING_CUSTOMERS, CUSTOMER_EVENTS
from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from crm_customer.application import CustomerApplication, CustomerNotFound

log = structlog.get_logger(__name__)

PARKED = "parked_upstream_events"


class CustomerPolicies(Policy):
    name: ClassVar[str] = "customer_policies"
    topics: ClassVar[tuple[str, ...]] = (
        COREBANKING_CUSTOMERS.name,
        CUSTOMER_EVENTS.name,
        CAMPAIGN_EVENTS.name,
    )

    def __init__(self, application: CustomerApplication, database: AsyncDatabase[Document]) -> None:
        self.application = application
        self.parked = database[PARKED]

    def handlers(self) -> Mapping[str, PolicyHandler]:
        return {
            CustomerDataChanged.event_type: self.core_data_changed,
            CustomerRegistered.event_type: self.customer_registered,
            OptOutRequested.event_type: self.opt_out_requested,
        }

    async def setup(self) -> None:
        await self.parked.create_indexes(
            [IndexModel([("customer_id", ASCENDING), ("parked_at", ASCENDING)])]
        )

    async def core_data_changed(self, envelope: Envelope[EventPayload]) -> None:
        await self._apply_or_park(envelope, envelope.aggregateid)

    async def opt_out_requested(self, envelope: Envelope[EventPayload]) -> None:
        data = envelope.data
        assert isinstance(data, OptOutRequested)
        await self._apply_or_park(envelope, data.customer_id)

    async def customer_registered(self, envelope: Envelope[EventPayload]) -> None:
        """Apply what was parked for the new customer, oldest first."""
        customer_id = envelope.aggregateid
        parked = self.parked.find({"customer_id": customer_id}).sort("parked_at", ASCENDING)
        async for doc in parked:
            record = doc["record"]
            upstream = from_kafka(record["key"], record["value"], record["headers"])
            try:
                await asyncio.to_thread(self._apply, upstream)
            except CustomerNotFound:  # a registration this store never saw: keep it parked
                log.warning("registered customer not in the store", customer_id=customer_id)
                return
            await self.parked.delete_one({"_id": doc["_id"]})
            log.info("parked event applied", customer_id=customer_id, event_id=doc["_id"])

    async def _apply_or_park(self, envelope: Envelope[EventPayload], customer_id: str) -> None:
        try:
            await asyncio.to_thread(self._apply, envelope)
        except CustomerNotFound:
            await self._park(envelope, customer_id)

    def _apply(self, envelope: Envelope[EventPayload]) -> None:
        """Issue the command the event calls for, as the event's actor (idempotent)."""
        data = envelope.data
        with command_context(envelope.actor, envelope.correlationid, envelope.id):
            if isinstance(data, CustomerDataChanged):
                self.application.apply_core_data(
                    envelope.aggregateid,
                    envelope.aggregateversion,
                    envelope.id,
                    data.model_dump(mode="json", exclude_none=True),
                )
            elif isinstance(data, OptOutRequested):
                self.application.record_opt_out(
                    data.customer_id, data.channel.value, envelope.aggregateid
                )

    async def _park(self, envelope: Envelope[EventPayload], customer_id: str) -> None:
        record = to_kafka(envelope)
        await self.parked.update_one(
            {"_id": envelope.id},
            {
                "$setOnInsert": {
                    "customer_id": customer_id,
                    "type": envelope.type,
                    "record": {"key": record.key, "value": record.value, "headers": record.headers},
                    "parked_at": datetime.now(UTC),
                }
            },
            upsert=True,
        )
        log.info("upstream event parked until its customer registers", event_id=envelope.id)
