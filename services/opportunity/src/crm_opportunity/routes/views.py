"""The read views: a branch's lead queue, an opportunity, the pipeline, the complaints' SLA
board (the projections' documents, kept by ``crm_opportunity.views``)."""

from __future__ import annotations

from functools import partial
from typing import Annotated

from crm_backbone.callers import Reader
from crm_backbone.read_audit import PersonalReads
from crm_backbone.service_api import VIEW_BEHIND, MinVersion, WaitMs, read_view
from fastapi import APIRouter, Query

from crm_opportunity.application import NotFound
from crm_opportunity.domain.base import PipelineAggregate
from crm_opportunity.queries import LeadQueue, OpportunityView, Pipeline, SlaBoard
from crm_opportunity.routes.dependencies import Commands, Queries, Records
from crm_opportunity.routes.models import OpportunityId

router = APIRouter(tags=["views"])


@router.get("/leads", summary="A branch's queue of open leads, oldest first")
async def lead_queue(
    caller: Reader,
    reads: PersonalReads,
    queries: Queries,
    branch_id: Annotated[str, Query(description="The branch")],
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> LeadQueue:
    queue = await queries.lead_queue(caller.reach, branch_id, limit)
    await reads.record(lead.customer_id for lead in queue.items if lead.customer_id)
    return queue


@router.get(
    "/opportunities/{opportunity_id}", summary="The opportunity's view", responses=VIEW_BEHIND
)
async def opportunity(
    opportunity_id: OpportunityId,
    caller: Reader,
    reads: PersonalReads,
    commands: Commands,
    queries: Queries,
    records: Records,
    min_version: MinVersion = None,
    wait_ms: WaitMs = 2_000,
) -> OpportunityView:
    await records.opportunity(caller.reach, opportunity_id)  # before telling any version
    shown = await read_view(
        queries.wait_for,
        commands,
        PipelineAggregate,
        opportunity_id,
        min_version,
        wait_ms,
        partial(queries.opportunity, caller.reach),
        partial(NotFound, "opportunity"),
    )
    await reads.record([shown.customer_id])
    return shown


@router.get("/pipeline", summary="The weighted sales pipeline and conversion")
async def pipeline(
    caller: Reader,
    queries: Queries,
    manager_id: str | None = None,
    branch_id: str | None = None,
    product: str | None = None,
) -> Pipeline:
    return await queries.pipeline(
        caller.reach, manager_id=manager_id, branch_id=branch_id, product=product
    )


@router.get("/complaints/sla", summary="Open complaints by SLA state")
async def sla_board(
    caller: Reader,
    queries: Queries,
    branch_id: Annotated[str | None, Query(description="The customers' branch")] = None,
    due_soon_hours: Annotated[
        int | None, Query(ge=1, le=720, description="Default: the service's setting")
    ] = None,
) -> SlaBoard:
    return await queries.sla_board(caller.reach, branch_id, due_soon_hours)
