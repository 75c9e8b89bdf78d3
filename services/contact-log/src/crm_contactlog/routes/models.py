"""What the contact-log routes share: the ids in a path and the answers to commands."""

from __future__ import annotations

from typing import Annotated

from crm_backbone.service_api import Answers
from crm_events.common import Id
from fastapi import Path
from pydantic import BaseModel, Field

ContactId = Annotated[Id, Path(description="Contact id", examples=["CT-7f3a"])]
ActivityId = Annotated[Id, Path(description="Activity id", examples=["ACT-19c2"])]
CustomerId = Annotated[Id, Path(description="Unified customer number", examples=["C00012345"])]
ManagerId = Annotated[Id, Path(description="Relationship manager", examples=["RM-0042"])]


class ContactAccepted(BaseModel):
    contact_id: str
    version: int = Field(description="The contact's version after the command")


class ActivityAccepted(BaseModel):
    activity_id: str
    version: int = Field(description="The activity's version after the command")


contact_answers = Answers(lambda key, version: ContactAccepted(contact_id=key, version=version))
"""Runs a command on a contact and answers it with :class:`ContactAccepted`."""

activity_answers = Answers(lambda key, version: ActivityAccepted(activity_id=key, version=version))
"""Runs a command on an activity and answers it with :class:`ActivityAccepted`."""
