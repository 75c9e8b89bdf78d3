"""The derived-task rules: each kind's trigger, its window at read time, its resolution.

Events go through the projections into an in-memory stand-in for MongoDB
(:class:`crm_contactlog.testing.Bank`); the task list is then composed at chosen moments
(an injected clock, never a wait).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from crm_contactlog.task_rules import TaskKind, derived_task_id
from crm_contactlog.testing import (
    OTHER,
    RM,
    T0,
    TODAY,
    Bank,
    assign,
    cny,
    complaint,
    contact,
    customer,
    days,
    maturity,
    opportunity,
    stage,
    take_on,
)
from crm_events import campaign as cmp
from crm_events import contact_log as cl
from crm_events import core_banking as cb
from crm_events import customer as cu
from crm_events import opportunity as op
from crm_events.common import Channel, ValueBand
from crm_events.topics import Service

# Maturities ------------------------------------------------------------------------------


def test_a_maturity_within_the_window_is_a_task_once_until_rescheduled_or_closed() -> None:
    bank = Bank()
    customer(bank, "C1", RM, None)
    first = maturity(bank, "ACC-1", TODAY + days(40))
    assert bank.kinds() == []  # 40 days out: outside the 30-day window
    assert bank.kinds(at=T0 + days(10)) == [("upcoming", "maturity", "C1")]

    bank.deliver(first)  # redelivered as is
    maturity(bank, "ACC-1", TODAY + days(40))  # re-sent by core banking as a new version
    listed = bank.tasks(at=T0 + days(35))
    assert [t.task_id for t in listed.this_week] == [derived_task_id(TaskKind.MATURITY, "ACC-1")]
    assert listed.this_week[0].due_on == TODAY + days(40)
    assert listed.this_week[0].customer_name == "Customer C1"

    maturity(bank, "ACC-1", TODAY + days(400), at=T0 + days(1))  # rolled over
    assert bank.kinds(at=T0 + days(35)) == []
    maturity(bank, "ACC-1", TODAY + days(41), at=T0 + days(2))
    assert bank.kinds(at=T0 + days(41)) == [("today", "maturity", "C1")]
    assert bank.kinds(at=T0 + days(42)) == []  # matured: rolled over or paid out
    bank.emit(Service.CORE_BANKING, "ACC-1", cb.AccountClosed(customer_id="C1", closed_on=TODAY))
    assert bank.kinds(at=T0 + days(40)) == []


def test_a_maturity_goes_to_the_customer_s_current_manager() -> None:
    bank = Bank()
    customer(bank, "C1", None, None)
    maturity(bank, "ACC-1", TODAY + days(3))
    assert bank.kinds() == []  # no manager yet: nobody's list
    assign(bank, "C1", OTHER, at=T0 - days(30))
    assert ("this_week", "maturity", "C1") in bank.kinds(OTHER)
    assign(bank, "C1", RM, at=T0 - days(20))
    assert ("this_week", "maturity", "C1") in bank.kinds(RM)
    assert ("this_week", "maturity", "C1") not in bank.kinds(OTHER)


# Birthdays -------------------------------------------------------------------------------


def test_a_birthday_within_the_window_is_a_task_until_it_passes() -> None:
    bank = Bank()
    customer(bank, "C1", RM, date(1980, 11, 26))
    customer(bank, "C2", RM, date(1990, 12, 25))
    assert bank.kinds() == [("this_week", "birthday", "C1")]
    listed = bank.tasks()
    assert listed.this_week[0].title == "Birthday (46)"
    assert bank.kinds(at=T0 + days(3)) == [("today", "birthday", "C1")]
    assert bank.kinds(at=T0 + days(4)) == []  # passed: next year's is far
    bank.emit(
        Service.CUSTOMER,
        "C2",
        cu.CoreDataApplied(source_event_id="ev-1", birth_date=date(1990, 11, 29)),
    )
    assert bank.kinds(at=T0 + days(4)) == [("this_week", "birthday", "C2")]
    bank.emit(Service.CUSTOMER, "C2", cu.CustomerMergedInto(survivor_customer_id="C1", reason="x"))
    assert bank.kinds(at=T0 + days(4)) == []


# Idle opportunities ------------------------------------------------------------------------


def test_an_opportunity_idle_for_n_days_is_a_task_until_something_happens_to_it() -> None:
    bank = Bank()
    opportunity(bank, "OPP-1")
    assert bank.kinds(at=T0 + days(13)) == []
    assert bank.kinds(at=T0 + days(14)) == [("today", "idle_opportunity", "C1")]
    assert bank.kinds(at=T0 + days(15)) == [("overdue", "idle_opportunity", "C1")]

    stage(bank, "OPP-1", op.OpportunityStage.PROPOSAL, at=T0 + days(10))  # it advanced
    assert bank.kinds(at=T0 + days(15)) == []
    assert bank.kinds(at=T0 + days(24)) == [("today", "idle_opportunity", "C1")]

    contact(bank, "CT-1", "C1", at=T0 + days(20), opportunity_id="OPP-1")  # a contact names it
    assert bank.kinds(at=T0 + days(24)) == []
    task_id = derived_task_id(TaskKind.IDLE_OPPORTUNITY, "OPP-1")
    assert bank.tasks(at=T0 + days(34)).today[0].task_id == task_id
    take_on(bank, "A-1", task_id, at=T0 + days(30))  # an activity names it
    assert ("overdue", "idle_opportunity", "C1") not in bank.kinds(at=T0 + days(35))

    bank.emit(
        Service.OPPORTUNITY,
        "OPP-1",
        op.OpportunityReassigned(customer_id="C1", manager_id=OTHER, previous_manager_id=RM),
        at=T0 + days(31),
    )
    assert bank.kinds(OTHER, at=T0 + days(45)) == [("today", "idle_opportunity", "C1")]
    stage(bank, "OPP-1", op.OpportunityStage.CLOSED_LOST, at=T0 + days(32))
    assert bank.kinds(OTHER, at=T0 + days(60)) == []


# Complaints --------------------------------------------------------------------------------


def test_a_complaint_close_to_its_sla_is_a_task_until_resolved() -> None:
    bank = Bank()
    customer(bank, "C1", RM, None)
    complaint(bank, "N-1", T0 + days(3), op.NeedKind.COMPLAINT)
    complaint(bank, "N-2", T0 + days(3), op.NeedKind.NEED)  # a need has no SLA task
    assert bank.kinds() == []
    assert bank.kinds(at=T0 + days(1.5)) == [("this_week", "complaint_sla", "C1")]
    breached = bank.tasks(at=T0 + days(3.1))
    assert [t.kind for t in breached.overdue] == [TaskKind.COMPLAINT_SLA]
    assert breached.overdue[0].details["breached"] is True

    bank.emit(
        Service.OPPORTUNITY,
        "N-1",
        op.NeedAssigned(customer_id="C1", manager_id=OTHER),
    )
    assert bank.kinds(at=T0 + days(2)) == []
    assert bank.kinds(OTHER, at=T0 + days(2)) == [("this_week", "complaint_sla", "C1")]

    resolved_at = T0 + days(2)
    bank.emit(
        Service.OPPORTUNITY,
        "N-1",
        op.NeedResolved(customer_id="C1", resolution="card unblocked", resolved_at=resolved_at),
    )
    assert bank.kinds(OTHER, at=T0 + days(2)) == []
    bank.emit(
        Service.OPPORTUNITY,
        "N-1",
        op.NeedStatusChanged(
            customer_id="C1",
            previous_status=op.NeedStatus.RESOLVED,
            status=op.NeedStatus.REOPENED,
        ),
    )
    assert bank.kinds(OTHER, at=T0 + days(2)) == [("this_week", "complaint_sla", "C1")]
    bank.emit(
        Service.OPPORTUNITY,
        "N-1",
        op.NeedResolutionConfirmed(customer_id="C1", satisfied=True, ended_at=resolved_at),
    )
    assert bank.kinds(OTHER, at=T0 + days(4)) == []


# Campaign call lists ----------------------------------------------------------------------


def test_a_call_list_makes_one_task_per_customer_until_contacted_or_the_campaign_ends() -> None:
    bank = Bank()
    bank.emit(
        Service.CAMPAIGN,
        "CMP-1",
        cmp.CampaignCreated(
            name="Year-end deposits",
            kind=cmp.CampaignKind.TELEMARKETING,
            channels=[Channel.PHONE],
            target_segments=[cmp.Segment(value_band=ValueBand.HIGH)],
            owner_manager_ids=[RM],
            budget=cny("10000"),
            planned_start=TODAY,
            planned_end=TODAY + days(30),
        ),
    )
    call_list = cmp.CallListAssigned(
        manager_id=RM, customer_ids=["C1", "C2"], due_on=TODAY + days(2)
    )
    assigned = bank.emit(Service.CAMPAIGN, "CMP-1", call_list)
    bank.deliver(assigned)
    bank.emit(Service.CAMPAIGN, "CMP-1", call_list)  # assigned again: the same tasks
    listed = bank.tasks()
    assert [(t.customer_id, t.title) for t in listed.this_week] == sorted(
        [(c, "Call about campaign Year-end deposits") for c in ("C1", "C2")],
        key=lambda pair: derived_task_id(TaskKind.CALL_LIST, "CMP-1", pair[0]),
    )

    contact(bank, "CT-1", "C1", at=T0 + days(1), campaign_id="CMP-1")
    contact(bank, "CT-2", "C2", at=T0 + days(1), campaign_id="CMP-OTHER")
    assert bank.kinds() == [("this_week", "call_list", "C2")]
    assert bank.kinds(at=T0 + days(3)) == [("overdue", "call_list", "C2")]
    bank.emit(Service.CAMPAIGN, "CMP-1", cmp.CampaignCancelled(reason="budget cut"))
    assert bank.kinds() == []


# Introductions ------------------------------------------------------------------------------


def test_a_newly_assigned_customer_is_an_introduction_call_for_the_new_manager() -> None:
    bank = Bank()
    customer(bank, "C1", None, None)
    assign(bank, "C1", RM)
    assert bank.kinds() == [("this_week", "introduction", "C1")]
    assert bank.tasks().this_week[0].due_on == TODAY + days(3)

    contact(bank, "CT-0", "C1", at=T0 - days(1))  # before the assignment: no introduction
    contact(bank, "CT-1", "C1", at=T0 + days(1), manager_id=OTHER)  # someone else called
    assert bank.kinds(at=T0 + days(4)) == [("overdue", "introduction", "C1")]
    contact(bank, "CT-2", "C1", at=T0 + days(1))
    assert bank.kinds(at=T0 + days(4)) == []

    assign(bank, "C1", OTHER, at=T0 + days(5))  # reassigned: OTHER introduces themself
    assert bank.kinds(at=T0 + days(5)) == []
    assert bank.kinds(OTHER, at=T0 + days(5)) == [("this_week", "introduction", "C1")]


# The list itself ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("due", "group"),
    [
        (T0 - timedelta(minutes=1), "overdue"),
        (T0 + timedelta(hours=2), "today"),
        (T0 + days(1), "this_week"),
        (T0 + days(6), "this_week"),
        (T0 + days(7), "upcoming"),
        (T0 + days(30), "upcoming"),
        (T0 + days(31), None),
    ],
)
def test_tasks_are_grouped_by_when_they_fall_due(due: datetime, group: str | None) -> None:
    bank = Bank()
    bank.emit(
        Service.CONTACT_LOG,
        "A-1",
        cl.ActivityScheduled(
            category=cl.ActivityCategory.MEETING,
            description="Branch meeting",
            priority=cl.Priority.LOW,
            started_at=due,
            due_at=due,
            assignee_id=RM,
        ),
    )
    expected = [(group, "activity", "")] if group else []
    assert bank.kinds() == expected


def test_the_day_is_the_bank_s_day_and_urgent_comes_first() -> None:
    bank = Bank()
    customer(bank, "C1", RM, None)
    late_evening_utc = datetime(2026, 11, 23, 17, 0, tzinfo=UTC)  # 01:00 on the 24th
    complaint(bank, "N-1", late_evening_utc, op.NeedKind.COMPLAINT)
    maturity(bank, "ACC-1", TODAY + days(1))
    listed = bank.tasks()
    assert listed.local_date == TODAY
    assert [t.kind for t in listed.this_week] == [TaskKind.COMPLAINT_SLA, TaskKind.MATURITY]
    assert listed.this_week[0].due_on == TODAY + days(1)
