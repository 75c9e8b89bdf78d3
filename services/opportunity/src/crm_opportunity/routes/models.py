"""Request and response bodies more than one resource's routes share."""

from __future__ import annotations

from datetime import date
from typing import Any

from crm_backbone.service_api import Command, RequestBody
from crm_events.common import Id, Money, Name
from pydantic import BaseModel, ConfigDict, Field

from crm_opportunity.application import Created


class Accepted(BaseModel):
    id: str = Field(description="The lead, opportunity or need")
    version: int = Field(description="Its version after the command")

    @classmethod
    def of(cls, created: Created) -> Accepted:
        return cls(id=created.id, version=created.version)


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
