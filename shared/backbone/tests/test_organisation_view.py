"""The organisation view, fed in memory: a staff member's position is the last one HR
stated, their region is their branch's (wherever it moved), leavers hold none, and
applying an event again changes nothing."""

from __future__ import annotations

from datetime import date
from typing import Any

from crm_backbone.organisation import STAFF, UNITS, OrganisationView, Position, position_from
from crm_backbone.projection import Document
from crm_events import organisation as hr
from crm_events.common import ID_PATTERN
from crm_events.envelope import Envelope
from crm_events.organisation import Role
from crm_events.registry import EventPayload
from crm_events.topics import HR_ORGANISATION, Service
from hypothesis import given
from hypothesis import strategies as st

ids = st.from_regex(ID_PATTERN, fullmatch=True)


class Organisation:
    """The HR stream (versions per aggregate) applied to dictionaries as MongoDB applies
    the view's ``$set`` updates."""

    def __init__(self) -> None:
        self.versions: dict[str, int] = {}
        self.views: dict[str, dict[str, Document]] = {UNITS: {}, STAFF: {}}
        self.handlers = OrganisationView().handlers()
        self.delivered: list[Envelope[EventPayload]] = []

    def emit(self, aggregate_id: str, payload: EventPayload) -> None:
        version = self.versions[aggregate_id] = self.versions.get(aggregate_id, 0) + 1
        self.deliver(
            Envelope.new(payload, aggregate_id, version, actor="hr", source=Service.HR.source)
        )

    def deliver(self, envelope: Envelope[EventPayload]) -> None:
        self.delivered.append(envelope)
        for update in self.handlers[envelope.type](envelope):
            assert set(update.update) == {"$set"}
            doc = self.views[update.collection].setdefault(
                update.document_id, {"_id": update.document_id}
            )
            doc.update(update.update["$set"])

    def position_of(self, staff_id: str) -> Position | None:
        staff = self.views[STAFF][staff_id]
        branch_id = staff.get("branch_id")
        return position_from(staff, None if branch_id is None else self.views[UNITS].get(branch_id))


def _placement(role: Role, unit_id: str, reports_to: str | None = None) -> dict[str, Any]:
    unit = {f"{role.unit}_id": unit_id} if role.unit else {}
    return {"role": role, "reports_to": reports_to, **unit}


def bank() -> Organisation:
    org = Organisation()
    org.emit("RG-EAST", hr.RegionDefined(name="East"))
    org.emit("RG-NORTH", hr.RegionDefined(name="North"))
    org.emit(
        "BR-001", hr.BranchOpened(name="Shanghai", region_id="RG-EAST", opened_on=date(2001, 1, 1))
    )
    org.emit(
        "BR-003", hr.BranchOpened(name="Shenzhen", region_id="RG-NORTH", opened_on=date(2003, 1, 1))
    )
    return org


def test_a_relationship_manager_stands_in_their_branch_and_its_region() -> None:
    org = bank()
    org.emit(
        "RM-0001", hr.StaffPlaced(**_placement(Role.RELATIONSHIP_MANAGER, "BR-001", "BM-0001"))
    )
    assert org.position_of("RM-0001") == Position(
        "RM-0001", Role.RELATIONSHIP_MANAGER, "BR-001", "RG-EAST", "BM-0001"
    )


def test_a_branch_moving_region_moves_its_staff_and_a_closed_branch_keeps_them() -> None:
    org = bank()
    org.emit("BM-0001", hr.StaffPlaced(**_placement(Role.BRANCH_MANAGER, "BR-001")))
    org.emit("BR-001", hr.BranchMoved(region_id="RG-NORTH", previous_region_id="RG-EAST"))
    org.emit("BR-001", hr.BranchClosed(closed_on=date(2026, 6, 30)))
    position = org.position_of("BM-0001")
    assert position is not None
    assert (position.branch_id, position.region_id) == ("BR-001", "RG-NORTH")
    assert org.views[UNITS]["BR-001"]["closed_on"] == "2026-06-30"


def test_staff_placed_before_their_branch_is_known_have_no_region_until_it_is() -> None:
    org = Organisation()
    org.emit("RM-0009", hr.StaffPlaced(**_placement(Role.RELATIONSHIP_MANAGER, "BR-009")))
    position = org.position_of("RM-0009")
    assert position is not None
    assert position.region_id is None
    org.emit(
        "BR-009", hr.BranchOpened(name="Wuhan", region_id="RG-NORTH", opened_on=date(2009, 1, 1))
    )
    assert org.position_of("RM-0009") == Position(
        "RM-0009", Role.RELATIONSHIP_MANAGER, "BR-009", "RG-NORTH"
    )


def test_a_region_renamed_keeps_its_branches() -> None:
    org = bank()
    org.emit("RG-EAST", hr.RegionRenamed(name="East China"))
    assert org.views[UNITS]["RG-EAST"] == {"_id": "RG-EAST", "kind": "region", "name": "East China"}
    assert org.views[UNITS]["BR-001"]["region_id"] == "RG-EAST"


positions = st.sampled_from(Role).flatmap(
    lambda role: st.builds(_placement, st.just(role), ids, st.none() | ids)
)


@given(staff_id=ids, history=st.lists(positions, min_size=1, max_size=6), leaves=st.booleans())
def test_the_last_position_stated_holds_until_they_leave_and_redelivery_changes_nothing(
    staff_id: str, history: list[dict[str, Any]], leaves: bool
) -> None:
    org = bank()
    org.emit(staff_id, hr.StaffPlaced(**history[0]))
    for later in history[1:]:
        org.emit(staff_id, hr.StaffMoved(**later))
    if leaves:
        org.emit(staff_id, hr.StaffLeft(left_on=date(2026, 11, 24)))
    expected = org.position_of(staff_id)
    if leaves:
        assert expected is None
    else:
        assert expected is not None
        last = hr.StaffMoved(**history[-1])
        assert (expected.role, expected.branch_id, expected.reports_to) == (
            last.role,
            last.branch_id,
            last.reports_to,
        )
        if last.region_id is not None:
            assert expected.region_id == last.region_id
    views = {name: {k: dict(v) for k, v in docs.items()} for name, docs in org.views.items()}
    for envelope in list(org.delivered):
        org.deliver(envelope)
    assert org.views == views


def test_someone_who_left_and_came_back_stands_in_their_new_position() -> None:
    org = bank()
    org.emit("AU-0001", hr.StaffPlaced(role=Role.AUDITOR))
    org.emit("AU-0001", hr.StaffLeft(left_on=date(2025, 1, 31)))
    assert org.position_of("AU-0001") is None
    org.emit("AU-0001", hr.StaffPlaced(**_placement(Role.REGIONAL_HEAD, "RG-NORTH")))
    assert org.position_of("AU-0001") == Position("AU-0001", Role.REGIONAL_HEAD, None, "RG-NORTH")


def test_the_view_handles_every_organisation_event() -> None:
    assert sorted(OrganisationView().handlers()) == HR_ORGANISATION.event_types()
    assert OrganisationView.topics == (HR_ORGANISATION.name,)
