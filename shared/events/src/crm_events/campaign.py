"""Events of the campaign service (aggregate: campaign; subject = campaign id)."""

from datetime import date
from enum import StrEnum

from pydantic import AwareDatetime, NonNegativeInt

from crm_events.common import Channel, CorporateTier, Id, Money, Name, ValueBand
from crm_events.registry import EventPayload, FrozenModel, event


class CampaignKind(StrEnum):
    ADVERTISING = "advertising"
    MAIL = "mail"
    SMS = "sms"
    EMAIL = "email"
    TELEMARKETING = "telemarketing"
    SEMINAR = "seminar"
    EVENT = "event"


class ResponseStage(StrEnum):
    """Response funnel of one target, in order; ``opted_out`` can happen at any point."""

    SENT = "sent"
    DELIVERED = "delivered"
    OPENED = "opened"
    CONTACTED = "contacted"
    RESPONDED = "responded"
    CONVERTED = "converted"
    OPTED_OUT = "opted_out"


class ExclusionReason(StrEnum):
    """Why a customer matching the segments was left off the target list."""

    OPTED_OUT = "opted_out"
    NO_CONTACT_DETAILS = "no_contact_details"
    CHURNED = "churned"
    RESTRICTED_TIER = "restricted_tier"
    DUPLICATE = "duplicate"


class Segment(FrozenModel):
    """A targeted segment: a value band, optionally narrowed to a corporate tier."""

    value_band: ValueBand
    corporate_tier: CorporateTier | None = None


class Target(FrozenModel):
    customer_id: Id
    channel: Channel
    segment: Segment
    manager_id: Id | None = None


@event("crm.campaign.created")
class CampaignCreated(EventPayload):
    name: Name
    kind: CampaignKind
    description: str | None = None
    products: list[Id] = []
    channels: list[Channel]
    target_segments: list[Segment]
    owner_manager_ids: list[Id]
    budget: Money
    planned_start: date
    planned_end: date


@event("crm.campaign.scheduled")
class CampaignScheduled(EventPayload):
    starts_at: AwareDatetime
    ends_at: AwareDatetime


@event("crm.campaign.started")
class CampaignStarted(EventPayload):
    """The target list was frozen and sending began."""

    targets: list[Target]
    excluded: dict[ExclusionReason, NonNegativeInt] = {}


@event("crm.campaign.completed")
class CampaignCompleted(EventPayload):
    completed_at: AwareDatetime


@event("crm.campaign.cancelled")
class CampaignCancelled(EventPayload):
    reason: str


@event("crm.campaign.response_recorded")
class CampaignResponseRecorded(EventPayload):
    """A target reached a funnel stage; ``revenue`` is attributed on conversion."""

    customer_id: Id
    channel: Channel
    stage: ResponseStage
    occurred_at: AwareDatetime
    revenue: Money | None = None
    opportunity_id: Id | None = None
    gateway_message_id: Id | None = None


@event("crm.campaign.call_list_assigned")
class CallListAssigned(EventPayload):
    """Targets to be phoned or visited were handed to a relationship manager."""

    manager_id: Id
    customer_ids: list[Id]
    due_on: date


@event("crm.campaign.opt_out_requested")
class OptOutRequested(EventPayload):
    """A target asked, through the campaign, to receive no more marketing on a channel."""

    customer_id: Id
    channel: Channel
    occurred_at: AwareDatetime
