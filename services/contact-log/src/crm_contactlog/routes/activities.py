"""``/activities``: schedule, reschedule, complete and cancel an activity; read one back."""

from __future__ import annotations

from functools import partial

from crm_backbone.callers import Reader, Who
from crm_backbone.read_audit import PersonalReads
from crm_backbone.service_api import (
    VIEW_BEHIND,
    Command,
    MinVersion,
    RequestBody,
    WaitMs,
    read_view,
)
from crm_events.common import Id, Money, Name
from crm_events.contact_log import ActivityCategory, Priority
from fastapi import APIRouter, Response
from pydantic import AwareDatetime, ConfigDict, Field

from crm_contactlog.application import ActivityNotFound
from crm_contactlog.domain import Activity
from crm_contactlog.queries import ActivityView
from crm_contactlog.routes.dependencies import Commands, Queries
from crm_contactlog.routes.models import OVERLAP, ActivityAccepted, ActivityId, activity_answers

router = APIRouter(tags=["activities"])


CONFIRM_OVERLAP = (
    "Keep the plan even if it overlaps other activities of its people (the assignee and "
    "the participants); without it such a plan is answered 409 `activity-overlap`. An "
    "activity with a planned end holds [started_at, ended_at); one without holds no time"
)


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
                    "participant_ids": ["RM-0043"],
                    "confirm_overlap": False,
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
    participant_ids: list[Id] = Field(
        [],
        description="Other staff taking part (ids the organisation knows); each sees "
        "the activity in their calendar and task list",
    )
    origin_event_id: Id | None = Field(
        None, description="The derived task (its task_id) or event this activity answers"
    )
    confirm_overlap: bool = Field(False, description=CONFIRM_OVERLAP)


class Reschedule(Command):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "due_at": "2026-11-27T17:00:00+08:00",
                    "started_at": "2026-11-27T16:00:00+08:00",
                    "reason": "customer travelling",
                    "confirm_overlap": False,
                }
            ]
        }
    )
    due_at: AwareDatetime
    started_at: AwareDatetime | None = Field(None, description="Default: the current start")
    ended_at: AwareDatetime | None = Field(None, description="Default: keeps the duration")
    reason: str | None = None
    confirm_overlap: bool = Field(False, description=CONFIRM_OVERLAP)


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


@router.post(
    "/activities",
    status_code=201,
    summary="Schedule an activity",
    description="An activity about a customer in the caller's reach (or about none, for "
    "staff in reach), for its assignee and participants (staff the organisation knows). "
    "A plan overlapping another open activity of its people is 409 `activity-overlap`, "
    "naming it, unless `confirm_overlap`.",
    responses=OVERLAP,
)
async def schedule(
    body: ActivityPlan, who: Who, commands: Commands, response: Response
) -> ActivityAccepted:
    fields = body.model_dump(mode="json", exclude={"activity_id", "confirm_overlap"})
    schedule = partial(commands.schedule_activity, confirm_overlap=body.confirm_overlap)
    return await activity_answers.create_in_reach(
        who, response, "activities", schedule, body.activity_id, fields
    )


@router.post(
    "/activities/{activity_id}/reschedule",
    summary="Move an activity",
    description="Moves an open activity whose owners are in the caller's reach; a new plan "
    "overlapping another open activity of its people is 409 `activity-overlap`, naming "
    "it, unless `confirm_overlap`.",
    responses=OVERLAP,
)
async def reschedule(
    activity_id: ActivityId, body: Reschedule, who: Who, commands: Commands
) -> ActivityAccepted:
    plan = body.model_dump(mode="json", exclude={"expected_version"})
    return await activity_answers.run_in_reach(
        who, commands.reschedule_activity, activity_id, body.expected_version, **plan
    )


@router.post("/activities/{activity_id}/complete", summary="Complete an activity")
async def complete(
    activity_id: ActivityId, body: Completion, who: Who, commands: Commands
) -> ActivityAccepted:
    done = body.model_dump(mode="json", exclude={"expected_version"})
    return await activity_answers.run_in_reach(
        who, commands.complete_activity, activity_id, body.expected_version, **done
    )


@router.post("/activities/{activity_id}/cancel", summary="Cancel an activity")
async def cancel(
    activity_id: ActivityId, body: Cancellation, who: Who, commands: Commands
) -> ActivityAccepted:
    return await activity_answers.run_in_reach(
        who, commands.cancel_activity, activity_id, body.expected_version, body.reason
    )


@router.get(
    "/activities/{activity_id}",
    summary="An activity (read side)",
    description="An activity in the caller's reach (its customer's, or with no customer "
    "its assignee's, or one of its people's: assignee or participants); its free text "
    "masked for the analyst.",
    responses=VIEW_BEHIND,
)
async def activity(
    activity_id: ActivityId,
    caller: Reader,
    reads: PersonalReads,
    commands: Commands,
    queries: Queries,
    min_version: MinVersion = None,
    wait_ms: WaitMs = 2_000,
) -> ActivityView:
    await commands.require_activity(caller.reach, activity_id)
    shown = await read_view(
        queries.wait_for,
        commands.application,
        Activity,
        activity_id,
        min_version,
        wait_ms,
        lambda key: queries.activity(caller.reach, key),
        ActivityNotFound,
    )
    await reads.record([shown.customer_id] if shown.customer_id else [])
    return shown
