"""What the routes are given: the service's application (commands), its queries, the
audience target lists are selected from, and its access rules."""

from __future__ import annotations

from typing import Annotated

from crm_backbone.service_api import from_handle
from fastapi import Depends

from crm_campaign.access import CampaignAccess
from crm_campaign.application import CampaignApplication
from crm_campaign.audience import Audience
from crm_campaign.bootstrap import CampaignService
from crm_campaign.queries import CampaignQueries

Commands = Annotated[
    CampaignApplication, Depends(from_handle(CampaignService, lambda s: s.application))
]
Queries = Annotated[CampaignQueries, Depends(from_handle(CampaignService, lambda s: s.queries))]
TargetAudience = Annotated[Audience, Depends(from_handle(CampaignService, lambda s: s.audience))]
Access = Annotated[CampaignAccess, Depends(from_handle(CampaignService, lambda s: s.access))]
