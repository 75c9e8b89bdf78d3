"""Reading the contact-log service's views: contacts, activities, timelines, task lists.

A manager's task list is composed here, at read time: the explicit activities assigned
to the manager, plus the derived tasks whose windows are open at the moment asked for
(``as_of``, by default the injected clock's now). Days are those of the service's time
zone; tasks are grouped by when they fall due:

- ``overdue``: the deadline has passed (a timed task's moment, a dated task's day);
- ``today``: due today, not yet overdue;
- ``this_week``: due in the next six days;
- ``upcoming``: due later, up to ``upcoming_days`` ahead (further activities are left out).

Every read is given the caller's reach: a list holds only the tasks about customers in
reach (``ContactLogBook.scope``, narrowed in MongoDB), and answers are as the caller may
see them (masked for the analyst). Whether the contact, activity, customer or manager
asked for is in reach at all is checked before (``crm_contactlog.access``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import date, datetime, time, timedelta
from typing import Any, Literal

from crm_backbone.access import Reach, as_shown, scoped
from crm_backbone.application import Clock, utc_now
from crm_backbone.book import CUSTOMER_OWNERS
from crm_backbone.cursor import decode_cursor, encode_cursor
from crm_backbone.projection import Document
from crm_backbone.readmodel import document_version, wait_until_applied
from crm_events.contact_log import ActivityCategory, Priority
from crm_events.topics import Service
from pydantic import BaseModel, ConfigDict, Field
from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase

from crm_contactlog.access import (
    ACTIVITY_PERSONAL,
    CONTACT_PERSONAL,
    TASK_PERSONAL,
    ContactLogBook,
)
from crm_contactlog.calendars import CALENDAR_EXAMPLES, overlaps_of
from crm_contactlog.domain import ActivityStatus
from crm_contactlog.task_inputs import CAMPAIGNS, CUSTOMERS, DERIVED
from crm_contactlog.task_rules import Task, TaskKind, TaskRules
from crm_contactlog.views import ACTIVITIES, CONTACTS, ContactLogViews

SOURCE = Service.CONTACT_LOG.source
WEEK_DAYS = 7
_PRIORITY_RANK = {Priority.URGENT: 0, Priority.HIGH: 1, Priority.NORMAL: 2, Priority.LOW: 3}


class ContactView(BaseModel):
    contact_id: str
    version: int = Field(description="Events of the contact applied (for read-your-writes)")
    customer_id: str
    category: str
    summary: str
    content: str | None = None
    called: bool
    outcome: str
    manager_id: str
    opportunity_id: str | None = None
    campaign_id: str | None = None
    started_at: datetime
    ended_at: datetime | None = None
    logged_at: datetime
    logged_by: str


class ActivityView(BaseModel):
    activity_id: str
    version: int = Field(description="Events of the activity applied (for read-your-writes)")
    customer_id: str | None = None
    category: str
    description: str
    remarks: str | None = None
    priority: str
    status: ActivityStatus
    done: bool
    due_at: datetime
    started_at: datetime
    ended_at: datetime | None = None
    estimated_cost: dict[str, str] | None = None
    assignee_id: str
    participant_ids: list[str] = []
    origin_event_id: str | None = None
    reschedule_count: int = 0
    reschedule_reason: str | None = None
    completed_at: datetime | None = None
    completion_remarks: str | None = None
    cost: dict[str, str] | None = None
    cancel_reason: str | None = None


class CalendarEntry(ActivityView):
    role: Literal["assignee", "participant"] = Field(description="The person's part in it")
    overlaps: list[str] = Field(
        description="Other listed open activities of the person whose time this one's "
        "overlaps: a double booking a caller confirmed, or two schedulings that raced"
    )


class PersonCalendar(BaseModel):
    """A person's activities starting in a period: the team calendar of one person."""

    model_config = ConfigDict(json_schema_extra={"examples": CALENDAR_EXAMPLES})

    person_id: str
    starts_from: datetime
    starts_before: datetime
    items: list[CalendarEntry] = Field(description="By start, then id")


class TimelinePage(BaseModel):
    customer_id: str
    items: list[ContactView] = Field(description="Contacts, newest first")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page")


class TaskList(BaseModel):
    """A manager's open tasks, explicit and derived, grouped by when they fall due."""

    manager_id: str
    as_of: datetime
    timezone: str
    local_date: date = Field(description="Today, in the service's time zone")
    overdue: list[Task]
    today: list[Task]
    this_week: list[Task]
    upcoming: list[Task]


class ContactLogQueries:
    """Read side of the contact-log service."""

    def __init__(
        self,
        database: AsyncDatabase[Document],
        rules: TaskRules,
        *,
        clock: Clock = utc_now,
        upcoming_days: int = 30,
    ) -> None:
        self.contacts = database[CONTACTS]
        self.activities = database[ACTIVITIES]
        self.derived = database[DERIVED]
        self.customers = database[CUSTOMERS]
        self.owners = database[CUSTOMER_OWNERS]
        self.campaigns = database[CAMPAIGNS]
        self.positions = database[f"{ContactLogViews.name}__positions"]
        self.rules = rules
        self.clock = clock
        self.upcoming_days = upcoming_days

    async def wait_for(self, aggregate_id: str, version: int, within: float) -> bool:
        """Wait (bounded) until the views have applied ``version`` of a contact or activity."""
        return await wait_until_applied(self.positions, SOURCE, aggregate_id, version, within)

    async def contact(self, reach: Reach, contact_id: str) -> ContactView | None:
        doc = await self.contacts.find_one({"_id": contact_id})
        return None if doc is None else _contact(reach, doc)

    async def activity(self, reach: Reach, activity_id: str) -> ActivityView | None:
        doc = await self.activities.find_one({"_id": activity_id})
        shown = None if doc is None else as_shown(reach, _with_version(doc), ACTIVITY_PERSONAL)
        return None if shown is None else ActivityView.model_validate(shown)

    async def calendar(
        self,
        book: ContactLogBook,
        reach: Reach,
        person_id: str,
        starts_from: datetime,
        starts_before: datetime,
        *,
        include_cancelled: bool = False,
    ) -> PersonCalendar:
        """The activities ``person_id`` takes part in starting in ``[starts_from,
        starts_before)``, as the task list holds them: those assigned to the person about
        customers in reach or about none, and those the person is a participant of (the
        person is in reach: checked before)."""
        query: Document = {
            "$or": await self._activities_of(book, reach, person_id),
            "started_at": {"$gte": starts_from, "$lt": starts_before},
        }
        if not include_cancelled:
            query["status"] = {"$ne": ActivityStatus.CANCELLED.value}
        found = self.activities.find(query).sort([("started_at", ASCENDING), ("_id", ASCENDING)])
        shown = [as_shown(reach, _with_version(doc), ACTIVITY_PERSONAL) async for doc in found]
        overlaps = overlaps_of(person_id, shown)
        items = [
            CalendarEntry.model_validate(
                doc
                | {
                    "role": "assignee" if doc["assignee_id"] == person_id else "participant",
                    "overlaps": overlaps[doc["_id"]],
                }
            )
            for doc in shown
        ]
        return PersonCalendar(
            person_id=person_id, starts_from=starts_from, starts_before=starts_before, items=items
        )

    async def timeline(
        self, reach: Reach, customer_id: str, *, limit: int = 20, cursor: str | None = None
    ) -> TimelinePage:
        """The customer's contacts, newest first; ties broken by id (a stable order)."""
        query: Document = {"customer_id": customer_id}
        if cursor:
            started, last_id = decode_cursor(cursor, datetime.fromisoformat)
            query["$or"] = [
                {"started_at": {"$lt": started}},
                {"started_at": started, "_id": {"$lt": last_id}},
            ]
        found = self.contacts.find(query).sort([("started_at", DESCENDING), ("_id", DESCENDING)])
        docs = [doc async for doc in found.limit(limit + 1)]
        more = len(docs) > limit
        items = [_contact(reach, doc) for doc in docs[:limit]]
        last = docs[limit - 1] if more else None
        next_cursor = encode_cursor(last["started_at"], last["_id"]) if last else None
        return TimelinePage(customer_id=customer_id, items=items, next_cursor=next_cursor)

    async def tasks(
        self, book: ContactLogBook, reach: Reach, manager_id: str, as_of: datetime | None = None
    ) -> TaskList:
        """The manager's open tasks at ``as_of`` (default: now), grouped by due day: those
        about customers in ``reach``, the manager's activities about no customer, and the
        activities the manager takes part in (whoever's customer they are about)."""
        now = as_of or self.clock()
        rules = self.rules
        in_reach = await book.scope(reach)
        managed = await self._managed(reach, manager_id)
        derived = await self._derived(manager_id, managed, in_reach, now)
        horizon = datetime.combine(
            rules.local_day(now) + timedelta(days=self.upcoming_days + 1), time(), rules.timezone
        )
        planned = {
            "status": ActivityStatus.SCHEDULED.value,
            "due_at": {"$lt": horizon},
            "$or": await self._activities_of(book, reach, manager_id),
        }
        activities = [doc async for doc in self.activities.find(planned)]
        campaign_ids = list({doc["campaign_id"] for doc in derived if doc.get("campaign_id")})
        campaigns = {
            doc["_id"]: doc async for doc in self.campaigns.find({"_id": {"$in": campaign_ids}})
        }
        named = {doc.get("customer_id") for doc in [*derived, *activities]}
        strangers = list(named - set(managed) - {None})
        customers = managed | {
            doc["_id"]: doc
            async for doc in self.customers.find({"_id": {"$in": strangers}}, {"full_name": 1})
        }
        found = rules.tasks(manager_id, now, derived, customers, campaigns)
        found += [activity_task(doc, rules, customers) for doc in activities]
        shown = [Task.model_validate(as_shown(reach, t.model_dump(), TASK_PERSONAL)) for t in found]
        return group_tasks(manager_id, now, shown, rules, self.upcoming_days)

    @staticmethod
    async def _activities_of(book: ContactLogBook, reach: Reach, person_id: str) -> list[Document]:
        """The ``$or`` of the activities on a person's list: assigned to them about
        customers in reach (or about none), or with them as a participant."""
        in_reach = await book.scope(reach)
        about = {"$or": [in_reach, {"customer_id": None}]} if in_reach else {}
        return [_within({"assignee_id": person_id}, about), {"participant_ids": person_id}]

    async def _managed(self, reach: Reach, manager_id: str) -> dict[str, Document]:
        """The customers in reach whose relationship manager is ``manager_id``: their
        owners (``customer_owners``, the one record of who manages whom) and names."""
        owners = {
            doc["_id"]: doc
            async for doc in self.owners.find(scoped({"manager_id": manager_id}, reach))
        }
        wanted = {"full_name": 1, "birth_date": 1, "merged_into": 1}
        names = {
            doc["_id"]: doc
            async for doc in self.customers.find({"_id": {"$in": list(owners)}}, wanted)
        }
        return {key: names.get(key, {}) | owner for key, owner in owners.items()}

    async def _derived(
        self,
        manager_id: str,
        managed: Mapping[str, Document],
        in_reach: Mapping[str, Any],
        now: datetime,
    ) -> list[Document]:
        """The derived-task documents that may be the manager's (the rules decide), about
        customers in reach: those naming the manager, those of the customers they manage
        (in reach already), and whether birthday tasks of those were taken on."""
        named_kind = {"kind": {"$exists": True}}
        query = {
            "$or": [
                _within(named_kind | {"manager_id": manager_id}, in_reach),
                named_kind
                | {"manager_id": {"$exists": False}, "customer_id": {"$in": list(managed)}},
                {"_id": {"$in": self.rules.birthday_task_ids(manager_id, managed, now)}},
            ]
        }
        return [doc async for doc in self.derived.find(query)]


def _within(query: Mapping[str, Any], scope: Mapping[str, Any]) -> dict[str, Any]:
    """``query`` narrowed by the filter ``scope`` (``{}``: not narrowed)."""
    return {"$and": [dict(query), dict(scope)]} if scope else dict(query)


def group_tasks(
    manager_id: str, now: datetime, tasks: Iterable[Task], rules: TaskRules, upcoming_days: int
) -> TaskList:
    """The tasks grouped by when they fall due (see the module docstring), in order."""
    today = rules.local_day(now)
    groups: dict[str, list[Task]] = {"overdue": [], "today": [], "this_week": [], "upcoming": []}
    for task in sorted(tasks, key=_order):
        if task.due_at < now if task.due_at else task.due_on < today:
            groups["overdue"].append(task)
        elif task.due_on == today:
            groups["today"].append(task)
        elif task.due_on < today + timedelta(days=WEEK_DAYS):
            groups["this_week"].append(task)
        elif task.due_on <= today + timedelta(days=upcoming_days):
            groups["upcoming"].append(task)
    return TaskList(
        manager_id=manager_id,
        as_of=now,
        timezone=str(rules.timezone),
        local_date=today,
        **groups,
    )


def activity_task(doc: Document, rules: TaskRules, customers: Mapping[str, Document]) -> Task:
    """An explicit activity as an entry of its assignee's task list."""
    due: datetime = doc["due_at"]
    customer_id = doc.get("customer_id")
    return Task(
        task_id=doc["_id"],
        kind=TaskKind.ACTIVITY,
        derived=False,
        title=doc["description"],
        customer_id=customer_id,
        customer_name=customers.get(customer_id or "", {}).get("full_name"),
        category=ActivityCategory(doc["category"]),
        priority=Priority(doc["priority"]),
        due_on=rules.local_day(due),
        due_at=due,
        details={
            "activity_id": doc["_id"],
            "origin_event_id": doc.get("origin_event_id"),
            "started_at": doc.get("started_at"),
            "remarks": doc.get("remarks"),
            "assignee_id": doc["assignee_id"],
            "participant_ids": doc.get("participant_ids", []),
        },
    )


def _order(task: Task) -> tuple[date, int, float, str]:
    moment = task.due_at.timestamp() if task.due_at else math.inf
    return task.due_on, _PRIORITY_RANK[task.priority], moment, task.task_id


def _contact(reach: Reach, doc: Document) -> ContactView:
    return ContactView.model_validate(as_shown(reach, _with_version(doc), CONTACT_PERSONAL))


def _with_version(doc: Document) -> dict[str, Any]:
    return doc | {"version": document_version(doc, SOURCE, doc["_id"])}
