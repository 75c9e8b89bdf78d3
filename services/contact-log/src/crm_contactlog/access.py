"""Whose contacts, activities and task lists a caller reaches: the rules of
``docs/access.md`` for this service, in one place.

- A contact, and an activity about a customer, is in the book of its **customer's**
  owners (the customer's relationship manager and branch, ``customer_owners``, kept by
  :class:`~crm_backbone.book.CustomerOwnersView`), not of the manager who logged it or is
  assigned it: a reassignment moves all of a customer's records at once.
- An activity about no customer (a team meeting), and a manager's task list, are in the
  book of their **staff member**: their own id as the manager, and the branch the
  organisation places them in.
- An activity is also read by each of its **participants** (the team calendar): whoever
  reaches one of them (themselves, their branch manager, their regional head) reads the
  activity, not its customer's other records; changing it stays its owners'.
- Out of reach answers exactly what missing answers (:class:`NotInReach`: the same 404).

The personal data of each answer (names, birth dates, free-text notes about a person) is
named here for :func:`~crm_backbone.access.as_shown`, which masks it for the analyst.
"""

from __future__ import annotations

from typing import Any

from crm_backbone.access import NotInReach, Reach, in_reach, scope_filter
from crm_backbone.book import CustomerBook
from crm_backbone.callers import PositionLookup
from crm_backbone.projection import Document
from crm_events.contact_log import ContactLogged
from crm_events.personal import PersonalData, personal_fields
from pymongo.asynchronous.database import AsyncDatabase

CONTACT_PERSONAL = personal_fields(ContactLogged)
"""A contact's notes: what was said with the customer (as the contract declares them)."""

ACTIVITY_PERSONAL = {
    "description": PersonalData.FREE_TEXT,
    "remarks": PersonalData.FREE_TEXT,
    "reschedule_reason": PersonalData.FREE_TEXT,
    "completion_remarks": PersonalData.FREE_TEXT,
    "cancel_reason": PersonalData.FREE_TEXT,
}
"""An activity's free text: what is planned with the customer, and why it moved or ended."""

TASK_PERSONAL = {
    "title": PersonalData.FREE_TEXT,
    "customer_name": PersonalData.NAME,
    "details.remarks": PersonalData.FREE_TEXT,
    "details.birth_date": PersonalData.BIRTH_DATE,
}
"""A task list entry: its title quotes notes (an activity's description, a complaint's
summary), its customer is named."""


class ContactLogBook:
    """Answers whether the records of this service are in a caller's reach."""

    def __init__(self, database: AsyncDatabase[Document], staff: PositionLookup) -> None:
        self.customers = CustomerBook(database)
        self._staff = staff

    async def scope(self, reach: Reach) -> dict[str, Any]:
        """The MongoDB filter of the records (contacts, activities, derived tasks) whose
        customer is in reach (``{}``: every record)."""
        return await self.customers.scope(reach)

    async def require_customer(
        self, reach: Reach, customer_id: str, *, kind: str = "customer", key: str | None = None
    ) -> None:
        """Raise :class:`NotInReach` (``no {kind} {key}``) unless the customer is in reach."""
        await self.customers.require(reach, customer_id, kind=kind, key=key or customer_id)

    async def require_staff(
        self, reach: Reach, staff_id: str, *, kind: str = "manager", key: str | None = None
    ) -> None:
        """Raise :class:`NotInReach` (``no {kind} {key}``) unless the staff member is in
        reach: themselves, their branch (as the organisation places them now), or all."""
        if not await self._staff_in_reach(reach, staff_id):
            raise NotInReach(kind, key or staff_id)

    async def unknown_staff(self, staff_ids: list[str]) -> list[str]:
        """Those of ``staff_ids`` the organisation does not place (never placed, or left)."""
        return [s for s in staff_ids if await self._staff.position_of(s) is None]

    async def require_activity(
        self,
        reach: Reach,
        customer_id: str | None,
        assignee_id: str,
        participant_ids: list[str],
        *,
        key: str,
    ) -> None:
        """Raise :class:`NotInReach` (``no activity {key}``) unless the activity may be
        read: through its owners (its customer; about none, its assignee), or one of its
        participants."""
        try:
            await self.require_owners(reach, customer_id, assignee_id, kind="activity", key=key)
        except NotInReach:
            for person in participant_ids:
                if await self._staff_in_reach(reach, person):
                    return
            raise

    async def _staff_in_reach(self, reach: Reach, staff_id: str) -> bool:
        if not scope_filter(reach):
            return True
        position = await self._staff.position_of(staff_id)
        owners = {"manager_id": staff_id, "branch_id": position.branch_id if position else None}
        return in_reach(reach, owners)

    async def require_owners(
        self,
        reach: Reach,
        customer_id: str | None,
        staff_id: str,
        *,
        kind: str | None = None,
        key: str | None = None,
    ) -> None:
        """Raise :class:`NotInReach` unless a record about ``customer_id`` (or, about no
        customer, of ``staff_id``) is in reach. It names the record ``kind`` ``key`` when
        given (an existing record), else the customer or the staff member (a new one)."""
        if customer_id is None:
            await self.require_staff(reach, staff_id, kind=kind or "manager", key=key)
        else:
            await self.require_customer(reach, customer_id, kind=kind or "customer", key=key)
