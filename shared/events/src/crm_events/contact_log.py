"""Events of the contact-log service: contacts and activities (tasks).

A contact and an activity are each the subject of their own events; every activity event
names the activity's customer (if any) so consumers can route it without state. That
customer is the data subject of the notes it carries (``subject_field``); an activity for
no customer is its own.
"""

from enum import StrEnum
from typing import Self

from pydantic import AwareDatetime, model_validator

from crm_events.common import Id, Money, Notes, ShortNotes
from crm_events.registry import EventPayload, FrozenModel, event


class ContactCategory(StrEnum):
    VISIT = "visit"
    PHONE = "phone"
    EMAIL = "email"
    SMS = "sms"
    MEETING = "meeting"
    COUNTER = "counter"
    COMPLAINT = "complaint"


class ContactOutcome(StrEnum):
    REACHED = "reached"
    NO_ANSWER = "no_answer"
    LEFT_MESSAGE = "left_message"
    FOLLOW_UP_NEEDED = "follow_up_needed"
    INTERESTED = "interested"
    NOT_INTERESTED = "not_interested"
    COMPLAINT_RAISED = "complaint_raised"


class ActivityCategory(StrEnum):
    FOLLOW_UP = "follow_up"
    CALL = "call"
    VISIT = "visit"
    MEETING = "meeting"
    CARE = "care"
    SERVICE = "service"
    REMINDER = "reminder"


class Priority(StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


class _Period(FrozenModel):
    """Start and end of something; the end is not before the start."""

    started_at: AwareDatetime
    ended_at: AwareDatetime | None = None

    @model_validator(mode="after")
    def _ends_after_start(self) -> Self:
        if self.ended_at is not None and self.ended_at < self.started_at:
            raise ValueError("ended_at is before started_at")
        return self


@event("crm.contact.logged")
class ContactLogged(_Period, EventPayload):
    """A relationship manager contacted (or tried to contact) a customer."""

    subject_field = "customer_id"

    customer_id: Id
    category: ContactCategory
    summary: ShortNotes
    content: Notes | None = None
    called: bool
    outcome: ContactOutcome
    manager_id: Id
    opportunity_id: Id | None = None
    campaign_id: Id | None = None


@event("crm.activity.scheduled")
class ActivityScheduled(_Period, EventPayload):
    """A planned activity or task; ``origin_event_id`` names the event it was derived from."""

    subject_field = "customer_id"

    customer_id: Id | None = None
    category: ActivityCategory
    description: ShortNotes
    remarks: Notes | None = None
    priority: Priority
    due_at: AwareDatetime
    estimated_cost: Money | None = None
    assignee_id: Id
    participant_ids: list[Id] = []
    origin_event_id: Id | None = None


@event("crm.activity.rescheduled")
class ActivityRescheduled(_Period, EventPayload):
    subject_field = "customer_id"

    customer_id: Id | None = None
    due_at: AwareDatetime
    reason: Notes | None = None


@event("crm.activity.completed")
class ActivityCompleted(EventPayload):
    subject_field = "customer_id"

    customer_id: Id | None = None
    completed_at: AwareDatetime
    remarks: Notes | None = None
    cost: Money | None = None


@event("crm.activity.cancelled")
class ActivityCancelled(EventPayload):
    subject_field = "customer_id"

    customer_id: Id | None = None
    reason: Notes
