"""``/leads``: capture, qualify, assign, convert and disqualify a lead; read one back."""

from __future__ import annotations

import asyncio
from typing import Any

from crm_backbone.access import Reach, as_shown
from crm_backbone.application import Created
from crm_backbone.callers import Reader, Who
from crm_backbone.http import location
from crm_backbone.read_audit import PersonalReads
from crm_backbone.service_api import Command, RequestBody
from crm_events.common import Email, Id, Name, Phone
from crm_events.opportunity import LeadSource
from fastapi import APIRouter, Response
from pydantic import ConfigDict, Field

from crm_opportunity.application import Conversion as Converting
from crm_opportunity.ownership import LEAD_PERSONAL
from crm_opportunity.routes.dependencies import Commands, Records
from crm_opportunity.routes.models import (
    DEAL_EXAMPLE,
    Accepted,
    Assignment,
    Converted,
    Deal,
    LeadId,
    create_in_reach,
    run_in_reach,
)

router = APIRouter(tags=["leads"])


class LeadCapture(RequestBody):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "contact_name": "Zhao Min",
                    "phone": "+86 139 5555 0101",
                    "source": "walk_in",
                    "products_of_interest": ["MORTGAGE-30Y"],
                    "branch_id": "BR-001",
                    "notes": "asked about mortgages at the counter",
                }
            ]
        },
    )
    lead_id: Id | None = Field(None, description="Generated when not given")
    customer_id: Id | None = Field(None, description="When the lead is an existing customer")
    contact_name: Name
    phone: Phone | None = None
    email: Email | None = None
    source: LeadSource
    campaign_id: Id | None = Field(None, description="Required for, and only for, source campaign")
    products_of_interest: list[Id] = []
    branch_id: Id
    manager_id: Id | None = Field(
        None,
        description="Assigned on capture; a relationship manager's own capture of a "
        "prospect is theirs by default",
    )
    notes: str | None = None


class Qualification(Command):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"customer_id": "C00012345", "notes": "budget confirmed"}]}
    )
    customer_id: Id | None = Field(None, description="Needed unless the lead names its customer")
    notes: str | None = None


class Disqualification(Command):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"reason": "already a client of another bank"}]}
    )
    reason: Name


class Conversion(Deal, Command):
    model_config = ConfigDict(json_schema_extra={"examples": [DEAL_EXAMPLE]})


@router.post("/leads", status_code=201, summary="Capture a lead")
async def capture_lead(
    body: LeadCapture, who: Who, commands: Commands, records: Records, response: Response
) -> Accepted:
    async def capture() -> Created:
        fields = body.model_dump(mode="json", exclude={"lead_id"})
        admitted = await records.new_lead(who.reach, who.principal, fields)
        return await asyncio.to_thread(commands.capture_lead, body.lead_id, admitted)

    return await create_in_reach(who, response, "leads", capture)


@router.post("/leads/{lead_id}/qualify", summary="Qualify (upgrade) a lead")
async def qualify_lead(
    lead_id: LeadId, body: Qualification, who: Who, commands: Commands, records: Records
) -> Accepted:
    async def qualifiable(reach: Reach, key: str) -> None:
        """The lead, and the customer it is qualified for (it follows them from now)."""
        await records.lead(reach, key)
        if body.customer_id is not None:
            await records.customer(reach, body.customer_id)

    return await run_in_reach(
        who,
        qualifiable,
        commands.qualify_lead,
        lead_id,
        body.expected_version,
        body.customer_id,
        body.notes,
    )


@router.put("/leads/{lead_id}/manager", summary="Assign a lead to a manager")
async def assign_lead(
    lead_id: LeadId, body: Assignment, who: Who, commands: Commands, records: Records
) -> Accepted:
    return await run_in_reach(
        who,
        records.lead,
        commands.assign_lead,
        lead_id,
        body.expected_version,
        body.manager_id,
        body.reason,
    )


@router.post(
    "/leads/{lead_id}/convert",
    status_code=201,
    summary="Convert a qualified, assigned lead into an opportunity",
)
async def convert_lead(
    lead_id: LeadId,
    body: Conversion,
    who: Who,
    commands: Commands,
    records: Records,
    response: Response,
) -> Converted:
    deal = body.model_dump(mode="json", exclude={"opportunity_id", "expected_version"})

    async def convert() -> Converting:  # the opportunity is the lead's customer's
        await records.lead(who.reach, lead_id)
        return await asyncio.to_thread(
            commands.convert_lead, lead_id, body.expected_version, body.opportunity_id, deal
        )

    converted = await who.run_async(convert)
    opportunity = converted.opportunity
    response.headers["Location"] = location("opportunities", opportunity.id)
    return Converted(
        id=lead_id,
        version=converted.lead_version,
        opportunity_id=opportunity.id,
        opportunity_version=opportunity.version,
    )


@router.post("/leads/{lead_id}/disqualify", summary="Disqualify a lead")
async def disqualify_lead(
    lead_id: LeadId, body: Disqualification, who: Who, commands: Commands, records: Records
) -> Accepted:
    return await run_in_reach(
        who, records.lead, commands.disqualify_lead, lead_id, body.expected_version, body.reason
    )


@router.get("/leads/{lead_id}", summary="The lead as its events say now")
async def lead(
    lead_id: LeadId, caller: Reader, reads: PersonalReads, records: Records
) -> dict[str, Any]:
    found = await records.lead(caller.reach, lead_id)
    await reads.record([found.customer_id] if found.customer_id else [])
    return as_shown(
        caller.reach,
        {
            "lead_id": found.lead_id,
            "version": found.version,
            "status": found.status.value,
            "customer_id": found.customer_id,
            "contact_name": found.contact_name,
            "source": found.source.value,
            "campaign_id": found.campaign_id,
            "products_of_interest": found.products_of_interest,
            "branch_id": found.branch_id,
            "manager_id": found.manager_id,
            "opportunity_id": found.opportunity_id,
            "disqualified_reason": found.disqualified_reason,
        },
        LEAD_PERSONAL,
    )
