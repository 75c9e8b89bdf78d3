"""What the opportunity routes share: the ids in a path, the answer to a command, and the
bodies of more than one resource."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import date
from typing import Annotated, Any, Concatenate, ParamSpec

from crm_backbone.access import Reach
from crm_backbone.application import Created
from crm_backbone.callers import Caller
from crm_backbone.http import location
from crm_backbone.service_api import Command, RequestBody
from crm_events.common import Id, Money, Name
from fastapi import Path, Response
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


P = ParamSpec("P")
Require = Callable[[Reach, str], Awaitable[object]]
"""Finds one record in a reach, or raises its 404 (a method of ``ownership.Gate``)."""


async def run_in_reach(
    who: Caller,
    require: Require,
    command: Callable[Concatenate[str, int | None, P], int],
    key: str,
    expected: int | None,
    *args: P.args,
    **kwargs: P.kwargs,
) -> Accepted:
    """Run ``command`` on the lead, opportunity or need ``key`` as ``who``, conditional on
    its ``expected`` version, once ``require`` found it in the caller's reach (403 first
    for a caller that may not change the book, then 404 for a record out of reach)."""

    async def in_reach() -> int:
        await require(who.reach, key)
        return await asyncio.to_thread(command, key, expected, *args, **kwargs)

    return Accepted(id=key, version=await who.run_async(in_reach))


async def create_in_reach(
    who: Caller, response: Response, collection: str, create: Callable[[], Awaitable[Created]]
) -> Accepted:
    """Run ``create`` (which checks that what it makes is in the caller's reach, then
    makes it) as ``who``: the answer names the new record, ``Location`` its path."""
    new = await who.run_async(create)
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
