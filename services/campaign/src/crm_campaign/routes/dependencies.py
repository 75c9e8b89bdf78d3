"""What the campaign routes take from the service handle, as typed FastAPI dependencies."""

from __future__ import annotations

from typing import Annotated

from crm_backbone.service_api import handle_of
from fastapi import Depends, Request

from crm_campaign.application import CampaignApplication
from crm_campaign.audience import Audience
from crm_campaign.bootstrap import CampaignService
from crm_campaign.queries import CampaignQueries


def _service(request: Request) -> CampaignService:
    return handle_of(request, CampaignService)


def _commands(request: Request) -> CampaignApplication:
    return _service(request).application


def _queries(request: Request) -> CampaignQueries:
    return _service(request).queries


def _audience(request: Request) -> Audience:
    return _service(request).audience


Commands = Annotated[CampaignApplication, Depends(_commands)]
Queries = Annotated[CampaignQueries, Depends(_queries)]
TargetAudience = Annotated[Audience, Depends(_audience)]
"""Where target lists are selected from."""
