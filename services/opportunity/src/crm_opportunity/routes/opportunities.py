"""``/opportunities``: open one, move it through the funnel, change its probability, value
and manager."""

from __future__ import annotations

import asyncio

from crm_backbone.application import Created
from crm_backbone.callers import Who
from crm_backbone.service_api import Command
from crm_events.common import Id, Money, Name, Percent
from crm_events.opportunity import LeadSource, OpportunityStage
from fastapi import APIRouter, Response
from pydantic import ConfigDict, Field

from crm_opportunity.routes.dependencies import Commands, Records
from crm_opportunity.routes.models import (
    DEAL_EXAMPLE,
    Accepted,
    Assignment,
    Deal,
    OpportunityId,
    create_in_reach,
    run_in_reach,
)

router = APIRouter(tags=["opportunities"])


class NewOpportunity(Deal):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                DEAL_EXAMPLE
                | {
                    "customer_id": "C00012345",
                    "manager_id": "RM-0042",
                    "branch_id": "BR-001",
                    "source": "relationship_manager",
                }
            ]
        }
    )
    customer_id: Id
    stage: OpportunityStage = Field(
        OpportunityStage.OPPORTUNITY_CREATED, description="lead or opportunity_created"
    )
    manager_id: Id
    branch_id: Id
    source: LeadSource
    campaign_id: Id | None = None


class StageMove(Command):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"stage": "proposal"},
                {"stage": "closed_lost", "lost_reason": "rate beaten by a competitor"},
            ]
        }
    )
    stage: OpportunityStage
    lost_reason: str | None = Field(None, description="Required for closed_lost, only for it")


class ProbabilityOverride(Command):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"probability": 70, "reason": "board approved budget"}]}
    )
    probability: Percent
    reason: Name


class ValueChange(Command):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"expected_value": {"amount": "900000.00", "currency": "CNY"}}]
        }
    )
    expected_value: Money
    reason: str | None = None


@router.post("/opportunities", status_code=201, summary="Open an opportunity")
async def open_opportunity(
    body: NewOpportunity, who: Who, commands: Commands, records: Records, response: Response
) -> Accepted:
    async def open_() -> Created:
        await records.customer(who.reach, body.customer_id)
        fields = body.model_dump(mode="json", exclude={"opportunity_id"})
        return await asyncio.to_thread(commands.open_opportunity, body.opportunity_id, fields)

    return await create_in_reach(who, response, "opportunities", open_)


@router.post(
    "/opportunities/{opportunity_id}/stage",
    summary="Move forward in the funnel, or close won or lost",
)
async def move(
    opportunity_id: OpportunityId, body: StageMove, who: Who, commands: Commands, records: Records
) -> Accepted:
    return await run_in_reach(
        who,
        records.opportunity,
        commands.move_opportunity,
        opportunity_id,
        body.expected_version,
        body.stage,
        body.lost_reason,
    )


@router.put(
    "/opportunities/{opportunity_id}/probability",
    summary="Override the stage's default probability, with a reason",
)
async def override_probability(
    opportunity_id: OpportunityId,
    body: ProbabilityOverride,
    who: Who,
    commands: Commands,
    records: Records,
) -> Accepted:
    return await run_in_reach(
        who,
        records.opportunity,
        commands.override_probability,
        opportunity_id,
        body.expected_version,
        body.probability,
        body.reason,
    )


@router.put("/opportunities/{opportunity_id}/expected-value", summary="Change the expected value")
async def change_expected_value(
    opportunity_id: OpportunityId, body: ValueChange, who: Who, commands: Commands, records: Records
) -> Accepted:
    return await run_in_reach(
        who,
        records.opportunity,
        commands.change_expected_value,
        opportunity_id,
        body.expected_version,
        body.expected_value.model_dump(mode="json"),
        body.reason,
    )


@router.put("/opportunities/{opportunity_id}/manager", summary="Reassign to another manager")
async def reassign(
    opportunity_id: OpportunityId, body: Assignment, who: Who, commands: Commands, records: Records
) -> Accepted:
    return await run_in_reach(
        who,
        records.opportunity,
        commands.reassign_opportunity,
        opportunity_id,
        body.expected_version,
        body.manager_id,
        body.reason,
    )
