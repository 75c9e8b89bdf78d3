"""The derived tasks on the managers' lists, and the rules that put them there at read time.

Six kinds of task come from what happens elsewhere in the bank; each leaves the list when
its cause is resolved (parameters: ``TaskRules``, set from ``ContactLogSettings``). The
facts they need (dates, owners, whether the cause is resolved) are documents kept by the
``task_inputs`` projection; :meth:`TaskRules.tasks` decides, at the moment asked for,
which of them are open:

- ``maturity`` -- ``bank.corebanking.account.maturity_scheduled``: a product matures
  within ``maturity_notice_days``; due on the maturity date. Gone when the maturity is
  rescheduled beyond the window, the account closes or the maturity date has passed.
- ``birthday`` -- the birth date of ``crm.customer.registered`` / ``core_data_applied``:
  a birthday within ``birthday_notice_days``; gone once it has passed.
- ``idle_opportunity`` -- ``crm.opportunity.*``: an open opportunity with no activity for
  ``opportunity_idle_days``. Any event of the opportunity, a contact naming it or an
  activity taking the task on is activity; closing the opportunity ends it.
- ``complaint_sla`` -- ``crm.need.logged`` of kind complaint: on the list from
  ``complaint_warning_hours`` before its ``sla_due_at``; gone on ``crm.need.resolved`` or
  ``resolution_confirmed`` (back if the need is reopened).
- ``call_list`` -- ``crm.campaign.call_list_assigned``: one task per customer on the list,
  due on ``due_on``; gone when a contact with the customer names the campaign, or when
  the campaign completes or is cancelled.
- ``introduction`` -- ``crm.customer.manager_assigned``: the new manager calls the
  customer within ``introduction_days``; gone once that manager logs a contact with the
  customer after the assignment, or ``introduction_lapse_days`` after it.

A task goes to the manager its trigger names (opportunity, complaint assignee, call list,
assignment), else to the customer's relationship manager. The windows are evaluated when
the list is read, against the caller's clock, so no scheduler has to wake up when a
window opens and changing a parameter needs no replay. A manager who wants to plan a
derived task schedules an activity whose ``origin_event_id`` is the derived task's id:
the activity then stands for it on the list (for an idle opportunity, it counts as
activity on the opportunity).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from crm_backbone.projection import Document
from crm_backbone.readmodel import field_key
from crm_events import customer as cu
from crm_events.contact_log import ActivityCategory, Priority
from pydantic import BaseModel, Field

_TASK_NAMESPACE = uuid.UUID("3c0f5e8e-2d4b-4f7a-a8a6-5b9f1c2d7e40")


class TaskKind(StrEnum):
    ACTIVITY = "activity"
    """An explicit activity (not derived)."""
    MATURITY = "maturity"
    BIRTHDAY = "birthday"
    IDLE_OPPORTUNITY = "idle_opportunity"
    COMPLAINT_SLA = "complaint_sla"
    CALL_LIST = "call_list"
    INTRODUCTION = "introduction"


def derived_task_id(kind: TaskKind, *trigger: str) -> str:
    """The id of the task ``kind`` derived from ``trigger`` (aggregate ids, ...): stable."""
    return str(uuid.uuid5(_TASK_NAMESPACE, "|".join([kind.value, *trigger])))


class Task(BaseModel):
    """One entry of a manager's task list: an explicit activity or a derived task."""

    task_id: str = Field(description="Activity id, or the derived task's stable id")
    kind: TaskKind
    derived: bool = Field(description="Derived from another stream by a policy")
    title: str
    customer_id: str | None
    customer_name: str | None = None
    category: ActivityCategory = Field(description="The kind of activity that would do it")
    priority: Priority
    due_on: date = Field(description="The local day it falls due")
    due_at: Annotated[
        datetime | None, Field(description="The moment it falls due (timed tasks)")
    ] = None
    details: dict[str, Any] = {}


@dataclass(frozen=True)
class TaskRules:
    """The rules' parameters (``ContactLogSettings``), and the tasks due at a moment."""

    timezone: ZoneInfo
    maturity_notice_days: int
    birthday_notice_days: int
    opportunity_idle_days: int
    complaint_warning_hours: int
    introduction_days: int
    introduction_lapse_days: int

    def local_day(self, moment: datetime) -> date:
        return moment.astimezone(self.timezone).date()

    def tasks(
        self,
        manager_id: str,
        now: datetime,
        documents: Sequence[Document],
        customers: Mapping[str, Document],
        campaigns: Mapping[str, Document],
    ) -> list[Task]:
        """The derived tasks of ``manager_id`` open at ``now``.

        ``documents`` are derived-task documents (any superset of the manager's),
        ``customers`` customer documents by id (the manager's book at least), ``campaigns``
        campaign documents by id.
        """
        today = self.local_day(now)
        book = {i for i, doc in customers.items() if doc.get("manager_id") == manager_id}
        found: list[Task] = []
        for doc in documents:
            kind = doc.get("kind")
            owner = doc.get("manager_id") or (
                manager_id if doc.get("customer_id") in book else None
            )
            if kind is None or owner != manager_id:
                continue
            task = self._derive(TaskKind(kind), doc, now, today, campaigns)
            if task is not None:
                found.append(task)
        taken = {doc["_id"] for doc in documents if doc.get("taken_at")}
        for customer, birthday, task_id in self._birthdays(customers, book, today):
            if task_id not in taken:
                found.append(self._birthday(task_id, customer, birthday))
        for task in found:
            task.customer_name = customers.get(task.customer_id or "", {}).get("full_name")
        return found

    def birthday_task_ids(
        self, manager_id: str, customers: Mapping[str, Document], now: datetime
    ) -> list[str]:
        """Ids of the birthday tasks due in the window (to look up whether one was taken)."""
        book = {i for i, doc in customers.items() if doc.get("manager_id") == manager_id}
        return [task_id for *_, task_id in self._birthdays(customers, book, self.local_day(now))]

    # One evaluator per kind -------------------------------------------------------------

    def _derive(
        self,
        kind: TaskKind,
        doc: Document,
        now: datetime,
        today: date,
        campaigns: Mapping[str, Document],
    ) -> Task | None:
        if kind is TaskKind.MATURITY:
            return self._maturity(doc, today)
        if kind is TaskKind.IDLE_OPPORTUNITY:
            return self._idle_opportunity(doc, today)
        if kind is TaskKind.COMPLAINT_SLA:
            return self._complaint(doc, now)
        if kind is TaskKind.CALL_LIST:
            return self._call_list(doc, campaigns)
        if kind is TaskKind.INTRODUCTION:
            return self._introduction(doc, today)
        return None

    def _maturity(self, doc: Document, today: date) -> Task | None:
        if doc.get("closed") or "maturity_date" not in doc or _taken(doc, "since"):
            return None
        matures = date.fromisoformat(doc["maturity_date"])
        if not matures - timedelta(days=self.maturity_notice_days) <= today <= matures:
            return None
        return Task(
            task_id=doc["_id"],
            kind=TaskKind.MATURITY,
            derived=True,
            title=f"{doc['product_type']} {doc['product_code']} matures on {matures}",
            customer_id=doc["customer_id"],
            category=ActivityCategory.CARE,
            priority=Priority.HIGH,
            due_on=matures,
            details=_pick(doc, "account_id", "product_code", "product_type", "amount_at_maturity"),
        )

    def _idle_opportunity(self, doc: Document, today: date) -> Task | None:
        touches = [t for t in (doc.get("last_touch_at"), doc.get("taken_at")) if t]
        if not doc.get("open") or not touches:
            return None
        last = self.local_day(max(touches))
        idle_from = last + timedelta(days=self.opportunity_idle_days)
        if today < idle_from:
            return None
        return Task(
            task_id=doc["_id"],
            kind=TaskKind.IDLE_OPPORTUNITY,
            derived=True,
            title=f"Opportunity '{doc.get('title') or doc['opportunity_id']}' has had no "
            f"activity since {last}",
            customer_id=doc["customer_id"],
            category=ActivityCategory.FOLLOW_UP,
            priority=Priority.NORMAL,
            due_on=idle_from,
            details=_pick(doc, "opportunity_id", "stage") | {"last_activity_on": last},
        )

    def _complaint(self, doc: Document, now: datetime) -> Task | None:
        if not doc.get("open") or _taken(doc, "since"):
            return None
        due: datetime = doc["sla_due_at"]
        if now < due - timedelta(hours=self.complaint_warning_hours):
            return None
        return Task(
            task_id=doc["_id"],
            kind=TaskKind.COMPLAINT_SLA,
            derived=True,
            title=f"Complaint '{doc['summary']}' must be resolved by its SLA",
            customer_id=doc["customer_id"],
            category=ActivityCategory.SERVICE,
            priority=Priority.URGENT,
            due_on=self.local_day(due),
            due_at=due,
            details=_pick(doc, "need_id", "severity", "urgency") | {"breached": due < now},
        )

    def _call_list(self, doc: Document, campaigns: Mapping[str, Document]) -> Task | None:
        campaign = campaigns.get(doc["campaign_id"], {})
        if doc.get("contacted_at") or campaign.get("ended") or _taken(doc, "since"):
            return None
        name = campaign.get("name") or doc["campaign_id"]
        return Task(
            task_id=doc["_id"],
            kind=TaskKind.CALL_LIST,
            derived=True,
            title=f"Call about campaign {name}",
            customer_id=doc["customer_id"],
            category=ActivityCategory.CALL,
            priority=Priority.NORMAL,
            due_on=date.fromisoformat(doc["due_on"]),
            details={"campaign_id": doc["campaign_id"], "campaign_name": campaign.get("name")},
        )

    def _introduction(self, doc: Document, today: date) -> Task | None:
        assigned: datetime = doc["assigned_at"]
        contacted = doc.get("contacts_by", {}).get(field_key(doc["manager_id"]))
        if (contacted and contacted >= assigned) or _taken(doc, "assigned_at"):
            return None
        if today > self.local_day(assigned) + timedelta(days=self.introduction_lapse_days):
            return None
        return Task(
            task_id=doc["_id"],
            kind=TaskKind.INTRODUCTION,
            derived=True,
            title="Introduce yourself to a customer newly assigned to you",
            customer_id=doc["customer_id"],
            category=ActivityCategory.CALL,
            priority=Priority.HIGH,
            due_on=self.local_day(assigned) + timedelta(days=self.introduction_days),
            details=_pick(doc, "assigned_at", "previous_manager_id"),
        )

    def _birthdays(
        self, customers: Mapping[str, Document], book: Iterable[str], today: date
    ) -> Iterator[tuple[Document, date, str]]:
        last = today + timedelta(days=self.birthday_notice_days)
        for customer_id in sorted(book):
            customer = customers[customer_id]
            if not customer.get("birth_date") or customer.get("merged_into"):
                continue
            birthday = cu.next_birthday(date.fromisoformat(customer["birth_date"]), today)
            if birthday <= last:
                task_id = derived_task_id(TaskKind.BIRTHDAY, customer_id, str(birthday.year))
                yield customer, birthday, task_id

    @staticmethod
    def _birthday(task_id: str, customer: Document, birthday: date) -> Task:
        born = date.fromisoformat(customer["birth_date"])
        return Task(
            task_id=task_id,
            kind=TaskKind.BIRTHDAY,
            derived=True,
            title=f"Birthday ({birthday.year - born.year})",
            customer_id=customer["_id"],
            category=ActivityCategory.CARE,
            priority=Priority.NORMAL,
            due_on=birthday,
            details={"birth_date": customer["birth_date"]},
        )


def _taken(doc: Document, since: str) -> bool:
    """An activity took the task on after its trigger last fired."""
    taken, fired = doc.get("taken_at"), doc.get(since)
    return taken is not None and (fired is None or taken >= fired)


def _pick(doc: Document, *names: str) -> dict[str, Any]:
    return {name: doc.get(name) for name in names}
