"""What the customer routes share: the ids in a path and a command's answer."""

from __future__ import annotations

from typing import Annotated

from crm_events.common import Id
from fastapi import Path
from pydantic import BaseModel, Field

CustomerId = Annotated[Id, Path(description="Unified customer number", examples=["C00012345"])]
GroupId = Annotated[Id, Path(description="Household or group", examples=["HH-0001"])]


class Accepted(BaseModel):
    customer_id: str
    version: int = Field(description="The customer's version after the command")
