"""The contact-log service's own read models in MongoDB, built from its own stream.

``contacts``: one document per contact; a customer's contacts, newest first, are the
contact timeline (``queries.py`` pages through them with a keyset cursor).

``activities``: one document per activity with its current plan and status; the explicit
entries of the managers' task lists, and what ``GET /activities/{id}`` answers.

The inputs of the derived tasks (maturities, birthdays, ...) are another projection:
``task_inputs.py``. An erased customer's contacts and activities forget what they said of
the person (:data:`PERSONAL_PATHS`, ``crm_backbone.erasure``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from crm_backbone.erasure import PersonalPaths
from crm_backbone.projection import Document, Handler, Projection, ViewUpdate
from crm_events import contact_log as cl
from crm_events.common import Money
from crm_events.envelope import Envelope
from crm_events.personal import ERASED
from crm_events.registry import EventPayload
from crm_events.topics import CONTACTLOG_EVENTS
from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from crm_contactlog.domain import ActivityStatus

CONTACTS = "contacts"
ACTIVITIES = "activities"
PERSONAL_PATHS = (
    PersonalPaths(CONTACTS, removed=("content",), erased={"summary": ERASED}),
    PersonalPaths(
        ACTIVITIES,
        removed=("remarks", "completion_remarks", "reschedule_reason", "cancel_reason"),
        erased={"description": ERASED},
    ),
)
"""What a contact's and an activity's documents say of their customer (free texts)."""

Event = Envelope[EventPayload]


def money(value: Money | None) -> dict[str, str] | None:
    """Money for MongoDB: the exact amount as text."""
    return (
        None if value is None else {"amount": format(value.amount, "f"), "currency": value.currency}
    )


class ContactLogViews(Projection):
    """Contacts (the timeline) and activities."""

    name: ClassVar[str] = "contact_log_view"
    topics: ClassVar[tuple[str, ...]] = (CONTACTLOG_EVENTS.name,)

    def handlers(self) -> Mapping[str, Handler]:
        typed: dict[type[EventPayload], Any] = {
            cl.ContactLogged: self.contact_logged,
            cl.ActivityScheduled: self.activity_scheduled,
            cl.ActivityRescheduled: self.activity_rescheduled,
            cl.ActivityCompleted: self.activity_completed,
            cl.ActivityCancelled: self.activity_cancelled,
        }
        return {model.event_type: handler for model, handler in typed.items()}

    async def setup(self, database: AsyncDatabase[Document]) -> None:
        await database[CONTACTS].create_indexes(
            [
                IndexModel(
                    [("customer_id", ASCENDING), ("started_at", DESCENDING), ("_id", DESCENDING)]
                )
            ]
        )
        await database[ACTIVITIES].create_indexes(
            [
                IndexModel(
                    [("assignee_id", ASCENDING), ("status", ASCENDING), ("due_at", ASCENDING)]
                ),
                IndexModel([("customer_id", ASCENDING), ("due_at", ASCENDING)]),
                IndexModel([("participant_ids", ASCENDING), ("started_at", ASCENDING)]),
                IndexModel([("assignee_id", ASCENDING), ("started_at", ASCENDING)]),
            ]
        )

    def contact_logged(self, e: Event) -> Iterator[ViewUpdate]:
        d = e.data
        assert isinstance(d, cl.ContactLogged)
        contact = d.model_dump(mode="python") | {
            "contact_id": e.aggregateid,
            "logged_at": e.time,
            "logged_by": e.actor,
        }
        yield ViewUpdate(CONTACTS, e.aggregateid, {"$set": contact})

    def activity_scheduled(self, e: Event) -> Iterator[ViewUpdate]:
        d = e.data
        assert isinstance(d, cl.ActivityScheduled)
        activity = d.model_dump(mode="python", exclude={"estimated_cost"}) | {
            "activity_id": e.aggregateid,
            "estimated_cost": money(d.estimated_cost),
            "status": ActivityStatus.SCHEDULED.value,
            "done": False,
            "scheduled_at": e.time,
            "scheduled_by": e.actor,
        }
        yield ViewUpdate(ACTIVITIES, e.aggregateid, {"$set": activity})

    def activity_rescheduled(self, e: Event) -> Iterator[ViewUpdate]:
        d = e.data
        assert isinstance(d, cl.ActivityRescheduled)
        plan = d.model_dump(mode="python", include={"started_at", "ended_at", "due_at"})
        yield ViewUpdate(
            ACTIVITIES,
            e.aggregateid,
            {
                "$set": plan | {"reschedule_reason": d.reason, "rescheduled_at": e.time},
                "$inc": {"reschedule_count": 1},
            },
        )

    def activity_completed(self, e: Event) -> Iterator[ViewUpdate]:
        d = e.data
        assert isinstance(d, cl.ActivityCompleted)
        completion = {
            "status": ActivityStatus.COMPLETED.value,
            "done": True,
            "completed_at": d.completed_at,
            "completion_remarks": d.remarks,
            "cost": money(d.cost),
        }
        yield ViewUpdate(ACTIVITIES, e.aggregateid, {"$set": completion})

    def activity_cancelled(self, e: Event) -> Iterator[ViewUpdate]:
        d = e.data
        assert isinstance(d, cl.ActivityCancelled)
        cancellation = {
            "status": ActivityStatus.CANCELLED.value,
            "cancel_reason": d.reason,
            "cancelled_at": e.time,
        }
        yield ViewUpdate(ACTIVITIES, e.aggregateid, {"$set": cancellation})
