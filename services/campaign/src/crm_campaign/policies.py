"""How the campaign service reacts to other systems' events by changing campaigns.

**Gateway responses** (``channel.gateway.responses``): each message sent, delivered,
opened, responded or opted out becomes the target's ``CampaignResponseRecorded`` (the
aggregate records a customer's stage once, so a redelivered or repeated report changes
nothing). A report for a campaign that has not started (or that this store does not know
yet) is **parked** (the backbone's parking lot, under the campaign's id) and applied when
the campaign's ``crm.campaign.started`` comes by (or dropped after the gateway topic's
retention, 30 days, if it never does); a report about a customer who is not a target is
dead-lettered.

**Attribution** (``crm.opportunity.events``, ``bank.corebanking.accounts``): a target
whose opportunity is won, or who opens a product the campaign offers, within the
campaign's attribution window converts, once, with the opportunity's expected value as
revenue (an account opening carries no amount). An opportunity created from a campaign
(``campaign_id``) converts for that campaign only.

- ``crm.opportunity.stage_changed`` does not carry the value: the policy keeps a small
  projection of each opportunity's customer, expected value and campaign
  (``opportunity_values``, from ``created`` and ``expected_value_changed``). It is kept
  by this same consumer because an opportunity's events share a key, hence a partition:
  when the win comes by, every earlier event of that opportunity has been applied, with
  no waiting on another consumer.
- Campaign starts and conversions arrive on different topics in any order, so each side
  of the join is remembered (``attribution_targets`` from started campaigns,
  ``conversion_signals`` from wins and openings) and whichever comes second does the
  matching; each side writes before it reads the other, so concurrent consumers never
  both miss it, and the aggregate counts a target's conversion once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, ClassVar

import structlog
from crm_backbone.context import command_context
from crm_backbone.policy import NotYet, Policy, PolicyHandler, Rejected
from crm_backbone.projection import Document
from crm_events import channel_gateway as gw
from crm_events.campaign import CampaignStarted, ResponseStage
from crm_events.core_banking import AccountOpened
from crm_events.envelope import Envelope
from crm_events.opportunity import (
    OpportunityCreated,
    OpportunityExpectedValueChanged,
    OpportunityStage,
    OpportunityStageChanged,
)
from crm_events.registry import EventPayload
from crm_events.topics import (
    CAMPAIGN_EVENTS,
    CHANNEL_GATEWAY_RESPONSES,
    COREBANKING_ACCOUNTS,
    OPPORTUNITY_EVENTS,
)
from pymongo import ASCENDING, IndexModel, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from crm_campaign.application import CampaignApplication, CampaignNotFound
from crm_campaign.domain import MAX_ATTRIBUTION_DAYS, NotStarted, NotTargeted
from crm_campaign.views import target_key

log = structlog.get_logger(__name__)

ATTRIBUTION_TARGETS = "attribution_targets"
SIGNALS = "conversion_signals"
OPPORTUNITY_VALUES = "opportunity_values"

STAGES: dict[type[EventPayload], ResponseStage] = {
    gw.MessageSent: ResponseStage.SENT,
    gw.MessageDelivered: ResponseStage.DELIVERED,
    gw.MessageOpened: ResponseStage.OPENED,
    gw.MessageResponded: ResponseStage.RESPONDED,
    gw.RecipientOptedOut: ResponseStage.OPTED_OUT,
}
"""The response stage each gateway event reports."""
GatewayMessage = (
    gw.MessageSent
    | gw.MessageDelivered
    | gw.MessageOpened
    | gw.MessageResponded
    | gw.RecipientOptedOut
)
MONGO_PRECISION = timedelta(milliseconds=1)
"""MongoDB keeps milliseconds: lookups widen by one, the aggregate decides exactly."""

Event = Envelope[EventPayload]


class CampaignPolicies(Policy):
    name: ClassVar[str] = "campaign_policies"
    topics: ClassVar[tuple[str, ...]] = (
        CHANNEL_GATEWAY_RESPONSES.name,
        CAMPAIGN_EVENTS.name,
        OPPORTUNITY_EVENTS.name,
        COREBANKING_ACCOUNTS.name,
    )
    # As long as the gateway topic keeps reports: no replay could bring them back.
    parking_expiry_seconds: ClassVar[int | None] = CHANNEL_GATEWAY_RESPONSES.retention_ms // 1000

    def __init__(self, application: CampaignApplication, database: AsyncDatabase[Document]) -> None:
        self.application = application
        self.targets = database[ATTRIBUTION_TARGETS]
        self.signals = database[SIGNALS]
        self.opportunities = database[OPPORTUNITY_VALUES]

    def handlers(self) -> Mapping[str, PolicyHandler]:
        gateway: dict[str, PolicyHandler] = {
            model.event_type: self.gateway_response for model in STAGES
        }
        return gateway | {
            CampaignStarted.event_type: self.campaign_started,
            OpportunityCreated.event_type: self.opportunity_valued,
            OpportunityExpectedValueChanged.event_type: self.opportunity_valued,
            OpportunityStageChanged.event_type: self.opportunity_stage_changed,
            AccountOpened.event_type: self.account_opened,
        }

    def hold_of(self, envelope: Event) -> str | None:
        """A gateway report waits for its campaign to start."""
        data = envelope.data
        return data.campaign_id if isinstance(data, GatewayMessage) else None

    def releases(self, envelope: Event) -> str | None:
        return envelope.aggregateid if isinstance(envelope.data, CampaignStarted) else None

    async def ready(self, hold: str) -> bool:
        return await asyncio.to_thread(self._started, hold)

    async def setup(self) -> None:
        await self.targets.create_indexes([IndexModel([("customer_id", ASCENDING)])])
        await self.signals.create_indexes(
            [
                IndexModel([("customer_id", ASCENDING), ("occurred_at", ASCENDING)]),
                # Older signals can fall in no attribution window of a campaign to come.
                IndexModel(
                    [("occurred_at", ASCENDING)],
                    expireAfterSeconds=(MAX_ATTRIBUTION_DAYS + 1) * 24 * 3600,
                ),
            ]
        )

    # Gateway responses --------------------------------------------------------------------

    async def gateway_response(self, envelope: Event) -> None:
        data = envelope.data
        assert isinstance(data, GatewayMessage)
        try:
            await asyncio.to_thread(self._record, envelope)
        except (CampaignNotFound, NotStarted):
            raise NotYet("campaign not started yet") from None
        except NotTargeted as error:
            raise Rejected(str(error)) from None

    def _record(self, envelope: Event) -> None:
        data = envelope.data
        assert isinstance(data, GatewayMessage)
        with command_context(envelope.actor, envelope.correlationid, envelope.id):
            self.application.record_gateway_response(
                data.campaign_id,
                data.customer_id,
                data.channel,
                STAGES[type(data)],
                data.occurred_at,
                gateway_message_id=envelope.aggregateid,
            )

    def _started(self, campaign_id: str) -> bool:
        try:
            return self.application.get(campaign_id).started_at is not None
        except CampaignNotFound:
            return False

    # Attribution ----------------------------------------------------------------------------

    async def campaign_started(self, envelope: Event) -> None:
        """Remember the targets for attribution and match earlier signals.

        The responses parked until the start are released afterwards (:meth:`releases`).
        """
        campaign_id = envelope.aggregateid
        try:
            campaign = await asyncio.to_thread(self.application.get, campaign_id)
        except CampaignNotFound:  # a campaign of another store sharing the topic
            log.warning("started campaign not in this store", campaign_id=campaign_id)
            return
        window = campaign.window()
        if window is None:
            return
        opens, closes = window
        customers = sorted(campaign.targets)
        if not customers:
            return
        await self.targets.bulk_write(
            [
                UpdateOne(
                    {"_id": target_key(campaign_id, customer_id)},
                    {
                        "$set": {
                            "campaign_id": campaign_id,
                            "customer_id": customer_id,
                            "opens": opens,
                            "closes": closes,
                        }
                    },
                    upsert=True,
                )
                for customer_id in customers
            ],
            ordered=False,
        )
        during = {"$gte": opens - MONGO_PRECISION, "$lte": closes + MONGO_PRECISION}
        signals = self.signals.find(
            {"customer_id": {"$in": customers}, "occurred_at": during}
        ).sort("occurred_at", ASCENDING)
        async for signal in signals:
            await self._attribute(campaign_id, signal, envelope)

    async def opportunity_valued(self, envelope: Event) -> None:
        """Keep the opportunity's value; an older version redelivered changes nothing."""
        data = envelope.data
        assert isinstance(data, OpportunityCreated | OpportunityExpectedValueChanged)
        fields = data.model_dump(mode="json", include={"customer_id", "expected_value"})
        if isinstance(data, OpportunityCreated):
            fields["campaign_id"] = data.campaign_id
        version = envelope.aggregateversion
        # A stored value of this version or a later one refuses the upsert: duplicate key.
        with contextlib.suppress(DuplicateKeyError):
            await self.opportunities.update_one(
                {"_id": envelope.aggregateid, "version": {"$not": {"$gte": version}}},
                {"$set": fields | {"version": version}},
                upsert=True,
            )

    async def opportunity_stage_changed(self, envelope: Event) -> None:
        data = envelope.data
        assert isinstance(data, OpportunityStageChanged)
        if data.stage is not OpportunityStage.CLOSED_WON:
            return
        opportunity = await self.opportunities.find_one({"_id": envelope.aggregateid}) or {}
        signal: Document = {
            "_id": envelope.id,
            "customer_id": data.customer_id,
            "occurred_at": envelope.time,
            "opportunity_id": envelope.aggregateid,
            "campaign_id": opportunity.get("campaign_id"),
            "revenue": opportunity.get("expected_value"),
        }
        await self._signal(signal, envelope)

    async def account_opened(self, envelope: Event) -> None:
        data = envelope.data
        assert isinstance(data, AccountOpened)
        signal: Document = {
            "_id": envelope.id,
            "customer_id": data.customer_id,
            "occurred_at": envelope.time,
            "product_code": data.product_code,
        }
        await self._signal(signal, envelope)

    async def _signal(self, signal: Document, envelope: Event) -> None:
        await self.signals.replace_one({"_id": signal["_id"]}, signal, upsert=True)
        moment = signal["occurred_at"]
        entries = self.targets.find(
            {
                "customer_id": signal["customer_id"],
                "opens": {"$lte": moment + MONGO_PRECISION},
                "closes": {"$gte": moment - MONGO_PRECISION},
            }
        )
        async for entry in entries:
            await self._attribute(entry["campaign_id"], signal, envelope)

    async def _attribute(self, campaign_id: str, signal: Document, envelope: Event) -> None:
        if signal.get("campaign_id") not in (None, campaign_id):
            return
        fields: dict[str, Any] = {
            "occurred_at": signal["occurred_at"],
            "revenue": signal.get("revenue"),
            "opportunity_id": signal.get("opportunity_id"),
            "product_code": signal.get("product_code"),
        }

        def attribute() -> bool:
            with command_context(envelope.actor, envelope.correlationid, envelope.id):
                return self.application.attribute_conversion(
                    campaign_id, signal["customer_id"], **fields
                )

        if await asyncio.to_thread(attribute):
            log.info("conversion attributed", campaign_id=campaign_id, signal=signal["_id"])
