"""The customer service's access rules (``docs/access.md``), in one place.

A customer is in a caller's reach by its relationship manager and branch. Commands read
them from the aggregate (the write model: current the moment a reassignment is saved),
reads from the view's document; both name them ``manager_id`` and ``branch_id``, so one
:data:`OWNERSHIP` serves both. A customer out of reach is :class:`CustomerNotFound`,
exactly as a missing one.

What a command gives a customer must stay in the caller's reach too:

- a registration lands in the registering caller's book: a relationship manager who names
  no manager becomes the new customer's manager; the new owners (manager, branch) must be
  in the caller's reach, else 403;
- a reassignment may give the customer only to owners in the caller's reach (a branch
  manager between the relationship managers of their branch, a regional head across the
  branches of their region, a relationship manager to nobody but themselves), else 403;
- a staff member names only a relationship manager the organisation places at the branch
  named (422 otherwise), so a customer's manager and branch never disagree. Service
  accounts (upstream systems, the CRM's services) act on the whole book and name owners as
  the bank's systems record them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from crm_backbone.access import (
    DEFAULT_OWNERSHIP,
    SERVICE_REACHES,
    AccessRefused,
    NotInReach,
    Reach,
    ServiceRole,
    in_reach,
)
from crm_backbone.callers import Caller, PositionLookup
from crm_backbone.organisation import Position
from crm_events.organisation import Role
from crm_events.personal import PersonalData

from crm_customer.rules import RuleViolation

OWNERSHIP = DEFAULT_OWNERSHIP
"""Where the aggregate and the view name a customer's owners."""

WHOLE_BOOK = SERVICE_REACHES[ServiceRole.CRM_SERVICE]
"""The reach of what a command changes only as a consequence of its own customers: the
customers related to a merged duplicate, re-pointed to the survivor."""

PERSONAL: Mapping[str, PersonalData] = {
    "name": PersonalData.NAME,
    "profile.phone": PersonalData.PHONE,
    "profile.email": PersonalData.EMAIL,
    "profile.address": PersonalData.ADDRESS,
    "profile.birth_date": PersonalData.BIRTH_DATE,
    "profile.id_documents": PersonalData.ID_DOCUMENT,
    "key_dates.birth_date": PersonalData.BIRTH_DATE,
    "key_dates.next_birthday": PersonalData.BIRTH_DATE,
}
"""The personal data of every customer-shaped answer (the single view, the write side's
customer, a search result): a masked reach sees them masked."""


class CustomerNotFound(NotInReach):
    """No such customer, or one out of the caller's reach: one error, one 404."""

    def __init__(self, customer_id: str) -> None:
        super().__init__("customer", customer_id)
        self.customer_id = customer_id


def owners(manager_id: str | None, branch_id: str | None) -> dict[str, Any]:
    """A record naming a customer's owners, as :data:`OWNERSHIP` reads them."""
    return {OWNERSHIP.manager: manager_id, OWNERSHIP.branch: branch_id}


def require_customer_in_reach(reach: Reach, customer_id: str, record: Mapping[str, Any]) -> None:
    """:class:`CustomerNotFound` unless the customer whose owners ``record`` names is in reach."""
    if not in_reach(reach, record, OWNERSHIP):
        raise CustomerNotFound(customer_id)


def registering_manager(reach: Reach, named: str | None) -> str | None:
    """The manager a registration gives the new customer: the one it names, else, for a
    relationship manager (a book of their own customers), the caller."""
    scope = reach.scope
    if named is None and scope.field == "manager" and len(scope.values) == 1:
        (named,) = scope.values
    return named


@dataclass(frozen=True)
class Placement:
    """Where the organisation places the manager a command names: checked when a staff
    member names one (``position``: ``None`` for someone it does not place), taken as
    given from a service account."""

    checked: bool = False
    position: Position | None = None

    def places(self, manager_id: str, branch_id: str) -> bool:
        """Whether ``manager_id`` may manage customers of ``branch_id``."""
        position = self.position
        return not self.checked or (
            position is not None
            and position.staff_id == manager_id
            and position.role == Role.RELATIONSHIP_MANAGER
            and position.branch_id == branch_id
        )


AS_GIVEN = Placement()
"""The placement of a manager a service account names (or of no manager)."""


def require_may_give(
    reach: Reach, manager_id: str | None, branch_id: str, placement: Placement
) -> None:
    """Refuse owners out of the caller's reach (403), then a manager a staff member names
    who is no relationship manager of the branch named (422)."""
    if not in_reach(reach, owners(manager_id, branch_id), OWNERSHIP):
        raise AccessRefused("a customer can only be given to owners in the caller's reach")
    if manager_id is not None and not placement.places(manager_id, branch_id):
        raise RuleViolation(f"{manager_id} is not a relationship manager of branch {branch_id}")


async def placement_of(
    positions: PositionLookup, caller: Caller, manager_id: str | None
) -> Placement:
    """The placement of the manager ``caller`` names, as the organisation gives it."""
    principal = caller.principal
    if manager_id is None or principal is None or principal.service_account:
        return AS_GIVEN
    return Placement(checked=True, position=await positions.position_of(manager_id))
