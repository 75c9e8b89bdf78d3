"""Upstream events of the SMS / e-mail / app-push gateways about campaign messages.

The subject is the gateway's message id.
"""

from typing import ClassVar

from pydantic import AwareDatetime

from crm_events.common import Channel, Id, Notes
from crm_events.registry import EventPayload, FrozenModel, event


class _CampaignMessage(FrozenModel):
    """Which campaign message to which customer, and when the gateway saw this happen."""

    subject_field: ClassVar[str | None] = "customer_id"

    campaign_id: Id
    customer_id: Id
    channel: Channel
    occurred_at: AwareDatetime


@event("channel.gateway.message.sent")
class MessageSent(_CampaignMessage, EventPayload):
    pass


@event("channel.gateway.message.delivered")
class MessageDelivered(_CampaignMessage, EventPayload):
    pass


@event("channel.gateway.message.opened")
class MessageOpened(_CampaignMessage, EventPayload):
    pass


@event("channel.gateway.message.responded")
class MessageResponded(_CampaignMessage, EventPayload):
    """The customer replied (SMS reply, e-mail reply or link click)."""

    response_text: Notes | None = None


@event("channel.gateway.message.opted_out")
class RecipientOptedOut(_CampaignMessage, EventPayload):
    """The customer asked to stop messages on this channel (e.g. replied STOP)."""
