"""``/contacts``: log a contact, read one back."""

from __future__ import annotations

from crm_backbone.callers import Reader, Who
from crm_backbone.read_audit import PersonalReads
from crm_backbone.service_api import (
    VIEW_BEHIND,
    MinVersion,
    RequestBody,
    WaitMs,
    read_view,
)
from crm_events.common import Id, Name
from crm_events.contact_log import ContactCategory, ContactOutcome
from fastapi import APIRouter, Response
from pydantic import AwareDatetime, ConfigDict, Field

from crm_contactlog.application import ContactNotFound
from crm_contactlog.domain import Contact
from crm_contactlog.queries import ContactView
from crm_contactlog.routes.dependencies import Commands, Queries
from crm_contactlog.routes.models import ContactAccepted, ContactId, contact_answers

router = APIRouter(tags=["contacts"])


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


@router.post("/contacts", status_code=201, summary="Log a contact")
async def log_contact(
    body: ContactLog, who: Who, commands: Commands, response: Response
) -> ContactAccepted:
    fields = body.model_dump(mode="json", exclude={"contact_id"})
    return await contact_answers.create_in_reach(
        who, response, "contacts", commands.log_contact, body.contact_id, fields
    )


@router.get(
    "/contacts/{contact_id}",
    summary="A contact (read side)",
    description="A contact of a customer in the caller's reach; its notes masked for the analyst.",
    responses=VIEW_BEHIND,
)
async def contact(
    contact_id: ContactId,
    caller: Reader,
    reads: PersonalReads,
    commands: Commands,
    queries: Queries,
    min_version: MinVersion = None,
    wait_ms: WaitMs = 2_000,
) -> ContactView:
    await commands.require_contact(caller.reach, contact_id)
    shown = await read_view(
        queries.wait_for,
        commands.application,
        Contact,
        contact_id,
        min_version,
        wait_ms,
        lambda key: queries.contact(caller.reach, key),
        ContactNotFound,
    )
    await reads.record([shown.customer_id])
    return shown
