"""``/needs``: log a need or a complaint, assign, work on, resolve, reopen and confirm it;
read one back."""

from __future__ import annotations

import asyncio
from typing import Any

from crm_backbone.access import as_shown
from crm_backbone.application import Created
from crm_backbone.callers import Reader, Who
from crm_backbone.read_audit import PersonalReads
from crm_backbone.service_api import Command, RequestBody
from crm_events.common import Channel, Id, Name
from crm_events.opportunity import NeedKind, NeedStatus, Severity, Urgency
from fastapi import APIRouter, Response
from pydantic import AwareDatetime, ConfigDict, Field

from crm_opportunity.ownership import NEED_PERSONAL
from crm_opportunity.routes.dependencies import Commands, Records
from crm_opportunity.routes.models import (
    Accepted,
    Assignment,
    NeedId,
    create_in_reach,
    run_in_reach,
)

router = APIRouter(tags=["needs"])


class NeedLog(RequestBody):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "customer_id": "C00012345",
                    "kind": "complaint",
                    "summary": "Card fee charged twice",
                    "content": "The annual fee appears twice on the November statement.",
                    "severity": "medium",
                    "urgency": "high",
                    "channel": "phone",
                    "sla_due_at": "2026-11-25T18:00:00+08:00",
                }
            ]
        },
    )
    need_id: Id | None = Field(None, description="Generated when not given")
    customer_id: Id
    kind: NeedKind
    summary: Name
    content: str
    severity: Severity
    urgency: Urgency
    channel: Channel
    started_at: AwareDatetime | None = Field(None, description="Default: now")
    sla_due_at: AwareDatetime | None = Field(None, description="Required for a complaint")


class NeedWork(Command):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"status": "in_progress", "sub_status": "refund asked"}]}
    )
    status: NeedStatus = Field(description="in_progress or pending_customer")
    sub_status: str | None = None


class Resolution(Command):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"resolution": "duplicate fee refunded"}]}
    )
    resolution: Name
    resolved_at: AwareDatetime | None = Field(None, description="Default: now")


class Reopening(Command):
    model_config = ConfigDict(json_schema_extra={"examples": [{"reason": "refund not received"}]})
    reason: Name


class Confirmation(Command):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"satisfied": True, "feedback": "quick and polite"}]}
    )
    satisfied: bool
    feedback: str | None = None
    ended_at: AwareDatetime | None = Field(None, description="Default: now")


@router.post("/needs", status_code=201, summary="Log a need or a complaint")
async def log_need(
    body: NeedLog, who: Who, commands: Commands, records: Records, response: Response
) -> Accepted:
    async def log() -> Created:
        await records.customer(who.reach, body.customer_id)
        fields = body.model_dump(mode="json", exclude={"need_id"})
        return await asyncio.to_thread(commands.log_need, body.need_id, fields)

    return await create_in_reach(who, response, "needs", log)


@router.put("/needs/{need_id}/owner", summary="Assign the need to its owner")
async def assign_need(
    need_id: NeedId, body: Assignment, who: Who, commands: Commands, records: Records
) -> Accepted:
    return await run_in_reach(
        who,
        records.need,
        commands.assign_need,
        need_id,
        body.expected_version,
        body.manager_id,
        body.reason,
    )


@router.post("/needs/{need_id}/status", summary="Set the working status")
async def work_on_need(
    need_id: NeedId, body: NeedWork, who: Who, commands: Commands, records: Records
) -> Accepted:
    return await run_in_reach(
        who,
        records.need,
        commands.work_on_need,
        need_id,
        body.expected_version,
        body.status,
        body.sub_status,
    )


@router.post("/needs/{need_id}/resolve", summary="Resolve the need")
async def resolve_need(
    need_id: NeedId, body: Resolution, who: Who, commands: Commands, records: Records
) -> Accepted:
    return await run_in_reach(
        who,
        records.need,
        commands.resolve_need,
        need_id,
        body.expected_version,
        body.resolution,
        body.resolved_at,
    )


@router.post(
    "/needs/{need_id}/reopen", summary="The customer rejects the resolution: work on it again"
)
async def reopen_need(
    need_id: NeedId, body: Reopening, who: Who, commands: Commands, records: Records
) -> Accepted:
    return await run_in_reach(
        who, records.need, commands.reopen_need, need_id, body.expected_version, body.reason
    )


@router.post(
    "/needs/{need_id}/confirm", summary="The customer's answer to the resolution; ends the need"
)
async def confirm_need(
    need_id: NeedId, body: Confirmation, who: Who, commands: Commands, records: Records
) -> Accepted:
    return await run_in_reach(
        who,
        records.need,
        commands.confirm_need,
        need_id,
        body.expected_version,
        body.satisfied,
        body.feedback,
        body.ended_at,
    )


@router.get("/needs/{need_id}", summary="The need as its events say now")
async def need(
    need_id: NeedId, caller: Reader, reads: PersonalReads, records: Records
) -> dict[str, Any]:
    found = await records.need(caller.reach, need_id)
    await reads.record([found.customer_id])
    return as_shown(
        caller.reach,
        {
            "need_id": found.need_id,
            "version": found.version,
            "customer_id": found.customer_id,
            "kind": found.kind.value,
            "summary": found.summary,
            "content": found.content,
            "severity": found.severity,
            "urgency": found.urgency,
            "status": found.status.value,
            "sub_status": found.sub_status,
            "owner_id": found.owner_id,
            "started_at": found.started_at,
            "sla_due_at": found.sla_due_at,
            "resolution": found.resolution,
            "resolved_at": found.resolved_at,
            "satisfied": found.satisfied,
            "ended_at": found.ended_at,
        },
        NEED_PERSONAL,
    )
