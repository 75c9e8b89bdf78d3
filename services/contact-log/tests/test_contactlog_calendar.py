"""The team calendar: the overlap rule (intervals), its check on scheduling and moving an
activity, and the busy-times projection."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from crm_contactlog.application import ContactLogApplication
from crm_contactlog.busy_times import BUSY_TIMES, BusyTimesView
from crm_contactlog.domain import (
    Activity,
    BusyTime,
    Calendar,
    Overlap,
    Slot,
    clashes,
    slot_of,
)
from crm_contactlog.testing import Bank
from crm_events import contact_log as cl
from crm_events.topics import Service
from hypothesis import given
from hypothesis import strategies as st

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def minute(n: int) -> datetime:
    return NOW + timedelta(minutes=n)


minutes = st.integers(min_value=0, max_value=600)


@st.composite
def slots(draw: st.DrawFn) -> Slot:
    start = draw(minutes)
    return Slot(minute(start), minute(start + draw(st.integers(min_value=1, max_value=240))))


@given(slots(), slots())
def test_two_slots_overlap_exactly_when_they_share_a_moment(a: Slot, b: Slot) -> None:
    def held(slot: Slot) -> set[int]:
        """The whole minutes a slot holds (exact: slots start and end on whole minutes)."""
        return {m for m in range(0, 900) if slot.start <= minute(m) < slot.end}

    assert a.overlaps(b) == bool(held(a) & held(b)) == b.overlaps(a)


@given(slots(), st.integers(min_value=1, max_value=120))
def test_back_to_back_slots_do_not_overlap(a: Slot, length: int) -> None:
    after = Slot(a.end, a.end + timedelta(minutes=length))
    assert not a.overlaps(after)
    assert not after.overlaps(a)
    assert a.overlaps(a)


@given(minutes, st.integers(min_value=-60, max_value=0))
def test_a_plan_without_duration_holds_no_time(start: int, length: int) -> None:
    assert slot_of(minute(start), None) is None
    assert slot_of(minute(start), minute(start + length)) is None


@given(
    slots(),
    st.lists(
        st.tuples(
            st.sampled_from(["RM-1", "RM-2", "RM-3"]), st.sampled_from(["A", "B", "C"]), slots()
        ),
        max_size=12,
    ),
)
def test_clashes_are_the_overlapping_times_of_the_people_other_than_the_activity_s_own(
    slot: Slot, held: list[tuple[str, str, Slot]]
) -> None:
    busy = [BusyTime(person, activity, s) for person, activity, s in held]
    found = clashes("A", ["RM-1", "RM-2"], slot, busy)
    expected = [
        b for b in busy if b.person_id != "RM-3" and b.activity_id != "A" and b.slot.overlaps(slot)
    ]
    assert sorted(found, key=repr) == sorted(expected, key=repr)
    assert [b.slot.start for b in found] == sorted(b.slot.start for b in found)
    assert clashes("A", ["RM-1"], None, busy) == []


def plan(start: int, end: int | None, **overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "customer_id": "C1",
        "category": "visit",
        "description": "Review the wealth plan",
        "remarks": None,
        "priority": "high",
        "due_at": minute(end if end is not None else start).isoformat(),
        "started_at": minute(start).isoformat(),
        "ended_at": minute(end).isoformat() if end is not None else None,
        "estimated_cost": None,
        "assignee_id": "RM-1",
        "participant_ids": ["RM-2"],
        "origin_event_id": None,
    }
    return fields | overrides


BUSY = (
    BusyTime("RM-2", "A-9", Slot(minute(60), minute(120))),
    BusyTime("RM-7", "A-8", Slot(minute(0), minute(600))),
)


def test_scheduling_over_a_participant_s_time_is_refused_naming_it_unless_confirmed() -> None:
    with pytest.raises(Overlap) as refused:
        Activity.schedule("A-1", plan(90, 150), Calendar(BUSY))
    assert refused.value.clashes == [BUSY[0]]
    assert "A-9 (RM-2)" in str(refused.value)
    assert Activity.schedule("A-1", plan(90, 150), Calendar(BUSY, confirm_overlap=True))
    assert Activity.schedule("A-1", plan(120, 150), Calendar(BUSY))  # back to back
    assert Activity.schedule("A-1", plan(90, None), Calendar(BUSY))  # a to-do holds no time


def test_moving_an_activity_checks_its_new_time_and_not_its_own() -> None:
    app = ContactLogApplication(env={"PERSISTENCE_MODULE": "eventsourcing.popo"}, clock=lambda: NOW)
    app.schedule_activity("A-1", plan(0, 30))
    own = (BusyTime("RM-1", "A-1", Slot(minute(0), minute(30))), *BUSY)
    due = minute(100).isoformat()

    def move(start: int, calendar: Calendar) -> int:
        return app.reschedule_activity(
            "A-1", None, due, minute(start).isoformat(), None, None, calendar
        )

    with pytest.raises(Overlap):
        move(70, Calendar(own))
    assert app.get_activity("A-1").version == 1  # refused: nothing written
    assert move(10, Calendar(own)) == 2
    assert move(70, Calendar(own, confirm_overlap=True)) == 3


def test_busy_times_follow_an_activity_until_it_ends() -> None:
    bank = Bank(projections=(BusyTimesView(),))
    scheduled = cl.ActivityScheduled.model_validate(plan(0, 30, participant_ids=["RM-2", "RM-3"]))
    bank.emit(Service.CONTACT_LOG, "A-1", scheduled)
    busy = bank.views[BUSY_TIMES]["A-1"]
    assert busy["person_ids"] == ["RM-1", "RM-2", "RM-3"]
    assert busy["open"] is True
    moved = cl.ActivityRescheduled(
        customer_id="C1", started_at=minute(60), ended_at=minute(90), due_at=minute(90)
    )
    bank.emit(Service.CONTACT_LOG, "A-1", moved)
    assert (busy["started_at"], busy["ended_at"]) == (minute(60), minute(90))
    bank.emit(Service.CONTACT_LOG, "A-1", cl.ActivityCancelled(customer_id="C1", reason="ill"))
    assert busy["open"] is False
