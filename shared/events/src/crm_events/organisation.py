"""Upstream events of the bank's HR system: the organisation the CRM's access rules read.

Three aggregates, each the subject of its events: a region (region id), a branch (branch
id) and a staff member (staff id: the id the book names them by, a customer's manager id
such as ``RM-0042``; the identity provider puts it in their tokens' ``staff_id`` claim).
A branch belongs to one region; a staff member holds one role, in the unit that role
needs (:attr:`Role.unit`), and reports to another staff member. Events carry what
changed, not the whole aggregate: the topic keeps every event (it is never compacted), so
a view replayed from the start sees each aggregate's whole history.
"""

from datetime import date
from enum import StrEnum
from typing import Literal, Self

from pydantic import model_validator

from crm_events.common import Id, Name
from crm_events.registry import EventPayload, FrozenModel, event

UnitKind = Literal["branch", "region"]


class Role(StrEnum):
    """What a staff member does; it decides which unit their position names."""

    RELATIONSHIP_MANAGER = "relationship_manager"
    BRANCH_MANAGER = "branch_manager"
    REGIONAL_HEAD = "regional_head"
    ANALYST = "analyst"
    OPERATOR = "operator"
    AUDITOR = "auditor"
    DATA_PROTECTION_OFFICER = "data_protection_officer"

    @property
    def unit(self) -> UnitKind | None:
        """The unit a position in this role is held in; ``None``: head office (bank-wide)."""
        return _UNITS.get(self)


_UNITS: dict[Role, UnitKind] = {
    Role.RELATIONSHIP_MANAGER: "branch",
    Role.BRANCH_MANAGER: "branch",
    Role.REGIONAL_HEAD: "region",
}


@event("bank.hr.region.defined")
class RegionDefined(EventPayload):
    """A region was set up: it groups branches under a regional head."""

    name: Name


@event("bank.hr.region.renamed")
class RegionRenamed(EventPayload):
    name: Name


@event("bank.hr.branch.opened")
class BranchOpened(EventPayload):
    name: Name
    region_id: Id
    opened_on: date


@event("bank.hr.branch.moved")
class BranchMoved(EventPayload):
    """The branch now belongs to another region (its staff and customers go with it)."""

    region_id: Id
    previous_region_id: Id


@event("bank.hr.branch.closed")
class BranchClosed(EventPayload):
    """The branch closed; it stays in its region, as the records made there do."""

    closed_on: date


class StaffPosition(FrozenModel):
    """A role, the unit it is held in (a branch or a region, as the role needs; head-office
    roles name neither) and the staff id of the one reported to (``None``: nobody)."""

    role: Role
    branch_id: Id | None = None
    region_id: Id | None = None
    reports_to: Id | None = None

    @model_validator(mode="after")
    def _unit_fits_role(self) -> Self:
        named = {"branch": self.branch_id, "region": self.region_id}
        given = {kind for kind, unit_id in named.items() if unit_id is not None}
        needed = {self.role.unit} - {None}
        if given != needed:
            where = f"a {self.role.unit}_id" if self.role.unit else "no branch_id or region_id"
            raise ValueError(f"a {self.role.value} position names {where} and nothing else")
        return self


@event("bank.hr.staff.placed")
class StaffPlaced(StaffPosition, EventPayload):
    """A staff member took up a position: hired, or back after leaving."""


@event("bank.hr.staff.moved")
class StaffMoved(StaffPosition, EventPayload):
    """A staff member's position changed: another unit, role or manager (all restated)."""


@event("bank.hr.staff.left")
class StaffLeft(EventPayload):
    """A staff member left the bank: they hold no position from now on."""

    left_on: date
