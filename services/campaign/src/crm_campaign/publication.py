"""What the campaign service publishes: each domain event as its integration event.

Domain event attributes are named as the payload's fields, so the mapping is by name;
attributes the contract does not carry (targeting criteria, attribution window, the
status a cancelled campaign was in, the start time, which is the envelope's time) stay
private to the event store.
"""

from __future__ import annotations

from crm_backbone.publication import translator
from crm_events.campaign import (
    CallListAssigned,
    CampaignCancelled,
    CampaignCompleted,
    CampaignCreated,
    CampaignResponseRecorded,
    CampaignScheduled,
    CampaignStarted,
    OptOutRequested,
)
from crm_events.registry import EventPayload

PAYLOADS: dict[str, type[EventPayload]] = {
    "Campaign.Created": CampaignCreated,
    "Campaign.Scheduled": CampaignScheduled,
    "Campaign.Started": CampaignStarted,
    "Campaign.CallListAssigned": CallListAssigned,
    "Campaign.Completed": CampaignCompleted,
    "Campaign.Cancelled": CampaignCancelled,
    "Campaign.ResponseRecorded": CampaignResponseRecorded,
    "Campaign.OptOutRequested": OptOutRequested,
}
"""Domain event class (qualified name) -> payload model of its integration event."""

translate = translator(PAYLOADS)
