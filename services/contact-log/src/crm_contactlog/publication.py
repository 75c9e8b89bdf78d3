"""What the contact-log service publishes: each domain event as its integration event.

Domain event attributes are named as the payload's fields, so the mapping is by name;
the aggregate's own id travels as the envelope's subject, not in the payload.
"""

from __future__ import annotations

from crm_backbone.publication import translator
from crm_events.contact_log import (
    ActivityCancelled,
    ActivityCompleted,
    ActivityRescheduled,
    ActivityScheduled,
    ContactLogged,
)
from crm_events.registry import EventPayload

PAYLOADS: dict[str, type[EventPayload]] = {
    "Contact.Logged": ContactLogged,
    "Activity.Scheduled": ActivityScheduled,
    "Activity.Rescheduled": ActivityRescheduled,
    "Activity.Completed": ActivityCompleted,
    "Activity.Cancelled": ActivityCancelled,
}
"""Domain event class (qualified name) -> payload model of its integration event."""

translate = translator(PAYLOADS)
