"""What the campaign routes share: the campaign id in a path and a command's answer."""

from __future__ import annotations

from typing import Annotated

from crm_events.common import Id
from fastapi import Path
from pydantic import BaseModel, Field

CampaignId = Annotated[Id, Path(description="Campaign id", examples=["CMP-2026-SPRING"])]


class Accepted(BaseModel):
    campaign_id: str
    version: int = Field(description="The campaign's version after the command")
