"""How the customer service reacts to other systems' events by changing customers.

- Core banking's customer data changes are applied to the customer (the CRM mirrors the
  master data it does not own), exactly once per upstream version.
- An opt-out asked for through a campaign becomes the customer's consent.

An upstream event for a customer the CRM does not know yet is **parked** (the backbone's
parking lot, under the customer's id) and applied when that customer's registration comes
by: the CRM's invariants (every customer has a type, a legal name and a branch) cannot
hold for a record built from a data change alone, and parking loses nothing. The single
customer view does not wait: accounts and KYC of an unknown customer already show in its
document.

An upstream event about a customer whose personal data was erased is **dropped**: the
bank's topics are the bank's and still carry the person (``docs/personal-data.md``), but
the CRM stores nothing of them again. It is counted
(``crm_erased_subject_records_dropped_total``) and logged by event id and type only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import ClassVar

import structlog
from crm_backbone.context import command_context
from crm_backbone.metrics import ERASED_SUBJECT_RECORDS
from crm_backbone.policy import NotYet, Policy, PolicyHandler
from crm_events.campaign import OptOutRequested
from crm_events.core_banking import CustomerDataChanged
from crm_events.customer import CustomerRegistered
from crm_events.envelope import Envelope
from crm_events.registry import EventPayload
from crm_events.topics import CAMPAIGN_EVENTS, COREBANKING_CUSTOMERS, CUSTOMER_EVENTS

from crm_customer.application import CustomerApplication, CustomerNotFound
from crm_customer.erasure import CustomerErasedError

log = structlog.get_logger(__name__)


class CustomerPolicies(Policy):
    name: ClassVar[str] = "customer_policies"
    topics: ClassVar[tuple[str, ...]] = (
        COREBANKING_CUSTOMERS.name,
        CUSTOMER_EVENTS.name,
        CAMPAIGN_EVENTS.name,
    )

    def __init__(self, application: CustomerApplication) -> None:
        self.application = application

    def handlers(self) -> Mapping[str, PolicyHandler]:
        return {
            CustomerDataChanged.event_type: self.apply,
            CustomerRegistered.event_type: self.registered,
            OptOutRequested.event_type: self.apply,
        }

    def hold_of(self, envelope: Envelope[EventPayload]) -> str | None:
        """The customer the event is about: it waits for that customer's registration."""
        data = envelope.data
        if isinstance(data, OptOutRequested):
            return data.customer_id
        if isinstance(data, CustomerDataChanged):
            return envelope.aggregateid
        return None

    def releases(self, envelope: Envelope[EventPayload]) -> str | None:
        return envelope.aggregateid if isinstance(envelope.data, CustomerRegistered) else None

    async def ready(self, hold: str) -> bool:
        return await asyncio.to_thread(self.application.exists, hold)

    async def registered(self, envelope: Envelope[EventPayload]) -> None:
        """Nothing to do but release what waits for the customer (:meth:`releases`)."""

    async def apply(self, envelope: Envelope[EventPayload]) -> None:
        try:
            await asyncio.to_thread(self._apply, envelope)
        except CustomerNotFound:
            raise NotYet("customer not registered yet") from None
        except CustomerErasedError:
            ERASED_SUBJECT_RECORDS.labels(envelope.type).inc()
            log.info("erased_subject_record_dropped", event_id=envelope.id, type=envelope.type)

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
