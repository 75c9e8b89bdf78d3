"""The contact-log service layer: each command loads its aggregate, decides, and saves.

Commands return the aggregate's new version (those creating one, its id too: the caller's
or one made here with the injected ``new_id``), which a caller may pass back as
``expected_version`` (optimistic concurrency) or to a read to see its own write.

Contacts and activities share one id space: their ids are the subjects of the events on
``crm.contactlog.events``, which consumers track per subject, so an id names one or the
other, never both.

:class:`CallerCommands` runs them for a caller of the API: each checks, before it decides,
that what it changes or creates is in the caller's reach (``crm_contactlog.access``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from crm_backbone.access import Reach
from crm_backbone.aggregate import TracedAggregate, uuid_for
from crm_backbone.application import Created, ServiceApplication, StaleVersion
from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from crm_contactlog.access import ContactLogBook
from crm_contactlog.busy_times import BusyTimeReader
from crm_contactlog.domain import (
    NO_BUSY_TIMES,
    Activity,
    Calendar,
    Conflict,
    Contact,
    ContactLogError,
    JsonDict,
    RuleViolation,
    moment,
)


class ContactNotFound(ContactLogError):
    def __init__(self, contact_id: str) -> None:
        super().__init__(f"no contact {contact_id}")
        self.contact_id = contact_id


class ActivityNotFound(ContactLogError):
    def __init__(self, activity_id: str) -> None:
        super().__init__(f"no activity {activity_id}")
        self.activity_id = activity_id


class ContactLogApplication(ServiceApplication):
    """Logs contacts and runs every command on activities."""

    # Queries of the write side ----------------------------------------------------------

    def get_contact(self, contact_id: str) -> Contact:
        try:
            contact: Contact = self.repository.get(uuid_for(Contact, contact_id))
        except AggregateNotFoundError:
            raise ContactNotFound(contact_id) from None
        return contact

    def get_activity(self, activity_id: str) -> Activity:
        try:
            activity: Activity = self.repository.get(uuid_for(Activity, activity_id))
        except AggregateNotFoundError:
            raise ActivityNotFound(activity_id) from None
        return activity

    # Commands ---------------------------------------------------------------------------

    def log_contact(self, contact_id: str | None, fields: JsonDict) -> Created:
        """Log a contact, under ``contact_id`` or a new ``CT-`` id."""
        contact_id = contact_id or self.new_id("CT")
        self._ensure_new(contact_id)
        contact = Contact.log(contact_id, fields, self.clock())
        self._save(contact, contact_id)
        return Created(contact_id, contact.version)

    def schedule_activity(
        self, activity_id: str | None, fields: JsonDict, calendar: Calendar = NO_BUSY_TIMES
    ) -> Created:
        """Schedule an activity, under ``activity_id`` or a new ``ACT-`` id, checked
        against the busy times of ``calendar``."""
        activity_id = activity_id or self.new_id("ACT")
        self._ensure_new(activity_id)
        activity = Activity.schedule(activity_id, fields, calendar)
        self._save(activity, activity_id)
        return Created(activity_id, activity.version)

    def reschedule_activity(
        self,
        activity_id: str,
        expected: int | None,
        due_at: str,
        started_at: str | None,
        ended_at: str | None,
        reason: str | None,
        calendar: Calendar = NO_BUSY_TIMES,
    ) -> int:
        return self._command(
            activity_id,
            expected,
            lambda a: a.reschedule(due_at, started_at, ended_at, reason, calendar),
        )

    def complete_activity(
        self,
        activity_id: str,
        expected: int | None,
        completed_at: str | None,
        remarks: str | None,
        cost: JsonDict | None,
    ) -> int:
        now = self.clock()
        return self._command(
            activity_id, expected, lambda a: a.complete(completed_at, remarks, cost, now)
        )

    def cancel_activity(self, activity_id: str, expected: int | None, reason: str) -> int:
        return self._command(activity_id, expected, lambda a: a.cancel(reason))

    # Helpers ----------------------------------------------------------------------------

    def _command(
        self, activity_id: str, expected: int | None, decide: Callable[[Activity], None]
    ) -> int:
        activity = self.get_activity(activity_id)
        if expected is not None and expected != activity.version:
            raise StaleVersion(f"activity {activity_id}", expected, activity.version)
        decide(activity)
        self._save(activity, activity_id)
        return activity.version

    def _ensure_new(self, identifier: str) -> None:
        for kind in (Contact, Activity):
            if uuid_for(kind, identifier) in self.repository:
                raise Conflict(f"{identifier} already names a {kind.__name__.lower()}")

    def _save(self, aggregate: TracedAggregate, identifier: str) -> None:
        try:
            self.save(aggregate)
        except IntegrityError:
            raise Conflict(
                f"{identifier} changed while this command ran: read it again and retry"
            ) from None


class CallerCommands:
    """The commands of :class:`ContactLogApplication` as a caller may run them (awaited
    through ``Caller.run_async``, as the caller): a contact or an activity is created only
    about a customer in reach (an activity about no customer: for a staff member in
    reach), and an activity is changed only while its owners are in reach; it is read by
    its participants' readers too (``ContactLogBook.require_activity``). Otherwise the
    answer is the 404 of a missing record, and nothing is written.

    Scheduling and moving an activity reads its people's busy times (``busy_times``) for
    the domain's overlap rule; participants must be staff the organisation knows (422).

    The owners of an existing record are read from the write model (its customer, assignee
    and participants never change), so a reader may be checked before it waits for its own write.
    """

    def __init__(
        self, application: ContactLogApplication, book: ContactLogBook, busy: BusyTimeReader
    ) -> None:
        self.application = application
        self.book = book
        self.busy = busy

    async def require_contact(self, reach: Reach, contact_id: str) -> None:
        """Raise the 404 of a missing contact unless the contact is in reach."""
        contact = await asyncio.to_thread(self.application.get_contact, contact_id)
        await self.book.require_customer(reach, contact.customer_id, kind="contact", key=contact_id)

    async def require_activity(self, reach: Reach, activity_id: str) -> None:
        """Raise the 404 of a missing activity unless the caller may read it."""
        activity = await asyncio.to_thread(self.application.get_activity, activity_id)
        await self.book.require_activity(
            reach,
            activity.customer_id,
            activity.assignee_id,
            activity.participant_ids,
            key=activity_id,
        )

    async def _owned(self, reach: Reach, activity_id: str) -> Activity:
        """The activity, or the 404 of a missing one unless its owners are in reach."""
        activity = await asyncio.to_thread(self.application.get_activity, activity_id)
        await self.book.require_owners(
            reach, activity.customer_id, activity.assignee_id, kind="activity", key=activity_id
        )
        return activity

    async def log_contact(self, reach: Reach, contact_id: str | None, fields: JsonDict) -> Created:
        await self.book.require_customer(reach, fields["customer_id"])
        return await asyncio.to_thread(self.application.log_contact, contact_id, fields)

    async def schedule_activity(
        self,
        reach: Reach,
        activity_id: str | None,
        fields: JsonDict,
        *,
        confirm_overlap: bool = False,
    ) -> Created:
        await self.book.require_owners(reach, fields.get("customer_id"), fields["assignee_id"])
        participants = fields.get("participant_ids", [])
        unknown = await self.book.unknown_staff(participants)
        if unknown:
            raise RuleViolation(f"no staff member {', '.join(unknown)} in the organisation")
        start = moment(fields.get("started_at") or fields["due_at"])
        people = [fields["assignee_id"], *participants]
        calendar = Calendar(await self.busy.of(people, start), confirm_overlap)
        schedule = self.application.schedule_activity
        return await asyncio.to_thread(schedule, activity_id, fields, calendar)

    async def reschedule_activity(
        self,
        reach: Reach,
        activity_id: str,
        expected: int | None,
        /,
        confirm_overlap: bool = False,
        **plan: Any,
    ) -> int:
        activity = await self._owned(reach, activity_id)
        start, _, _ = activity.planned(plan["due_at"], plan["started_at"], plan["ended_at"])
        calendar = Calendar(await self.busy.of(activity.people, start), confirm_overlap)
        reschedule = self.application.reschedule_activity
        return await asyncio.to_thread(reschedule, activity_id, expected, **plan, calendar=calendar)

    async def complete_activity(
        self, reach: Reach, activity_id: str, expected: int | None, /, **done: Any
    ) -> int:
        await self._owned(reach, activity_id)
        complete = self.application.complete_activity
        return await asyncio.to_thread(complete, activity_id, expected, **done)

    async def cancel_activity(
        self, reach: Reach, activity_id: str, expected: int | None, reason: str
    ) -> int:
        await self._owned(reach, activity_id)
        cancel = self.application.cancel_activity
        return await asyncio.to_thread(cancel, activity_id, expected, reason)
