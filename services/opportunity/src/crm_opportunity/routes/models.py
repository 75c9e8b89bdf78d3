"""What the opportunity routes share: the ids in a path, the answer to a command, and the
bodies of more than one resource."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from crm_backbone.service_api import Answers, Command, RequestBody
from crm_events.common import Id, Money, Name
from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field

LeadId = Annotated[Id, Path(description="Lead id", examples=["L-0001"])]
OpportunityId = Annotated[Id, Path(description="Opportunity id", examples=["OPP-0001"])]
NeedId = Annotated[Id, Path(description="Need or complaint id", examples=["N-0001"])]


class Accepted(BaseModel):
    id: str = Field(description="The lead, opportunity or need")
    version: int = Field(description="Its version after the command")


class Converted(Accepted):
    opportunity_id: str
    opportunity_version: int


answers = Answers(lambda key, version: Accepted(id=key, version=version))
"""Runs a command on a lead, an opportunity or a need and answers it with :class:`Accepted`."""


class Assignment(Command):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"manager_id": "RM-0042", "reason": "branch rota"}]}
    )
    manager_id: Id
    reason: str | None = None


class Deal(RequestBody):
    """What an opportunity is about: title, products, value, dates, people."""

    opportunity_id: Id | None = Field(None, description="Generated when not given")
    title: Name
    products: list[Id] = Field(min_length=1)
    description: str | None = None
    sales_method: str | None = None
    expected_value: Money
    start_date: date | None = Field(None, description="Default: the day it is opened")
    expected_close_date: date
    contacts: list[Name] = []
    working_group: list[Id] = []
    competitors: list[Name] = []


DEAL_EXAMPLE: dict[str, Any] = {
    "title": "Mortgage for the new flat",
    "products": ["MORTGAGE-30Y"],
    "expected_value": {"amount": "1200000.00", "currency": "CNY"},
    "expected_close_date": "2027-03-31",
    "competitors": ["Another Bank"],
}
