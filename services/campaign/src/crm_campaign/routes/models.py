"""What the campaign routes share: the campaign id in a path and the answers to commands."""

from __future__ import annotations

from typing import Annotated

from crm_backbone.service_api import Answers
from crm_events.common import Id
from fastapi import Path
from pydantic import BaseModel, Field

CampaignId = Annotated[Id, Path(description="Campaign id", examples=["CMP-2026-SPRING"])]


class Accepted(BaseModel):
    campaign_id: str
    version: int = Field(description="The campaign's version after the command")


class Started(Accepted):
    targeted: int
    excluded: dict[str, int] = Field(description="Matching customers left off, by reason")
    call_lists: dict[str, int] = Field(description="Manager -> customers to phone or visit")


class ResponseAccepted(Accepted):
    recorded: bool = Field(description="False: the target had already reached that stage")


answers = Answers(lambda key, version: Accepted(campaign_id=key, version=version))
"""Runs a command on a campaign and answers it with :class:`Accepted`."""
