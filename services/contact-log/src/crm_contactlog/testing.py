"""Test helpers: the contact-log projections fed in memory, and the events that feed them.

:class:`Bank` applies each event's view updates as MongoDB would apply them (upserts,
dotted paths, ``$set``, ``$max``, ``$inc``) to dictionaries, then composes a manager's
task list with the service's own rules at a chosen moment (an injected clock, never a
wait). The builders emit the triggers of derived tasks as their streams would.
:class:`CaughtUpBusyTimes` is the in-memory counterpart of the overlap check's reader.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from crm_backbone.book import CUSTOMER_OWNERS, CustomerOwnersView
from crm_backbone.projection import Document, Projection
from crm_backbone.relay import integration_envelope
from crm_events import contact_log as cl
from crm_events import core_banking as cb
from crm_events import customer as cu
from crm_events import opportunity as op
from crm_events.common import Channel, CustomerName, CustomerType, Money
from crm_events.envelope import Envelope
from crm_events.registry import EventPayload
from crm_events.topics import Service
from eventsourcing.domain import DomainEvent

from crm_contactlog.application import ContactLogApplication
from crm_contactlog.busy_times import BUSY_TIMES, BusyTimesView, held_by
from crm_contactlog.domain import BusyTime
from crm_contactlog.publication import translate
from crm_contactlog.queries import TaskList, activity_task, group_tasks
from crm_contactlog.task_inputs import CAMPAIGNS, CUSTOMERS, DERIVED, TaskInputs
from crm_contactlog.task_rules import TaskRules
from crm_contactlog.views import ACTIVITIES, ContactLogViews

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
    projections: tuple[Projection, ...] = (ContactLogViews(), TaskInputs(), CustomerOwnersView())

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
        customers = self.customers()
        found = RULES.tasks(manager_id, at, derived, customers, self.views[CAMPAIGNS])
        found += [
            activity_task(doc, RULES, customers)
            for doc in self.views[ACTIVITIES].values()
            if manager_id in (doc["assignee_id"], *doc["participant_ids"])
            and doc["status"] == "scheduled"
        ]
        return group_tasks(manager_id, at, found, RULES, upcoming_days=30)

    def customers(self) -> dict[str, Document]:
        """Customers with their names and owners, as the task list query joins them."""
        owners = self.views[CUSTOMER_OWNERS]
        names = self.views[CUSTOMERS]
        return {key: names.get(key, {}) | owners.get(key, {}) for key in {*names, *owners}}

    def kinds(self, manager_id: str = RM, at: datetime = T0) -> list[tuple[str, str, str]]:
        """(group, kind, customer) of every task of the manager's list."""
        listed = self.tasks(manager_id, at)
        return [
            (group, task.kind.value, task.customer_id or "")
            for group in ("overdue", "today", "this_week", "upcoming")
            for task in getattr(listed, group)
        ]


@dataclass
class CaughtUpBusyTimes:
    """The busy times as ``busy_times`` holds them once it has applied every event the
    application stored: its events projected in memory (no relay, no MongoDB), read with
    the filter ``BusyTimes`` asks MongoDB for."""

    application: ContactLogApplication

    async def of(self, people: Iterable[str], since: datetime) -> tuple[BusyTime, ...]:
        bank = Bank(projections=(BusyTimesView(),))
        for notification in self.application.recorder.select_notifications(None, 10_000):
            stored = self.application.mapper.to_domain_event(notification)
            assert isinstance(stored, DomainEvent)
            payload = translate(stored)
            if payload is not None:
                bank.deliver(integration_envelope(stored, payload, Service.CONTACT_LOG.source))
        wanted = list(dict.fromkeys(people))
        ending_later = [
            doc
            for doc in bank.views[BUSY_TIMES].values()
            if doc["open"]
            and doc["ended_at"] is not None
            and doc["ended_at"] > since
            and not set(doc["person_ids"]).isdisjoint(wanted)
        ]
        return held_by(ending_later, wanted)


def _apply(doc: Document, operator: str, path: str, value: Any) -> None:
    *parents, name = path.split(".")
    for part in parents:
        doc = doc.setdefault(part, {})
    if operator == "$set":
        doc[name] = value
    elif operator == "$unset":
        doc.pop(name, None)
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
            customer_id=customer_id,
            category=cl.ContactCategory.PHONE,
            summary="call",
            called=True,
            outcome=cl.ContactOutcome.REACHED,
            manager_id=manager_id,
            started_at=at,
            opportunity_id=opportunity_id,
            campaign_id=campaign_id,
        ),
        at=at,
    )


def take_on(bank: Bank, activity_id: str, task_id: str, at: datetime) -> None:
    bank.emit(
        Service.CONTACT_LOG,
        activity_id,
        cl.ActivityScheduled(
            customer_id="C1",
            category=cl.ActivityCategory.CALL,
            description="planned",
            priority=cl.Priority.HIGH,
            started_at=at + days(1),
            due_at=at + days(1),
            assignee_id=RM,
            origin_event_id=task_id,
        ),
        at=at,
    )


def maturity(bank: Bank, account: str, matures: date, at: datetime = T0) -> Envelope[Any]:
    return bank.emit(
        Service.CORE_BANKING,
        account,
        cb.ProductMaturityScheduled(
            customer_id="C1",
            product_code="TD-1Y",
            product_type=cb.ProductType.TIME_DEPOSIT,
            maturity_date=matures,
            amount_at_maturity=cny("100000.00"),
        ),
        at=at,
    )


def opportunity(bank: Bank, opportunity_id: str, at: datetime = T0) -> None:
    bank.emit(
        Service.OPPORTUNITY,
        opportunity_id,
        op.OpportunityCreated(
            customer_id="C1",
            title="Pension plan",
            products=["PEN-1"],
            probability=30,
            expected_value=cny("50000"),
            start_date=TODAY,
            expected_close_date=TODAY + days(90),
            manager_id=RM,
            branch_id="BR-1",
            source=op.LeadSource.RELATIONSHIP_MANAGER,
        ),
        at=at,
    )


def stage(bank: Bank, opportunity_id: str, to: op.OpportunityStage, at: datetime) -> None:
    lost = "price" if to is op.OpportunityStage.CLOSED_LOST else None
    bank.emit(
        Service.OPPORTUNITY,
        opportunity_id,
        op.OpportunityStageChanged(
            customer_id="C1",
            previous_stage=op.OpportunityStage.OPPORTUNITY_CREATED,
            stage=to,
            probability=50,
            lost_reason=lost,
        ),
        at=at,
    )


def complaint(bank: Bank, need_id: str, sla: datetime, kind: op.NeedKind) -> None:
    bank.emit(
        Service.OPPORTUNITY,
        need_id,
        op.NeedLogged(
            customer_id="C1",
            kind=kind,
            summary="Card blocked abroad",
            content="...",
            severity=op.Severity.HIGH,
            urgency=op.Urgency.HIGH,
            channel=Channel.PHONE,
            started_at=T0,
            sla_due_at=sla,
        ),
    )
