"""The organisation read model every service keeps: regions, branches, staff positions.

:class:`OrganisationView` projects HR's ``bank.hr.organisation`` topic into the consuming
service's own database (``org_units``: regions and branches; ``org_staff``: one position
per staff member). :class:`OrganisationDirectory` answers what access rules ask of it:
where a staff member stands (:meth:`~OrganisationDirectory.position_of`) and which
branches a region holds.

Documents name units by id only: a staff member's region is read through their branch
when asked, so a branch moving to another region, or a region renamed, changes one
document, and events of different aggregates may arrive in any order.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from crm_events import organisation as hr
from crm_events.envelope import Envelope
from crm_events.organisation import Role
from crm_events.registry import EventPayload
from crm_events.topics import HR_ORGANISATION
from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from crm_backbone.projection import Document, Handler, Projection, ViewUpdate

UNITS = "org_units"
STAFF = "org_staff"

Event = Envelope[EventPayload]


class OrganisationView(Projection):
    """Regions and branches (``org_units``) and staff positions (``org_staff``)."""

    name: ClassVar[str] = "organisation_view"
    topics: ClassVar[tuple[str, ...]] = (HR_ORGANISATION.name,)

    def handlers(self) -> Mapping[str, Handler]:
        typed: dict[type[EventPayload], Any] = {
            hr.RegionDefined: self.region_defined,
            hr.RegionRenamed: self.region_renamed,
            hr.BranchOpened: self.branch_opened,
            hr.BranchMoved: self.branch_moved,
            hr.BranchClosed: self.branch_closed,
            hr.StaffPlaced: self.staff_positioned,
            hr.StaffMoved: self.staff_positioned,
            hr.StaffLeft: self.staff_left,
        }
        return {model.event_type: handler for model, handler in typed.items()}

    async def setup(self, database: AsyncDatabase[Document]) -> None:
        await database[UNITS].create_indexes(
            [IndexModel([("kind", ASCENDING), ("region_id", ASCENDING)])]
        )

    def region_defined(self, e: Event) -> Iterator[ViewUpdate]:
        d = e.data
        assert isinstance(d, hr.RegionDefined)
        yield ViewUpdate(UNITS, e.aggregateid, {"$set": {"kind": "region", "name": d.name}})

    def region_renamed(self, e: Event) -> Iterator[ViewUpdate]:
        d = e.data
        assert isinstance(d, hr.RegionRenamed)
        yield ViewUpdate(UNITS, e.aggregateid, {"$set": {"name": d.name}})

    def branch_opened(self, e: Event) -> Iterator[ViewUpdate]:
        d = e.data
        assert isinstance(d, hr.BranchOpened)
        branch = {
            "kind": "branch",
            "name": d.name,
            "region_id": d.region_id,
            "opened_on": d.opened_on.isoformat(),
            "closed_on": None,
        }
        yield ViewUpdate(UNITS, e.aggregateid, {"$set": branch})

    def branch_moved(self, e: Event) -> Iterator[ViewUpdate]:
        d = e.data
        assert isinstance(d, hr.BranchMoved)
        yield ViewUpdate(UNITS, e.aggregateid, {"$set": {"region_id": d.region_id}})

    def branch_closed(self, e: Event) -> Iterator[ViewUpdate]:
        d = e.data
        assert isinstance(d, hr.BranchClosed)
        yield ViewUpdate(UNITS, e.aggregateid, {"$set": {"closed_on": d.closed_on.isoformat()}})

    def staff_positioned(self, e: Event) -> Iterator[ViewUpdate]:
        """Placed or moved: the whole position is restated."""
        d = e.data
        assert isinstance(d, hr.StaffPosition)
        position = d.model_dump(mode="json") | {"left_on": None, "since": e.time}
        yield ViewUpdate(STAFF, e.aggregateid, {"$set": position})

    def staff_left(self, e: Event) -> Iterator[ViewUpdate]:
        d = e.data
        assert isinstance(d, hr.StaffLeft)
        yield ViewUpdate(STAFF, e.aggregateid, {"$set": {"left_on": d.left_on.isoformat()}})


@dataclass(frozen=True)
class Position:
    """Where a staff member stands: role, branch (branch roles), region (of the branch, or
    the regional head's own), manager, and for a regional head the branches of the region."""

    staff_id: str
    role: Role
    branch_id: str | None = None
    region_id: str | None = None
    reports_to: str | None = None
    region_branch_ids: frozenset[str] = frozenset()


def position_from(staff: Document, branch: Document | None) -> Position | None:
    """The position an ``org_staff`` document records (``None`` once they left), with
    the region read from their branch's ``org_units`` document when they have one."""
    if staff.get("left_on") is not None:
        return None
    region_id = staff.get("region_id")
    if staff.get("branch_id") is not None:
        region_id = branch.get("region_id") if branch else None
    return Position(
        staff_id=staff["_id"],
        role=Role(staff["role"]),
        branch_id=staff.get("branch_id"),
        region_id=region_id,
        reports_to=staff.get("reports_to"),
    )


class OrganisationDirectory:
    """Reads the organisation view of one service's database."""

    def __init__(self, database: AsyncDatabase[Document]) -> None:
        self._units = database[UNITS]
        self._staff = database[STAFF]

    async def position_of(self, staff_id: str) -> Position | None:
        """The staff member's current position; ``None`` for someone HR never placed, or
        who left. A branch not yet known leaves the region ``None``."""
        staff = await self._staff.find_one({"_id": staff_id})
        if staff is None:
            return None
        branch_id = staff.get("branch_id")
        branch = None if branch_id is None else await self._units.find_one({"_id": branch_id})
        position = position_from(staff, branch)
        if position is None or position.role.unit != "region" or position.region_id is None:
            return position
        branches = await self.branches_of(position.region_id)
        return replace(position, region_branch_ids=branches)

    async def branches_of(self, region_id: str) -> frozenset[str]:
        """Ids of the branches now in the region, closed ones included: what was booked
        at a branch stays in its region after it closed."""
        cursor = self._units.find({"kind": "branch", "region_id": region_id}, {"_id": 1})
        return frozenset([doc["_id"] async for doc in cursor])
