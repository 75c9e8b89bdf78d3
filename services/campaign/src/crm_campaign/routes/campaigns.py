"""Campaign commands (create, schedule, start, complete, cancel) and the write-side read.

Every command is its bearer token's caller's, who must be allowed to manage the campaign
(``access.py``: 403 otherwise), may carry ``expected_version`` (a stale one is refused with
409 and nothing is written) and answers the campaign's new version, which the tracking
reads accept as ``min_version`` to read their own write.
"""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Any

from crm_backbone.callers import Reader, Who
from crm_backbone.service_api import Command, RequestBody
from crm_events.campaign import CampaignKind, Segment
from crm_events.common import Channel, Id, Money, Name
from fastapi import APIRouter, Response
from pydantic import AwareDatetime, ConfigDict, Field

from crm_campaign.access import sees_whole
from crm_campaign.domain import MAX_ATTRIBUTION_DAYS, MAX_TARGET_LIST_BYTES, Campaign
from crm_campaign.routes.dependencies import Access, Commands, TargetAudience
from crm_campaign.routes.models import Accepted, CampaignId, Started, answers
from crm_campaign.targeting import Criteria

router = APIRouter(tags=["campaigns"])


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


@router.post("/campaigns", status_code=201, summary="Create a draft campaign")
async def create(body: Draft, who: Who, commands: Commands, response: Response) -> Accepted:
    fields = body.model_dump(mode="json", exclude={"campaign_id"})
    return await answers.create(
        who, response, "campaigns", commands.create, body.campaign_id, fields, reach=who.reach
    )


@router.post("/campaigns/{campaign_id}/schedule", summary="Schedule (or reschedule)")
async def schedule(
    campaign_id: CampaignId, body: Schedule, who: Who, commands: Commands
) -> Accepted:
    return await answers.run(
        who,
        commands.schedule,
        campaign_id,
        body.expected_version,
        body.starts_at,
        body.ends_at,
        reach=who.reach,
    )


@router.post(
    "/campaigns/{campaign_id}/start",
    summary="Freeze the target list and start",
    description=(
        "Selects the targets from the service's audience view (segments and criteria, "
        "consent, contact details), freezes them in `crm.campaign.started` and hands "
        "phone and branch targets to their managers' call lists. A target list over "
        f"{MAX_TARGET_LIST_BYTES} bytes (about 8,000 targets) is refused: one Kafka "
        "record carries it."
    ),
)
async def start(
    campaign_id: CampaignId, body: Command, who: Who, commands: Commands, audience: TargetAudience
) -> Started:
    started = await who.run_async(
        commands.start, campaign_id, body.expected_version, audience, reach=who.reach
    )
    return Started(
        campaign_id=campaign_id,
        version=started.version,
        targeted=started.targeted,
        excluded=started.excluded,
        call_lists=started.call_lists,
    )


@router.post("/campaigns/{campaign_id}/complete", summary="Complete")
async def complete(
    campaign_id: CampaignId, body: Command, who: Who, commands: Commands
) -> Accepted:
    return await answers.run(
        who, commands.complete, campaign_id, body.expected_version, reach=who.reach
    )


@router.post("/campaigns/{campaign_id}/cancel", summary="Cancel")
async def cancel(
    campaign_id: CampaignId, body: Cancellation, who: Who, commands: Commands
) -> Accepted:
    return await answers.run(
        who, commands.cancel, campaign_id, body.expected_version, body.reason, reach=who.reach
    )


@router.get(
    "/campaigns/{campaign_id}",
    summary="The campaign as its events say now (write side)",
    description=(
        "`targeted` counts the targets whose customer is in the caller's reach; "
        "`excluded` and `call_lists` are shown to organisation-wide readers only."
    ),
)
async def current(
    campaign_id: CampaignId, caller: Reader, commands: Commands, access: Access
) -> dict[str, Any]:
    campaign = await asyncio.to_thread(commands.get, campaign_id)
    targeted = await access.count_in_reach(caller.reach, campaign.targets)
    return _as_document(campaign, targeted, whole=sees_whole(caller.reach))


def _as_document(campaign: Campaign, targeted: int, *, whole: bool) -> dict[str, Any]:
    """The campaign's attributes, its window as ISO 8601, its ``targeted`` customers (in
    reach) and, to a ``whole``-campaign reader, its exclusions and call lists."""
    window = campaign.window()
    return {
        "campaign_id": campaign.campaign_id,
        "version": campaign.version,
        "status": campaign.status.value,
        "name": campaign.name,
        "kind": campaign.kind,
        "description": campaign.description,
        "products": campaign.products,
        "channels": campaign.channels,
        "target_segments": campaign.target_segments,
        "criteria": campaign.criteria,
        "owner_manager_ids": campaign.owner_manager_ids,
        "budget": campaign.budget,
        "planned_start": campaign.planned_start,
        "planned_end": campaign.planned_end,
        "starts_at": campaign.starts_at,
        "ends_at": campaign.ends_at,
        "attribution_window_days": campaign.attribution_window_days,
        "started_at": campaign.started_at,
        "attribution_window": [moment.isoformat() for moment in window] if window else None,
        "targeted": targeted,
        "excluded": campaign.excluded if whole else {},
        "call_lists": campaign.call_lists if whole else {},
        "completed_at": campaign.completed_at,
        "cancel_reason": campaign.cancel_reason,
    }
