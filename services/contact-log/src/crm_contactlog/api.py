"""The contact-log service's HTTP API: contacts, activities, timelines and task lists.

Every command names its actor (``X-Actor``); commands on an activity may carry
``expected_version`` (a stale one is refused with 409 and nothing is written) and answer
its new version, which a read can wait for (``min_version``). Errors are RFC 9457
problem documents.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from crm_backbone.http import Problem, location
from crm_backbone.service_api import (
    VIEW_BEHIND,
    Command,
    IsoDateTime,
    MinVersion,
    RequestBody,
    WaitMs,
    Who,
    read_your_writes,
    service_api,
)
from crm_events.common import Id, Money, Name
from crm_events.contact_log import ActivityCategory, ContactCategory, ContactOutcome, Priority
from fastapi import FastAPI, Path, Query, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from crm_contactlog.application import ActivityNotFound, ContactNotFound
from crm_contactlog.bootstrap import SERVICE, ContactLogService
from crm_contactlog.domain import Activity, ActivityClosed, Conflict, Contact, RuleViolation
from crm_contactlog.queries import ActivityView, ContactView, TaskList, TimelinePage

ContactId = Annotated[Id, Path(description="Contact id", examples=["CT-7f3a"])]
ActivityId = Annotated[Id, Path(description="Activity id", examples=["ACT-19c2"])]
CustomerId = Annotated[Id, Path(description="Unified customer number", examples=["C00012345"])]
ManagerId = Annotated[Id, Path(description="Relationship manager", examples=["RM-0042"])]


class ContactAccepted(BaseModel):
    contact_id: str
    version: int = Field(description="The contact's version after the command")


class ActivityAccepted(BaseModel):
    activity_id: str
    version: int = Field(description="The activity's version after the command")


class ContactLog(RequestBody):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "customer_id": "C00012345",
                    "category": "phone",
                    "summary": "Time deposit maturing: discussed rollover",
                    "called": True,
                    "outcome": "interested",
                    "manager_id": "RM-0042",
                    "started_at": "2026-11-23T10:00:00+08:00",
                    "ended_at": "2026-11-23T10:12:00+08:00",
                }
            ]
        },
    )
    contact_id: Id | None = Field(None, description="Chosen by the caller; generated if absent")
    customer_id: Id
    category: ContactCategory
    summary: Name
    content: str | None = None
    called: bool
    outcome: ContactOutcome
    manager_id: Id
    opportunity_id: Id | None = None
    campaign_id: Id | None = None
    started_at: AwareDatetime
    ended_at: AwareDatetime | None = None


class ActivityPlan(RequestBody):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "customer_id": "C00012345",
                    "category": "visit",
                    "description": "Review the wealth plan at the customer's office",
                    "priority": "high",
                    "started_at": "2026-11-25T14:00:00+08:00",
                    "ended_at": "2026-11-25T15:00:00+08:00",
                    "due_at": "2026-11-25T15:00:00+08:00",
                    "estimated_cost": {"amount": "120.00", "currency": "CNY"},
                    "assignee_id": "RM-0042",
                }
            ]
        },
    )
    activity_id: Id | None = Field(None, description="Chosen by the caller; generated if absent")
    customer_id: Id | None = None
    category: ActivityCategory
    description: Name
    remarks: str | None = None
    priority: Priority = Priority.NORMAL
    due_at: AwareDatetime
    started_at: AwareDatetime | None = Field(None, description="Planned start; default due_at")
    ended_at: AwareDatetime | None = None
    estimated_cost: Money | None = None
    assignee_id: Id
    participant_ids: list[Id] = []
    origin_event_id: Id | None = Field(
        None, description="The derived task (its task_id) or event this activity answers"
    )


class Reschedule(Command):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"due_at": "2026-11-27T17:00:00+08:00", "reason": "customer travelling"}]
        }
    )
    due_at: AwareDatetime
    started_at: AwareDatetime | None = Field(None, description="Default: the current start")
    ended_at: AwareDatetime | None = Field(None, description="Default: keeps the duration")
    reason: str | None = None


class Completion(Command):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"remarks": "signed", "cost": {"amount": "86.50", "currency": "CNY"}}]
        }
    )
    completed_at: AwareDatetime | None = Field(None, description="Default: now")
    remarks: str | None = None
    cost: Money | None = None


class Cancellation(Command):
    reason: Name


DOMAIN_ERRORS = {
    ContactNotFound: lambda e: Problem(404, "contact-not-found", "Not found", str(e)),
    ActivityNotFound: lambda e: Problem(404, "activity-not-found", "Not found", str(e)),
    ActivityClosed: lambda e: Problem(
        409, "activity-closed", "Conflict", str(e), activity_status=e.status.value
    ),
    Conflict: lambda e: Problem(409, "conflict", "Conflict", str(e)),
    RuleViolation: lambda e: Problem(422, "rule-violation", "Unprocessable request", str(e)),
}


def create_app(service: ContactLogService, *, run_workers: bool = True) -> FastAPI:
    """The API; with ``run_workers`` its process also runs the relay and the consumers."""

    app = service_api(
        service,
        service=SERVICE,
        title="Contact-log service",
        summary="Contacts, activities and tasks; contact timelines and manager task lists",
        domain_errors=DOMAIN_ERRORS,
        routers=[],
        run_workers=run_workers,
    )
    commands = service.application
    queries = service.queries

    @app.post("/contacts", status_code=201, tags=["contacts"], summary="Log a contact")
    async def log_contact(body: ContactLog, who: Who, response: Response) -> ContactAccepted:
        contact_id = body.contact_id or f"CT-{uuid.uuid4()}"
        fields = body.model_dump(mode="json", exclude={"contact_id"})
        version = await who.run(commands.log_contact, contact_id, fields)
        response.headers["Location"] = location("contacts", contact_id)
        return ContactAccepted(contact_id=contact_id, version=version)

    @app.get(
        "/contacts/{contact_id}",
        tags=["contacts"],
        summary="A contact (read side)",
        responses=VIEW_BEHIND,
    )
    async def contact(
        contact_id: ContactId, min_version: MinVersion = None, wait_ms: WaitMs = 2_000
    ) -> ContactView:
        await read_your_writes(
            queries.wait_for, commands, Contact, contact_id, min_version, wait_ms
        )
        found = await queries.contact(contact_id)
        if found is None:
            raise ContactNotFound(contact_id)
        return found

    @app.post("/activities", status_code=201, tags=["activities"], summary="Schedule an activity")
    async def schedule(body: ActivityPlan, who: Who, response: Response) -> ActivityAccepted:
        activity_id = body.activity_id or f"ACT-{uuid.uuid4()}"
        fields = body.model_dump(mode="json", exclude={"activity_id"})
        fields["started_at"] = fields["started_at"] or fields["due_at"]
        version = await who.run(commands.schedule_activity, activity_id, fields)
        response.headers["Location"] = location("activities", activity_id)
        return ActivityAccepted(activity_id=activity_id, version=version)

    @app.post(
        "/activities/{activity_id}/reschedule", tags=["activities"], summary="Move an activity"
    )
    async def reschedule(activity_id: ActivityId, body: Reschedule, who: Who) -> ActivityAccepted:
        plan = body.model_dump(mode="json", exclude={"expected_version"})
        version = await who.run(
            commands.reschedule_activity, activity_id, body.expected_version, **plan
        )
        return ActivityAccepted(activity_id=activity_id, version=version)

    @app.post(
        "/activities/{activity_id}/complete", tags=["activities"], summary="Complete an activity"
    )
    async def complete(activity_id: ActivityId, body: Completion, who: Who) -> ActivityAccepted:
        done = body.model_dump(mode="json", exclude={"expected_version"})
        version = await who.run(
            commands.complete_activity, activity_id, body.expected_version,
            done["completed_at"], done["remarks"], done["cost"],
        )  # fmt: skip
        return ActivityAccepted(activity_id=activity_id, version=version)

    @app.post("/activities/{activity_id}/cancel", tags=["activities"], summary="Cancel an activity")
    async def cancel(activity_id: ActivityId, body: Cancellation, who: Who) -> ActivityAccepted:
        version = await who.run(
            commands.cancel_activity, activity_id, body.expected_version, body.reason
        )
        return ActivityAccepted(activity_id=activity_id, version=version)

    @app.get(
        "/activities/{activity_id}",
        tags=["activities"],
        summary="An activity (read side)",
        responses=VIEW_BEHIND,
    )
    async def activity(
        activity_id: ActivityId, min_version: MinVersion = None, wait_ms: WaitMs = 2_000
    ) -> ActivityView:
        await read_your_writes(
            queries.wait_for, commands, Activity, activity_id, min_version, wait_ms
        )
        found = await queries.activity(activity_id)
        if found is None:
            raise ActivityNotFound(activity_id)
        return found

    @app.get(
        "/customers/{customer_id}/timeline",
        tags=["views"],
        summary="The customer's contacts, newest first",
    )
    async def timeline(
        customer_id: CustomerId,
        limit: Annotated[int, Query(ge=1, le=200)] = 20,
        cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    ) -> TimelinePage:
        try:
            return await queries.timeline(customer_id, limit=limit, cursor=cursor)
        except ValueError as error:
            raise Problem(400, "invalid-cursor", "Bad request", str(error)) from None

    @app.get(
        "/managers/{manager_id}/tasks",
        tags=["views"],
        summary="The manager's task list: overdue, today, this week, upcoming",
    )
    async def tasks(
        manager_id: ManagerId,
        as_of: Annotated[
            IsoDateTime | None, Query(description="The moment to evaluate at (default: now)")
        ] = None,
    ) -> TaskList:
        return await queries.tasks(manager_id, as_of)

    return app
