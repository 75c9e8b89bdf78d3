"""The contact-log service layer: each command loads its aggregate, decides, and saves.

Commands return the aggregate's new version (those creating one, its id too: the caller's
or one made here with the injected ``new_id``), which a caller may pass back as
``expected_version`` (optimistic concurrency) or to a read to see its own write.

Contacts and activities share one id space: their ids are the subjects of the events on
``crm.contactlog.events``, which consumers track per subject, so an id names one or the
other, never both.
"""

from __future__ import annotations

from collections.abc import Callable

from crm_backbone.aggregate import TracedAggregate, uuid_for
from crm_backbone.application import Created, ServiceApplication, StaleVersion
from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from crm_contactlog.domain import Activity, Conflict, Contact, ContactLogError, JsonDict


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

    def schedule_activity(self, activity_id: str | None, fields: JsonDict) -> Created:
        """Schedule an activity, under ``activity_id`` or a new ``ACT-`` id."""
        activity_id = activity_id or self.new_id("ACT")
        self._ensure_new(activity_id)
        activity = Activity.schedule(activity_id, fields)
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
    ) -> int:
        return self._command(
            activity_id, expected, lambda a: a.reschedule(due_at, started_at, ended_at, reason)
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
