"""The derived-task policies: each trigger, its de-duplication on redelivery, its resolution.

Events go through the projections' handlers into an in-memory stand-in for MongoDB's
update operators; the task list is then composed at chosen moments (an injected clock,
never a wait).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from crm_backbone.projection import Document, Projection
from crm_contactlog.policies import (
    CAMPAIGNS,
    CUSTOMERS,
    DERIVED,
    TaskKind,
    TaskPolicies,
    TaskRules,
    derived_task_id,
)
from crm_contactlog.queries import TaskList, activity_task, group_tasks
from crm_contactlog.views import ACTIVITIES, ContactLogViews
from crm_events import campaign as cmp
from crm_events import contact_log as cl
from crm_events import core_banking as cb
from crm_events import customer as cu
from crm_events import opportunity as op
from crm_events.common import Channel, CustomerName, CustomerType, Money, ValueBand
from crm_events.envelope import Envelope
from crm_events.registry import EventPayload
from crm_events.topics import Service

SHANGHAI = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 11, 23, 9, 0, tzinfo=SHANGHAI)  # a Monday morning
TODAY = T0.date()
RULES = TaskRules(
    timezone=SHANGHAI,
    maturity_notice_days=30,
    birthday_notice_days=7,
    opportunity_idle_days=14,
    complaint_warning_hours=48,
    introduction_days=3,
    introduction_lapse_days=30,
)
RM, OTHER = "RM-1", "RM-2"


@dataclass
class Bank:
    """The streams (contiguous versions per aggregate) and the views they build."""

    versions: dict[str, int] = field(default_factory=dict)
    views: dict[str, dict[str, Document]] = field(default_factory=lambda: defaultdict(dict))
    projections: tuple[Projection, ...] = (ContactLogViews(), TaskPolicies())

    def emit(
        self, service: Service, aggregate_id: str, payload: EventPayload, at: datetime = T0
    ) -> Envelope[EventPayload]:
        version = self.versions[aggregate_id] = self.versions.get(aggregate_id, 0) + 1
        envelope = Envelope.new(
            payload, aggregate_id, version, actor="test", source=service.source, time=at
        )
        self.deliver(envelope)
        return envelope

    def deliver(self, envelope: Envelope[EventPayload]) -> None:
        """Apply one event as MongoDB would apply its updates (upserts, dotted paths)."""
        for projection in self.projections:
            handler = projection.handlers().get(envelope.type)
            for update in handler(envelope) if handler else ():
                doc = self.views[update.collection].setdefault(
                    update.document_id, {"_id": update.document_id}
                )
                for operator, fields in update.update.items():
                    for path, value in fields.items():
                        _apply(doc, operator, path, value)

    def tasks(self, manager_id: str = RM, at: datetime = T0) -> TaskList:
        derived = list(self.views[DERIVED].values())
        found = RULES.tasks(manager_id, at, derived, self.views[CUSTOMERS], self.views[CAMPAIGNS])
        found += [
            activity_task(doc, RULES, self.views[CUSTOMERS])
            for doc in self.views[ACTIVITIES].values()
            if doc["assignee_id"] == manager_id and doc["status"] == "scheduled"
        ]
        return group_tasks(manager_id, at, found, RULES, upcoming_days=30)

    def kinds(self, manager_id: str = RM, at: datetime = T0) -> list[tuple[str, str, str]]:
        """(group, kind, customer) of every task of the manager's list."""
        listed = self.tasks(manager_id, at)
        return [
            (group, task.kind.value, task.customer_id or "")
            for group in ("overdue", "today", "this_week", "upcoming")
            for task in getattr(listed, group)
        ]


def _apply(doc: Document, operator: str, path: str, value: Any) -> None:
    *parents, name = path.split(".")
    for part in parents:
        doc = doc.setdefault(part, {})
    if operator == "$set":
        doc[name] = value
    elif operator == "$max":
        if name not in doc or value > doc[name]:
            doc[name] = value
    elif operator == "$inc":
        doc[name] = doc.get(name, 0) + value
    else:
        raise AssertionError(f"the stand-in does not know {operator}")


def days(n: float) -> timedelta:
    return timedelta(days=n)


def cny(amount: str) -> Money:
    return Money(amount=Decimal(amount), currency="CNY")


def customer(bank: Bank, customer_id: str, manager_id: str | None, born: date | None) -> None:
    bank.emit(
        Service.CUSTOMER,
        customer_id,
        cu.CustomerRegistered(
            customer_type=CustomerType.INDIVIDUAL,
            name=CustomerName(full_name=f"Customer {customer_id}"),
            status=cu.CustomerStatus.ACTIVE,
            birth_date=born,
            branch_id="BR-1",
        ),
        at=T0 - days(400),
    )
    if manager_id:
        assign(bank, customer_id, manager_id, at=T0 - days(300))


def assign(bank: Bank, customer_id: str, manager_id: str, at: datetime = T0) -> None:
    bank.emit(
        Service.CUSTOMER,
        customer_id,
        cu.RelationshipManagerAssigned(manager_id=manager_id, branch_id="BR-1"),
        at=at,
    )


def contact(
    bank: Bank,
    contact_id: str,
    customer_id: str,
    at: datetime,
    manager_id: str = RM,
    opportunity_id: str | None = None,
    campaign_id: str | None = None,
) -> None:
    bank.emit(
        Service.CONTACT_LOG,
        contact_id,
        cl.ContactLogged(
            customer_id=customer_id, category=cl.ContactCategory.PHONE, summary="call",
            called=True, outcome=cl.ContactOutcome.REACHED, manager_id=manager_id,
            started_at=at, opportunity_id=opportunity_id, campaign_id=campaign_id,
        ),
        at=at,
    )  # fmt: skip


def take_on(bank: Bank, activity_id: str, task_id: str, at: datetime) -> None:
    bank.emit(
        Service.CONTACT_LOG,
        activity_id,
        cl.ActivityScheduled(
            customer_id="C1", category=cl.ActivityCategory.CALL, description="planned",
            priority=cl.Priority.HIGH, started_at=at + days(1), due_at=at + days(1),
            assignee_id=RM, origin_event_id=task_id,
        ),
        at=at,
    )  # fmt: skip


def maturity(bank: Bank, account: str, matures: date, at: datetime = T0) -> Envelope[Any]:
    return bank.emit(
        Service.CORE_BANKING,
        account,
        cb.ProductMaturityScheduled(
            customer_id="C1", product_code="TD-1Y", product_type=cb.ProductType.TIME_DEPOSIT,
            maturity_date=matures, amount_at_maturity=cny("100000.00"),
        ),
        at=at,
    )  # fmt: skip


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


def opportunity(bank: Bank, opportunity_id: str, at: datetime = T0) -> None:
    bank.emit(
        Service.OPPORTUNITY,
        opportunity_id,
        op.OpportunityCreated(
            customer_id="C1", title="Pension plan", products=["PEN-1"], probability=30,
            expected_value=cny("50000"), start_date=TODAY, expected_close_date=TODAY + days(90),
            manager_id=RM, branch_id="BR-1", source=op.LeadSource.RELATIONSHIP_MANAGER,
        ),
        at=at,
    )  # fmt: skip


def stage(bank: Bank, opportunity_id: str, to: op.OpportunityStage, at: datetime) -> None:
    lost = "price" if to is op.OpportunityStage.CLOSED_LOST else None
    bank.emit(
        Service.OPPORTUNITY,
        opportunity_id,
        op.OpportunityStageChanged(
            customer_id="C1", previous_stage=op.OpportunityStage.OPPORTUNITY_CREATED,
            stage=to, probability=50, lost_reason=lost,
        ),
        at=at,
    )  # fmt: skip


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


def complaint(bank: Bank, need_id: str, sla: datetime, kind: op.NeedKind) -> None:
    bank.emit(
        Service.OPPORTUNITY,
        need_id,
        op.NeedLogged(
            customer_id="C1", kind=kind, summary="Card blocked abroad", content="...",
            severity=op.Severity.HIGH, urgency=op.Urgency.HIGH, channel=Channel.PHONE,
            started_at=T0, sla_due_at=sla,
        ),
    )  # fmt: skip


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
            name="Year-end deposits", kind=cmp.CampaignKind.TELEMARKETING,
            channels=[Channel.PHONE], target_segments=[cmp.Segment(value_band=ValueBand.HIGH)],
            owner_manager_ids=[RM], budget=cny("10000"), planned_start=TODAY,
            planned_end=TODAY + days(30),
        ),
    )  # fmt: skip
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


def test_an_activity_naming_a_derived_task_stands_for_it_until_the_trigger_fires_again() -> None:
    bank = Bank()
    customer(bank, "C1", None, None)
    assign(bank, "C1", RM)
    task_id = bank.tasks().this_week[0].task_id
    take_on(bank, "A-1", task_id, at=T0 + days(0.1))
    assert bank.kinds() == [("this_week", "activity", "C1")]
    assign(bank, "C1", OTHER, at=T0 + days(1))
    assign(bank, "C1", RM, at=T0 + days(2))  # a new assignment: a new introduction
    assert bank.kinds(at=T0 + days(2)) == [
        ("overdue", "activity", "C1"),
        ("this_week", "introduction", "C1"),
    ]


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
            category=cl.ActivityCategory.MEETING, description="Branch meeting",
            priority=cl.Priority.LOW, started_at=due, due_at=due, assignee_id=RM,
        ),
    )  # fmt: skip
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


def test_redelivering_every_trigger_changes_nothing() -> None:
    bank = Bank()
    customer(bank, "C1", None, date(1970, 11, 25))
    assign(bank, "C1", RM)
    maturity(bank, "ACC-1", TODAY + days(5))
    opportunity(bank, "OPP-1", at=T0 - days(20))
    complaint(bank, "N-1", T0 + days(1), op.NeedKind.COMPLAINT)
    bank.emit(
        Service.CAMPAIGN,
        "CMP-1",
        cmp.CallListAssigned(manager_id=RM, customer_ids=["C1"], due_on=TODAY),
    )
    before = bank.kinds()
    assert sorted(kind for _, kind, _ in before) == [
        "birthday", "call_list", "complaint_sla", "idle_opportunity", "introduction", "maturity",
    ]  # fmt: skip
    for envelope in _every_event_again():
        bank.deliver(envelope)
    assert bank.kinds() == before


def _every_event_again() -> Iterable[Envelope[EventPayload]]:
    """The same triggers re-sent as new versions of their aggregates."""
    yield Envelope.new(
        cu.RelationshipManagerAssigned(manager_id=RM, branch_id="BR-1"), "C1", 9, actor="t",
        source=Service.CUSTOMER.source, time=T0,
    )  # fmt: skip
    yield Envelope.new(
        cb.ProductMaturityScheduled(
            customer_id="C1", product_code="TD-1Y", product_type=cb.ProductType.TIME_DEPOSIT,
            maturity_date=TODAY + days(5), amount_at_maturity=cny("100000.00"),
        ),
        "ACC-1", 9, actor="t", source=Service.CORE_BANKING.source, time=T0,
    )  # fmt: skip
    yield Envelope.new(
        cmp.CallListAssigned(manager_id=RM, customer_ids=["C1", "C1"], due_on=TODAY),
        "CMP-1", 9, actor="t", source=Service.CAMPAIGN.source, time=T0,
    )  # fmt: skip
