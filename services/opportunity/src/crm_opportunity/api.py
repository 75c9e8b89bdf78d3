"""The opportunity service's HTTP API: leads, opportunities, needs, and their views.

Every command names its actor (``X-Actor``), may carry ``expected_version`` (a stale one
is refused with 409 and nothing is written) and answers the aggregate's id and new
version. Ids are the caller's or generated. Errors are RFC 9457 problem documents.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from typing import Annotated, Any

from crm_backbone.http import Problem, location
from crm_backbone.service_api import (
    VIEW_BEHIND,
    Command,
    MinVersion,
    RequestBody,
    WaitMs,
    Who,
    read_your_writes,
    service_api,
)
from crm_events.common import Channel, Email, Id, Money, Name, Percent, Phone
from crm_events.opportunity import (
    LeadSource,
    NeedKind,
    NeedStatus,
    OpportunityStage,
    Severity,
    Urgency,
)
from fastapi import FastAPI, Path, Query, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from crm_opportunity.application import NotFound, new_id
from crm_opportunity.bootstrap import SERVICE, OpportunityService
from crm_opportunity.domain import Conflict, InvalidStageMove, PipelineAggregate, RuleViolation
from crm_opportunity.queries import LeadQueue, OpportunityView, Pipeline, SlaBoard

LeadId = Annotated[Id, Path(description="Lead id", examples=["L-0001"])]
OpportunityId = Annotated[Id, Path(description="Opportunity id", examples=["OPP-0001"])]
NeedId = Annotated[Id, Path(description="Need or complaint id", examples=["N-0001"])]


def _today() -> date:
    return datetime.now(UTC).date()


def _now() -> datetime:
    return datetime.now(UTC)


class Accepted(BaseModel):
    id: str = Field(description="The lead, opportunity or need")
    version: int = Field(description="Its version after the command")


class Converted(Accepted):
    opportunity_id: str
    opportunity_version: int


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
    notes: str | None = None


class Qualification(Command):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"customer_id": "C00012345", "notes": "budget confirmed"}]}
    )
    customer_id: Id | None = Field(None, description="Needed unless the lead names its customer")
    notes: str | None = None


class Assignment(Command):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"manager_id": "RM-0042", "reason": "branch rota"}]}
    )
    manager_id: Id
    reason: str | None = None


class Disqualification(Command):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"reason": "already a client of another bank"}]}
    )
    reason: Name


class Deal(RequestBody):
    """What an opportunity is about: title, products, value, dates, people."""

    opportunity_id: Id | None = Field(None, description="Generated when not given")
    title: Name
    products: list[Id] = Field(min_length=1)
    description: str | None = None
    sales_method: str | None = None
    expected_value: Money
    start_date: date = Field(default_factory=_today)
    expected_close_date: date
    contacts: list[Name] = []
    working_group: list[Id] = []
    competitors: list[Name] = []


_DEAL_EXAMPLE: dict[str, Any] = {
    "title": "Mortgage for the new flat",
    "products": ["MORTGAGE-30Y"],
    "expected_value": {"amount": "1200000.00", "currency": "CNY"},
    "expected_close_date": "2027-03-31",
    "competitors": ["Another Bank"],
}


class Conversion(Deal, Command):
    model_config = ConfigDict(json_schema_extra={"examples": [_DEAL_EXAMPLE]})


class NewOpportunity(Deal):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                _DEAL_EXAMPLE
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
    started_at: AwareDatetime = Field(default_factory=_now)
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
    resolved_at: AwareDatetime = Field(default_factory=_now)


class Reopening(Command):
    model_config = ConfigDict(json_schema_extra={"examples": [{"reason": "refund not received"}]})
    reason: Name


class Confirmation(Command):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"satisfied": True, "feedback": "quick and polite"}]}
    )
    satisfied: bool
    feedback: str | None = None
    ended_at: AwareDatetime = Field(default_factory=_now)


DOMAIN_ERRORS = {
    NotFound: lambda e: Problem(404, f"{e.kind}-not-found", "Not found", str(e)),
    Conflict: lambda e: Problem(409, "conflict", "Conflict", str(e)),
    InvalidStageMove: lambda e: Problem(
        422,
        "invalid-stage-move",
        "Unprocessable request",
        str(e),
        current_stage=e.current,
        wanted_stage=e.wanted,
    ),
    RuleViolation: lambda e: Problem(422, "rule-violation", "Unprocessable request", str(e)),
}


def create_app(service: OpportunityService, *, run_workers: bool = True) -> FastAPI:
    """The API; with ``run_workers`` its process also runs the relay and the consumers."""

    app = service_api(
        service,
        service=SERVICE,
        title="Opportunity service",
        summary="Leads, opportunities through the sales funnel, needs and complaints",
        domain_errors=DOMAIN_ERRORS,
        routers=[],
        run_workers=run_workers,
    )
    commands = service.application
    queries = service.queries

    # Leads -----------------------------------------------------------------------------

    @app.post("/leads", status_code=201, tags=["leads"], summary="Capture a lead")
    async def capture_lead(body: LeadCapture, who: Who, response: Response) -> Accepted:
        lead_id = body.lead_id or new_id("L")
        fields = body.model_dump(mode="json", exclude={"lead_id"})
        version = await who.run(commands.capture_lead, lead_id, fields)
        response.headers["Location"] = location("leads", lead_id)
        return Accepted(id=lead_id, version=version)

    @app.post("/leads/{lead_id}/qualify", tags=["leads"], summary="Qualify (upgrade) a lead")
    async def qualify_lead(lead_id: LeadId, body: Qualification, who: Who) -> Accepted:
        version = await who.run(
            commands.qualify_lead, lead_id, body.expected_version, body.customer_id, body.notes
        )
        return Accepted(id=lead_id, version=version)

    @app.put("/leads/{lead_id}/manager", tags=["leads"], summary="Assign a lead to a manager")
    async def assign_lead(lead_id: LeadId, body: Assignment, who: Who) -> Accepted:
        version = await who.run(
            commands.assign_lead, lead_id, body.expected_version, body.manager_id, body.reason
        )
        return Accepted(id=lead_id, version=version)

    @app.post(
        "/leads/{lead_id}/convert",
        status_code=201,
        tags=["leads"],
        summary="Convert a qualified, assigned lead into an opportunity",
    )
    async def convert_lead(
        lead_id: LeadId, body: Conversion, who: Who, response: Response
    ) -> Converted:
        opportunity_id = body.opportunity_id or new_id("OPP")
        deal = body.model_dump(mode="json", exclude={"opportunity_id", "expected_version"})
        version = await who.run(
            commands.convert_lead, lead_id, body.expected_version, opportunity_id, deal
        )
        response.headers["Location"] = location("opportunities", opportunity_id)
        return Converted(
            id=lead_id, version=version, opportunity_id=opportunity_id, opportunity_version=1
        )

    @app.post("/leads/{lead_id}/disqualify", tags=["leads"], summary="Disqualify a lead")
    async def disqualify_lead(lead_id: LeadId, body: Disqualification, who: Who) -> Accepted:
        version = await who.run(
            commands.disqualify_lead, lead_id, body.expected_version, body.reason
        )
        return Accepted(id=lead_id, version=version)

    @app.get("/leads/{lead_id}", tags=["leads"], summary="The lead as its events say now")
    async def lead(lead_id: LeadId) -> dict[str, Any]:
        found = await asyncio.to_thread(commands.lead, lead_id)
        return {
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
        }

    @app.get("/leads", tags=["views"], summary="A branch's queue of open leads, oldest first")
    async def lead_queue(
        branch_id: Annotated[str, Query(description="The branch")],
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> LeadQueue:
        return await queries.lead_queue(branch_id, limit)

    # Opportunities ----------------------------------------------------------------------

    @app.post(
        "/opportunities", status_code=201, tags=["opportunities"], summary="Open an opportunity"
    )
    async def open_opportunity(body: NewOpportunity, who: Who, response: Response) -> Accepted:
        opportunity_id = body.opportunity_id or new_id("OPP")
        fields = body.model_dump(mode="json", exclude={"opportunity_id"}) | {"lead_id": None}
        version = await who.run(commands.open_opportunity, opportunity_id, fields)
        response.headers["Location"] = location("opportunities", opportunity_id)
        return Accepted(id=opportunity_id, version=version)

    @app.post(
        "/opportunities/{opportunity_id}/stage",
        tags=["opportunities"],
        summary="Move forward in the funnel, or close won or lost",
    )
    async def move(opportunity_id: OpportunityId, body: StageMove, who: Who) -> Accepted:
        version = await who.run(
            commands.move_opportunity, opportunity_id, body.expected_version,
            body.stage, body.lost_reason,
        )  # fmt: skip
        return Accepted(id=opportunity_id, version=version)

    @app.put(
        "/opportunities/{opportunity_id}/probability",
        tags=["opportunities"],
        summary="Override the stage's default probability, with a reason",
    )
    async def override_probability(
        opportunity_id: OpportunityId, body: ProbabilityOverride, who: Who
    ) -> Accepted:
        version = await who.run(
            commands.override_probability, opportunity_id, body.expected_version,
            body.probability, body.reason,
        )  # fmt: skip
        return Accepted(id=opportunity_id, version=version)

    @app.put(
        "/opportunities/{opportunity_id}/expected-value",
        tags=["opportunities"],
        summary="Change the expected value",
    )
    async def change_expected_value(
        opportunity_id: OpportunityId, body: ValueChange, who: Who
    ) -> Accepted:
        version = await who.run(
            commands.change_expected_value, opportunity_id, body.expected_version,
            body.expected_value.model_dump(mode="json"), body.reason,
        )  # fmt: skip
        return Accepted(id=opportunity_id, version=version)

    @app.put(
        "/opportunities/{opportunity_id}/manager",
        tags=["opportunities"],
        summary="Reassign to another manager",
    )
    async def reassign(opportunity_id: OpportunityId, body: Assignment, who: Who) -> Accepted:
        version = await who.run(
            commands.reassign_opportunity, opportunity_id, body.expected_version,
            body.manager_id, body.reason,
        )  # fmt: skip
        return Accepted(id=opportunity_id, version=version)

    @app.get(
        "/opportunities/{opportunity_id}",
        tags=["views"],
        summary="The opportunity's view",
        responses=VIEW_BEHIND,
    )
    async def opportunity(
        opportunity_id: OpportunityId, min_version: MinVersion = None, wait_ms: WaitMs = 2_000
    ) -> OpportunityView:
        await read_your_writes(
            queries.wait_for, commands, PipelineAggregate, opportunity_id, min_version, wait_ms
        )
        found = await queries.opportunity(opportunity_id)
        if found is None:
            raise NotFound("opportunity", opportunity_id)
        return found

    @app.get("/pipeline", tags=["views"], summary="The weighted sales pipeline and conversion")
    async def pipeline(
        manager_id: str | None = None, branch_id: str | None = None, product: str | None = None
    ) -> Pipeline:
        return await queries.pipeline(manager_id=manager_id, branch_id=branch_id, product=product)

    # Needs and complaints ---------------------------------------------------------------

    @app.post("/needs", status_code=201, tags=["needs"], summary="Log a need or a complaint")
    async def log_need(body: NeedLog, who: Who, response: Response) -> Accepted:
        need_id = body.need_id or new_id("N")
        fields = body.model_dump(mode="json", exclude={"need_id"})
        version = await who.run(commands.log_need, need_id, fields)
        response.headers["Location"] = location("needs", need_id)
        return Accepted(id=need_id, version=version)

    @app.put("/needs/{need_id}/owner", tags=["needs"], summary="Assign the need to its owner")
    async def assign_need(need_id: NeedId, body: Assignment, who: Who) -> Accepted:
        version = await who.run(
            commands.assign_need, need_id, body.expected_version, body.manager_id, body.reason
        )
        return Accepted(id=need_id, version=version)

    @app.post("/needs/{need_id}/status", tags=["needs"], summary="Set the working status")
    async def work_on_need(need_id: NeedId, body: NeedWork, who: Who) -> Accepted:
        version = await who.run(
            commands.work_on_need, need_id, body.expected_version, body.status, body.sub_status
        )
        return Accepted(id=need_id, version=version)

    @app.post("/needs/{need_id}/resolve", tags=["needs"], summary="Resolve the need")
    async def resolve_need(need_id: NeedId, body: Resolution, who: Who) -> Accepted:
        version = await who.run(
            commands.resolve_need, need_id, body.expected_version,
            body.resolution, body.resolved_at.isoformat(),
        )  # fmt: skip
        return Accepted(id=need_id, version=version)

    @app.post(
        "/needs/{need_id}/reopen",
        tags=["needs"],
        summary="The customer rejects the resolution: work on it again",
    )
    async def reopen_need(need_id: NeedId, body: Reopening, who: Who) -> Accepted:
        version = await who.run(commands.reopen_need, need_id, body.expected_version, body.reason)
        return Accepted(id=need_id, version=version)

    @app.post(
        "/needs/{need_id}/confirm",
        tags=["needs"],
        summary="The customer's answer to the resolution; ends the need",
    )
    async def confirm_need(need_id: NeedId, body: Confirmation, who: Who) -> Accepted:
        version = await who.run(
            commands.confirm_need, need_id, body.expected_version,
            body.satisfied, body.feedback, body.ended_at.isoformat(),
        )  # fmt: skip
        return Accepted(id=need_id, version=version)

    @app.get("/needs/{need_id}", tags=["needs"], summary="The need as its events say now")
    async def need(need_id: NeedId) -> dict[str, Any]:
        found = await asyncio.to_thread(commands.need, need_id)
        return {
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
        }

    @app.get("/complaints/sla", tags=["views"], summary="Open complaints by SLA state")
    async def sla_board(
        branch_id: Annotated[str | None, Query(description="The customers' branch")] = None,
        due_soon_hours: Annotated[
            int | None, Query(ge=1, le=720, description="Default: the service's setting")
        ] = None,
    ) -> SlaBoard:
        return await queries.sla_board(branch_id, due_soon_hours)

    return app
