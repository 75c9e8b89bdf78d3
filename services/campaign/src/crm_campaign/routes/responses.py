"""Responses reported by people: a call made, a reply at the branch, a sale."""

from __future__ import annotations

from crm_backbone.callers import Who
from crm_backbone.service_api import Command
from crm_events.campaign import ResponseStage
from crm_events.common import Channel, Id, Money
from fastapi import APIRouter
from pydantic import AwareDatetime, ConfigDict, Field

from crm_campaign.routes.dependencies import Access, Commands
from crm_campaign.routes.models import CampaignId, ResponseAccepted

router = APIRouter(tags=["responses"])


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


@router.post(
    "/campaigns/{campaign_id}/responses",
    summary="Record a target's response",
    description=(
        "Each target reaches each stage once; a repeat answers `recorded: false`. The "
        "customer must be in the reporter's reach (a customer out of reach is "
        "`404 customer-not-found`, as one that does not exist)."
    ),
)
async def record_response(
    campaign_id: CampaignId, body: ResponseReport, who: Who, commands: Commands, access: Access
) -> ResponseAccepted:
    await access.require_reporter(who.reach, body.customer_id)
    recorded = await who.run(
        commands.record_response,
        campaign_id,
        body.expected_version,
        customer_id=body.customer_id,
        channel=body.channel,
        stage=body.stage,
        occurred_at=body.occurred_at,
        opportunity_id=body.opportunity_id,
        revenue=body.revenue.model_dump(mode="json") if body.revenue else None,
    )
    return ResponseAccepted(
        campaign_id=campaign_id, version=recorded.version, recorded=recorded.value
    )
