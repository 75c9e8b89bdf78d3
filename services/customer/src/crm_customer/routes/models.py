"""What the customer routes share: the ids in a path and the answer to a command."""

from __future__ import annotations

from typing import Annotated

from crm_backbone.service_api import Answers
from crm_events.common import Id
from fastapi import Path
from pydantic import BaseModel, Field

CustomerId = Annotated[Id, Path(description="Unified customer number", examples=["C00012345"])]
GroupId = Annotated[Id, Path(description="Household or group", examples=["HH-0001"])]


class Accepted(BaseModel):
    customer_id: str
    version: int = Field(description="The customer's version after the command")


answers = Answers(lambda key, version: Accepted(customer_id=key, version=version))
"""Runs a command on a customer and answers it with :class:`Accepted`."""
