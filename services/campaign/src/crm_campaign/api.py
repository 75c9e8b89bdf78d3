"""The campaign service's HTTP API: campaign commands and response tracking.

Every command names its actor (``X-Actor``), may carry ``expected_version`` (a stale one
is refused with 409 and nothing is written) and answers the campaign's new version, which
the tracking reads accept as ``min_version`` to read their own write. Errors are RFC 9457
problem documents.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import date
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
from crm_events.campaign import CampaignKind, ResponseStage, Segment
from crm_events.common import Channel, Id, Money, Name
from fastapi import FastAPI, Path, Query, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from crm_campaign.application import CampaignNotFound
from crm_campaign.bootstrap import SERVICE, CampaignService
from crm_campaign.domain import (
    MAX_ATTRIBUTION_DAYS,
    MAX_TARGET_LIST_BYTES,
    Campaign,
    CampaignStatus,
    Conflict,
    NotStarted,
    NotTargeted,
    RuleViolation,
    TargetListTooLarge,
    call_lists,
)
from crm_campaign.queries import CampaignPage, Daily, Funnel
from crm_campaign.targeting import Criteria, select_targets

CampaignId = Annotated[Id, Path(description="Campaign id", examples=["CMP-2026-SPRING"])]


class Accepted(BaseModel):
    campaign_id: str
    version: int = Field(description="The campaign's version after the command")


class Draft(RequestBody):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "campaign_id": "CMP-2026-SPRING",
                    "name": "Spring wealth growth",
                    "kind": "sms",
                    "products": ["WM-GROWTH"],
                    "channels": ["sms", "email", "phone"],
                    "target_segments": [{"value_band": "high"}, {"value_band": "medium"}],
                    "criteria": {"statuses": ["active"], "products_not_held": ["WM-GROWTH"]},
                    "owner_manager_ids": ["RM-0042"],
                    "budget": {"amount": "50000.00", "currency": "CNY"},
                    "planned_start": "2026-03-01",
                    "planned_end": "2026-03-31",
                    "attribution_window_days": 30,
                }
            ]
        },
    )

    campaign_id: Id | None = Field(None, description="Generated when absent")
    name: Name
    kind: CampaignKind
    description: str | None = None
    products: list[Id] = Field([], description="Product codes offered")
    channels: list[Channel] = Field(min_length=1, description="In order of preference")
    target_segments: list[Segment] = Field(min_length=1)
    criteria: Criteria = Criteria()
    owner_manager_ids: list[Id] = Field(min_length=1)
    budget: Money
    planned_start: date
    planned_end: date
    attribution_window_days: int = Field(
        30, ge=1, le=MAX_ATTRIBUTION_DAYS, description="Conversions count this long after start"
    )


class Schedule(Command):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"starts_at": "2026-03-01T09:00:00+08:00", "ends_at": "2026-03-31T18:00:00+08:00"}
            ]
        }
    )
    starts_at: AwareDatetime
    ends_at: AwareDatetime


class Cancellation(Command):
    reason: Name


class ResponseReport(Command):
    """A response reported by a person (a call made, a reply at the branch, a sale)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "customer_id": "C00012345",
                    "channel": "phone",
                    "stage": "contacted",
                    "occurred_at": "2026-03-02T10:15:00+08:00",
                }
            ]
        }
    )
    customer_id: Id
    channel: Channel
    stage: ResponseStage
    occurred_at: AwareDatetime
    revenue: Money | None = Field(None, description="On conversion only")
    opportunity_id: Id | None = None


class Started(Accepted):
    targeted: int
    excluded: dict[str, int] = Field(description="Matching customers left off, by reason")
    call_lists: dict[str, int] = Field(description="Manager -> customers to phone or visit")


class ResponseAccepted(Accepted):
    recorded: bool = Field(description="False: the target had already reached that stage")


DOMAIN_ERRORS = {
    CampaignNotFound: lambda e: Problem(404, "campaign-not-found", "Not found", str(e)),
    NotStarted: lambda e: Problem(409, "campaign-not-started", "Conflict", str(e)),
    Conflict: lambda e: Problem(409, "conflict", "Conflict", str(e)),
    TargetListTooLarge: lambda e: Problem(
        422,
        "target-list-too-large",
        "Unprocessable request",
        str(e),
        targets=e.targets,
        bytes=e.size,
        limit_bytes=MAX_TARGET_LIST_BYTES,
    ),
    NotTargeted: lambda e: Problem(
        422, "not-targeted", "Unprocessable request", str(e), customer_id=e.customer_id
    ),
    RuleViolation: lambda e: Problem(422, "rule-violation", "Unprocessable request", str(e)),
}


def create_app(service: CampaignService, *, run_workers: bool = True) -> FastAPI:
    """The API; with ``run_workers`` its process also runs the relay and the consumers."""

    app = service_api(
        service,
        service=SERVICE,
        title="Campaign service",
        summary="Marketing campaigns, target lists, responses and response tracking",
        domain_errors=DOMAIN_ERRORS,
        routers=[],
        run_workers=run_workers,
    )
    commands = service.application
    queries = service.queries

    @app.post("/campaigns", status_code=201, tags=["campaigns"], summary="Create a draft campaign")
    async def create(body: Draft, who: Who, response: Response) -> Accepted:
        campaign_id = body.campaign_id or f"CMP-{uuid.uuid4().hex[:12].upper()}"
        fields = body.model_dump(mode="json", exclude={"campaign_id"})
        version = await who.run(commands.create, campaign_id, fields)
        response.headers["Location"] = location("campaigns", campaign_id)
        return Accepted(campaign_id=campaign_id, version=version)

    @app.post(
        "/campaigns/{campaign_id}/schedule", tags=["campaigns"], summary="Schedule (or reschedule)"
    )
    async def schedule(campaign_id: CampaignId, body: Schedule, who: Who) -> Accepted:
        version = await who.run(
            commands.schedule, campaign_id, body.expected_version, body.starts_at, body.ends_at
        )
        return Accepted(campaign_id=campaign_id, version=version)

    @app.post(
        "/campaigns/{campaign_id}/start",
        tags=["campaigns"],
        summary="Freeze the target list and start",
        description=(
            "Selects the targets from the service's audience view (segments and criteria, "
            "consent, contact details), freezes them in `crm.campaign.started` and hands "
            "phone and branch targets to their managers' call lists. A target list over "
            f"{MAX_TARGET_LIST_BYTES} bytes (about 8,000 targets) is refused: one Kafka "
            "record carries it."
        ),
    )
    async def start(campaign_id: CampaignId, body: Command, who: Who) -> Started:
        campaign = await asyncio.to_thread(commands.get, campaign_id)
        segments = [Segment.model_validate(s) for s in campaign.target_segments]
        criteria = Criteria.model_validate(campaign.criteria)
        channels = [Channel(c) for c in campaign.channels]
        profiles = await service.audience.profiles(segments, criteria)
        # Selecting over the whole audience is CPU work: off the event loop.
        selection = await asyncio.to_thread(select_targets, segments, criteria, channels, profiles)
        version = await who.run(commands.start, campaign_id, body.expected_version, selection)
        lists = call_lists(selection.targets, default_manager=campaign.owner_manager_ids[0])
        return Started(
            campaign_id=campaign_id,
            version=version,
            targeted=len(selection.targets),
            excluded=selection.excluded,
            call_lists={manager: len(ids) for manager, ids in lists.items()},
        )

    @app.post("/campaigns/{campaign_id}/complete", tags=["campaigns"], summary="Complete")
    async def complete(campaign_id: CampaignId, body: Command, who: Who) -> Accepted:
        version = await who.run(commands.complete, campaign_id, body.expected_version)
        return Accepted(campaign_id=campaign_id, version=version)

    @app.post("/campaigns/{campaign_id}/cancel", tags=["campaigns"], summary="Cancel")
    async def cancel(campaign_id: CampaignId, body: Cancellation, who: Who) -> Accepted:
        version = await who.run(commands.cancel, campaign_id, body.expected_version, body.reason)
        return Accepted(campaign_id=campaign_id, version=version)

    @app.post(
        "/campaigns/{campaign_id}/responses",
        tags=["responses"],
        summary="Record a target's response",
        description="Each target reaches each stage once; a repeat answers `recorded: false`.",
    )
    async def record_response(
        campaign_id: CampaignId, body: ResponseReport, who: Who
    ) -> ResponseAccepted:
        recorded, version = await who.run(
            commands.record_response, campaign_id, body.expected_version,
            customer_id=body.customer_id, channel=body.channel, stage=body.stage,
            occurred_at=body.occurred_at, opportunity_id=body.opportunity_id,
            revenue=body.revenue.model_dump(mode="json") if body.revenue else None,
        )  # fmt: skip
        return ResponseAccepted(campaign_id=campaign_id, version=version, recorded=recorded)

    @app.get(
        "/campaigns/{campaign_id}",
        tags=["campaigns"],
        summary="The campaign as its events say now (write side)",
    )
    async def current(campaign_id: CampaignId) -> dict[str, Any]:
        c = await asyncio.to_thread(commands.get, campaign_id)
        window = c.window()
        return {
            "campaign_id": c.campaign_id, "version": c.version, "status": c.status.value,
            "name": c.name, "kind": c.kind, "description": c.description,
            "products": c.products, "channels": c.channels,
            "target_segments": c.target_segments, "criteria": c.criteria,
            "owner_manager_ids": c.owner_manager_ids, "budget": c.budget,
            "planned_start": c.planned_start, "planned_end": c.planned_end,
            "starts_at": c.starts_at, "ends_at": c.ends_at,
            "attribution_window_days": c.attribution_window_days,
            "started_at": c.started_at,
            "attribution_window": [m.isoformat() for m in window] if window else None,
            "targeted": len(c.targets), "excluded": c.excluded, "call_lists": c.call_lists,
            "completed_at": c.completed_at, "cancel_reason": c.cancel_reason,
        }  # fmt: skip

    @app.get("/campaigns", tags=["tracking"], summary="Campaigns with their headline figures")
    async def campaigns(
        status: CampaignStatus | None = None,
        kind: CampaignKind | None = None,
        owner_manager_id: str | None = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 20,
        cursor: str | None = None,
    ) -> CampaignPage:
        try:
            return await queries.campaigns_page(
                status=status.value if status else None, kind=kind.value if kind else None,
                owner_manager_id=owner_manager_id, limit=limit, cursor=cursor,
            )  # fmt: skip
        except ValueError as error:
            raise Problem(400, "invalid-cursor", "Bad request", str(error)) from None

    @app.get(
        "/campaigns/{campaign_id}/funnel",
        tags=["tracking"],
        summary="Response funnel per channel and segment",
        responses=VIEW_BEHIND,
    )
    async def funnel(
        campaign_id: CampaignId, min_version: MinVersion = None, wait_ms: WaitMs = 2_000
    ) -> Funnel:
        await read_your_writes(
            queries.wait_for, commands, Campaign, campaign_id, min_version, wait_ms
        )
        found = await queries.funnel(campaign_id)
        if found is None:
            raise CampaignNotFound(campaign_id)
        return found

    @app.get(
        "/campaigns/{campaign_id}/daily",
        tags=["tracking"],
        summary="Targets reaching each stage, per day",
        responses=VIEW_BEHIND,
    )
    async def daily(
        campaign_id: CampaignId,
        tz: Annotated[
            str | None, Query(description="IANA time zone of the days (default: the service's)")
        ] = None,
        min_version: MinVersion = None,
        wait_ms: WaitMs = 2_000,
    ) -> Daily:
        await read_your_writes(
            queries.wait_for, commands, Campaign, campaign_id, min_version, wait_ms
        )
        try:
            found = await queries.daily(campaign_id, tz or service.settings.daily_timezone)
        except ValueError as error:
            raise Problem(400, "invalid-time-zone", "Bad request", str(error)) from None
        if found is None:
            raise CampaignNotFound(campaign_id)
        return found

    return app
