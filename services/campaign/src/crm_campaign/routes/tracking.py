"""Response tracking, read from the views: the campaign list, funnels and daily series.

Reads of one campaign take ``min_version`` (a version a command answered) to read their
own write. Every campaign is listed to every reader of the book; its figures count the
targets whose customer is in the reader's reach (``access.py``).
"""

from __future__ import annotations

from functools import partial
from typing import Annotated

from crm_backbone.callers import Reader
from crm_backbone.http import Problem
from crm_backbone.service_api import VIEW_BEHIND, MinVersion, WaitMs, read_view, read_your_writes
from crm_events.campaign import CampaignKind
from fastapi import APIRouter, Query

from crm_campaign.application import CampaignNotFound
from crm_campaign.domain import Campaign, CampaignStatus
from crm_campaign.queries import CampaignPage, Daily, Funnel
from crm_campaign.routes.dependencies import Commands, Queries
from crm_campaign.routes.models import CampaignId

router = APIRouter(tags=["tracking"])


@router.get("/campaigns", summary="Campaigns with their headline figures")
async def campaigns(
    caller: Reader,
    queries: Queries,
    status: CampaignStatus | None = None,
    kind: CampaignKind | None = None,
    owner_manager_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
    cursor: str | None = None,
) -> CampaignPage:
    return await queries.campaigns_page(
        caller.reach,
        status=status.value if status else None,
        kind=kind.value if kind else None,
        owner_manager_id=owner_manager_id,
        limit=limit,
        cursor=cursor,
    )


@router.get(
    "/campaigns/{campaign_id}/funnel",
    summary="Response funnel per channel and segment",
    responses=VIEW_BEHIND,
)
async def funnel(
    campaign_id: CampaignId,
    caller: Reader,
    commands: Commands,
    queries: Queries,
    min_version: MinVersion = None,
    wait_ms: WaitMs = 2_000,
) -> Funnel:
    return await read_view(
        queries.wait_for,
        commands,
        Campaign,
        campaign_id,
        min_version,
        wait_ms,
        partial(queries.funnel, caller.reach),
        CampaignNotFound,
    )


@router.get(
    "/campaigns/{campaign_id}/daily",
    summary="Targets reaching each stage, per day",
    responses=VIEW_BEHIND,
)
async def daily(
    campaign_id: CampaignId,
    caller: Reader,
    commands: Commands,
    queries: Queries,
    tz: Annotated[
        str | None, Query(description="IANA time zone of the days (default: the service's)")
    ] = None,
    min_version: MinVersion = None,
    wait_ms: WaitMs = 2_000,
) -> Daily:
    await read_your_writes(queries.wait_for, commands, Campaign, campaign_id, min_version, wait_ms)
    try:
        found = await queries.daily(caller.reach, campaign_id, tz)
    except ValueError as error:
        raise Problem(400, "invalid-time-zone", "Bad request", str(error)) from None
    if found is None:
        raise CampaignNotFound(campaign_id)
    return found
