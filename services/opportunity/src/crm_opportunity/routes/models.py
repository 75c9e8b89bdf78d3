"""What more than one resource's routes share: bodies, and the answers to commands."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any, Concatenate, ParamSpec

from crm_backbone.application import Created
from crm_backbone.http import Caller, location
from crm_backbone.service_api import Command, RequestBody
from crm_events.common import Id, Money, Name
from fastapi import Response
from pydantic import BaseModel, ConfigDict, Field

P = ParamSpec("P")


class Accepted(BaseModel):
    id: str = Field(description="The lead, opportunity or need")
    version: int = Field(description="Its version after the command")


async def accepted(
    who: Caller,
    command: Callable[Concatenate[str, int | None, P], int],
    key: str,
    expected: int | None,
    *args: P.args,
    **kwargs: P.kwargs,
) -> Accepted:
    """Run ``command`` on the lead, opportunity or need ``key`` as ``who``, conditional on
    its ``expected`` version: the answer names it and its new version."""
    version = await who.run(command, key, expected, *args, **kwargs)
    return Accepted(id=key, version=version)


def created(response: Response, collection: str, new: Created) -> Accepted:
    """The answer to a command that created ``new`` in ``collection``, located there."""
    response.headers["Location"] = location(collection, new.id)
    return Accepted(id=new.id, version=new.version)


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
