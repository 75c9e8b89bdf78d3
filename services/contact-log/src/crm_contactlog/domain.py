"""Contacts and activities, and the rules a bank applies to them.

A **contact** records that a relationship manager contacted (or tried to contact) a
customer: it is logged once and never changes. An **activity** is planned work (a call,
a visit, a care moment, a follow-up task) assigned to a manager: scheduled, possibly
rescheduled, then completed or cancelled, both final.

Command methods check the rules and then trigger one event each (the ``@event``-decorated
methods, whose bodies are how the event changes the state). Event attributes are plain
JSON values (moments as ISO 8601 text, money as ``{"amount": "…", "currency": "…"}``)
named as in the published contract (``crm_events.contact_log``), so ``publication.py``
can map each event to its payload field by field.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from crm_backbone.aggregate import TracedAggregate
from crm_events.contact_log import ActivityCategory, ContactCategory, ContactOutcome, Priority
from eventsourcing.domain import event

JsonDict = dict[str, Any]

CLOCK_SKEW = timedelta(minutes=5)
"""How far in the future a moment that "has happened" may lie (clocks of devices differ)."""


class ActivityStatus(StrEnum):
    """Scheduled until completed or cancelled; both are final."""

    SCHEDULED = "scheduled"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class ContactLogError(Exception):
    """A command the rules refuse."""


class RuleViolation(ContactLogError):
    """The command breaks a rule of the domain (HTTP 422)."""


class Conflict(ContactLogError):
    """The command contradicts the current state (HTTP 409)."""


class ActivityClosed(Conflict):
    """The activity was completed or cancelled: it changes no more."""

    def __init__(self, activity_id: str, status: ActivityStatus) -> None:
        super().__init__(f"activity {activity_id} is {status}: it cannot change any more")
        self.activity_id = activity_id
        self.status = status


@dataclass(frozen=True)
class Slot:
    """The time an activity holds in its people's calendars: ``[start, end)``, half-open,
    so an activity ending at 10:00 and one starting at 10:00 do not overlap."""

    start: datetime
    end: datetime

    def overlaps(self, other: Slot) -> bool:
        return self.start < other.end and other.start < self.end


def slot_of(started_at: datetime, ended_at: datetime | None) -> Slot | None:
    """The slot of a plan: none without a planned end (a to-do, not an appointment) or of
    no duration; such an activity holds no time and overlaps nothing."""
    if ended_at is None or ended_at <= started_at:
        return None
    return Slot(started_at, ended_at)


@dataclass(frozen=True)
class BusyTime:
    """A person's time held by an open activity (the assignee's or a participant's)."""

    person_id: str
    activity_id: str
    slot: Slot


class Overlap(Conflict):
    """The plan overlaps other activities of the same people: refused unless confirmed."""

    def __init__(self, clashes: list[BusyTime]) -> None:
        named = ", ".join(f"{c.activity_id} ({c.person_id})" for c in clashes)
        super().__init__(f"the plan overlaps {named}: confirm the overlap to keep it")
        self.clashes = clashes


def clashes(
    activity_id: str, people: Iterable[str], slot: Slot | None, busy: Iterable[BusyTime]
) -> list[BusyTime]:
    """The busy times of ``people`` that ``slot`` overlaps, other than the activity's own,
    in order of start: the overlap rule, the one place it is decided."""
    if slot is None:
        return []
    wanted = set(people)
    found = [
        b
        for b in busy
        if b.person_id in wanted and b.activity_id != activity_id and b.slot.overlaps(slot)
    ]
    return sorted(found, key=lambda b: (b.slot.start, b.activity_id, b.person_id))


@dataclass(frozen=True)
class Calendar:
    """What a scheduling decides overlaps against: the busy times of the activity's people
    as the service's read model knows them, and whether the caller confirmed an overlap."""

    busy: tuple[BusyTime, ...] = ()
    confirm_overlap: bool = False

    def check(self, activity_id: str, people: Iterable[str], slot: Slot | None) -> None:
        """Raise :class:`Overlap` when ``slot`` overlaps and the caller did not confirm."""
        found = clashes(activity_id, people, slot, self.busy)
        if found and not self.confirm_overlap:
            raise Overlap(found)


NO_BUSY_TIMES = Calendar()
"""A calendar with nothing in it: a plan checked against it overlaps nothing."""


class Contact(TracedAggregate):
    """One contact with a customer: the entries of the customer's contact timeline."""

    natural_key = "contact_id"

    @event("Logged")
    def __init__(
        self,
        contact_id: str,
        customer_id: str,
        category: str,
        summary: str,
        content: str | None,
        called: bool,
        outcome: str,
        manager_id: str,
        opportunity_id: str | None,
        campaign_id: str | None,
        started_at: str,
        ended_at: str | None,
    ) -> None:
        self.contact_id = contact_id
        self.customer_id = customer_id
        self.category = ContactCategory(category)
        self.summary = summary
        self.content = content
        self.called = called
        self.outcome = ContactOutcome(outcome)
        self.manager_id = manager_id
        self.opportunity_id = opportunity_id
        self.campaign_id = campaign_id
        self.started_at = moment(started_at)
        self.ended_at = moment(ended_at) if ended_at else None

    @classmethod
    def log(cls, contact_id: str, fields: JsonDict, now: datetime) -> Contact:
        """A contact that took place: its period is ordered and not in the future."""
        started = moment(fields["started_at"])
        ended = moment(fields["ended_at"]) if fields.get("ended_at") else None
        _check_period(started, ended)
        if max(started, ended or started) > now + CLOCK_SKEW:
            raise RuleViolation("a contact records what happened: it cannot lie in the future")
        return cls(contact_id=contact_id, **fields)


class Activity(TracedAggregate):
    """Planned work of a relationship manager, about a customer or not (a team meeting)."""

    natural_key = "activity_id"

    @event("Scheduled")
    def __init__(
        self,
        activity_id: str,
        customer_id: str | None,
        category: str,
        description: str,
        remarks: str | None,
        priority: str,
        due_at: str,
        started_at: str,
        ended_at: str | None,
        estimated_cost: JsonDict | None,
        assignee_id: str,
        participant_ids: list[str],
        origin_event_id: str | None,
    ) -> None:
        self.activity_id = activity_id
        self.customer_id = customer_id
        self.category = ActivityCategory(category)
        self.description = description
        self.remarks = remarks
        self.priority = Priority(priority)
        self.due_at = moment(due_at)
        self.started_at = moment(started_at)
        self.ended_at = moment(ended_at) if ended_at else None
        self.estimated_cost = estimated_cost
        self.assignee_id = assignee_id
        self.participant_ids = participant_ids
        self.origin_event_id = origin_event_id
        self.status = ActivityStatus.SCHEDULED
        self.completed_at: datetime | None = None
        self.cost: JsonDict | None = None
        self.cancel_reason: str | None = None

    @classmethod
    def schedule(
        cls, activity_id: str, fields: JsonDict, calendar: Calendar = NO_BUSY_TIMES
    ) -> Activity:
        """A new activity; it falls due no earlier than it starts, by default when it
        starts, and overlaps no other activity of its people unless the caller confirms."""
        fields = fields | {"started_at": fields.get("started_at") or fields["due_at"]}
        started = moment(fields["started_at"])
        ended = moment(fields["ended_at"]) if fields.get("ended_at") else None
        _check_period(started, ended)
        _check_due(started, moment(fields["due_at"]))
        _check_money(fields.get("estimated_cost"), "estimated_cost")
        participants = fields.get("participant_ids", [])
        if len(set(participants)) != len(participants):
            raise RuleViolation("a participant is named twice")
        if fields["assignee_id"] in participants:
            raise RuleViolation("the assignee takes part already: do not name them a participant")
        calendar.check(activity_id, [fields["assignee_id"], *participants], slot_of(started, ended))
        return cls(activity_id=activity_id, **fields)

    @property
    def done(self) -> bool:
        return self.status is ActivityStatus.COMPLETED

    @property
    def people(self) -> list[str]:
        """Whose calendars the activity is in: its assignee and participants."""
        return [self.assignee_id, *self.participant_ids]

    def planned(
        self, due_at: str, started_at: str | None, ended_at: str | None
    ) -> tuple[datetime, datetime | None, datetime]:
        """The (start, end, due) a rescheduling asks for: without a new start the start is
        kept; without a new end, a planned end moves with the start (the duration is kept)."""
        start = moment(started_at) if started_at else self.started_at
        if ended_at:
            end: datetime | None = moment(ended_at)
        elif self.ended_at is not None:
            end = self.ended_at + (start - self.started_at)
        else:
            end = None
        return start, end, moment(due_at)

    # Commands ---------------------------------------------------------------------------

    def reschedule(
        self,
        due_at: str,
        started_at: str | None,
        ended_at: str | None,
        reason: str | None,
        calendar: Calendar = NO_BUSY_TIMES,
    ) -> None:
        """Move the activity (:meth:`planned`); an unchanged plan triggers nothing, a moved
        one overlaps no other activity of its people unless the caller confirms."""
        self._ensure_open()
        start, end, due = self.planned(due_at, started_at, ended_at)
        _check_period(start, end)
        _check_due(start, due)
        if (start, end, due) == (self.started_at, self.ended_at, self.due_at):
            return
        calendar.check(self.activity_id, self.people, slot_of(start, end))
        self._rescheduled(
            customer_id=self.customer_id,
            started_at=start.isoformat(),
            ended_at=end.isoformat() if end else None,
            due_at=due.isoformat(),
            reason=reason,
        )

    def complete(
        self, completed_at: str | None, remarks: str | None, cost: JsonDict | None, now: datetime
    ) -> None:
        """Mark the activity done (by default ``now``), with what it cost; it cannot be done
        in the future."""
        self._ensure_open()
        completed_at = completed_at or now.isoformat()
        if moment(completed_at) > now + CLOCK_SKEW:
            raise RuleViolation("completed_at is in the future")
        _check_money(cost, "cost")
        self._completed(
            customer_id=self.customer_id, completed_at=completed_at, remarks=remarks, cost=cost
        )

    def cancel(self, reason: str) -> None:
        self._ensure_open()
        self._cancelled(customer_id=self.customer_id, reason=reason)

    # Events: how each changes the state -------------------------------------------------

    @event("Rescheduled")
    def _rescheduled(
        self,
        customer_id: str | None,
        started_at: str,
        ended_at: str | None,
        due_at: str,
        reason: str | None,
    ) -> None:
        self.started_at = moment(started_at)
        self.ended_at = moment(ended_at) if ended_at else None
        self.due_at = moment(due_at)

    @event("Completed")
    def _completed(
        self,
        customer_id: str | None,
        completed_at: str,
        remarks: str | None,
        cost: JsonDict | None,
    ) -> None:
        self.status = ActivityStatus.COMPLETED
        self.completed_at = moment(completed_at)
        self.cost = cost

    @event("Cancelled")
    def _cancelled(self, customer_id: str | None, reason: str) -> None:
        self.status = ActivityStatus.CANCELLED
        self.cancel_reason = reason

    def _ensure_open(self) -> None:
        if self.status is not ActivityStatus.SCHEDULED:
            raise ActivityClosed(self.activity_id, self.status)


def moment(text: str) -> datetime:
    """An ISO 8601 moment with its offset (the API only accepts aware moments)."""
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise RuleViolation(f"{text} has no UTC offset")
    return value


def _check_period(started: datetime, ended: datetime | None) -> None:
    if ended is not None and ended < started:
        raise RuleViolation("ended_at is before started_at")


def _check_due(started: datetime, due: datetime) -> None:
    if due < started:
        raise RuleViolation("due_at is before the activity starts")


def _check_money(money: JsonDict | None, field: str) -> None:
    if money is None:
        return
    try:
        amount = Decimal(str(money["amount"]))
    except (InvalidOperation, KeyError):
        raise RuleViolation(f"{field} has no valid amount") from None
    if amount < 0:
        raise RuleViolation(f"{field} cannot be negative")
