"""What the contact-log routes share: the ids in a path and the answers to commands."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Concatenate, ParamSpec, TypeVar

from crm_backbone.access import Reach
from crm_backbone.application import Created
from crm_backbone.callers import Caller
from crm_backbone.http import PROBLEM_JSON, location
from crm_backbone.service_api import Answers
from crm_events.common import Id
from fastapi import Path, Response
from pydantic import BaseModel, ConfigDict, Field

from crm_contactlog.domain import BusyTime

ContactId = Annotated[Id, Path(description="Contact id", examples=["CT-7f3a"])]
ActivityId = Annotated[Id, Path(description="Activity id", examples=["ACT-19c2"])]
CustomerId = Annotated[Id, Path(description="Unified customer number", examples=["C00012345"])]
ManagerId = Annotated[Id, Path(description="Relationship manager", examples=["RM-0042"])]


class ContactAccepted(BaseModel):
    contact_id: str
    version: int = Field(description="The contact's version after the command")


class ActivityAccepted(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"activity_id": "ACT-7d01", "version": 2}]}
    )
    activity_id: str
    version: int = Field(description="The activity's version after the command")


A = TypeVar("A", bound=BaseModel)
P = ParamSpec("P")


class AnswersInReach(Answers[A]):
    """Runs the service's commands (``CallerCommands``: each checks the caller's reach
    before it decides) as the caller, and answers them with the service's answer model."""

    async def run_in_reach(
        self,
        who: Caller,
        command: Callable[Concatenate[Reach, str, int | None, P], Awaitable[int]],
        key: str,
        expected: int | None,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> A:
        """Run ``command(reach, key, expected, ...)`` on the aggregate ``key``."""
        return self._answer(
            key, await who.run_async(command, who.reach, key, expected, *args, **kwargs)
        )

    async def create_in_reach(
        self,
        who: Caller,
        response: Response,
        collection: str,
        command: Callable[[Reach, str | None, dict[str, Any]], Awaitable[Created]],
        key: str | None,
        fields: dict[str, Any],
    ) -> A:
        """Run the creating ``command(reach, key, fields)``: the answer names the new
        aggregate, and ``Location`` its path in ``collection``."""
        new = await who.run_async(command, who.reach, key, fields)
        response.headers["Location"] = location(collection, new.id)
        return self._answer(new.id, new.version)


contact_answers = AnswersInReach(
    lambda key, version: ContactAccepted(contact_id=key, version=version)
)
"""Runs a command on a contact and answers it with :class:`ContactAccepted`."""

activity_answers = AnswersInReach(
    lambda key, version: ActivityAccepted(activity_id=key, version=version)
)
"""Runs a command on an activity and answers it with :class:`ActivityAccepted`."""


class OverlapItem(BaseModel):
    """An activity a plan overlaps: whose, and when (no word of its customer)."""

    activity_id: str
    person_id: str = Field(description="The assignee or participant it keeps busy")
    started_at: str
    ended_at: str


def overlaps(clashes: list[BusyTime]) -> list[dict[str, str]]:
    """The ``overlaps`` of a 409 ``activity-overlap`` problem."""
    return [
        OverlapItem(
            activity_id=c.activity_id,
            person_id=c.person_id,
            started_at=c.slot.start.isoformat(),
            ended_at=c.slot.end.isoformat(),
        ).model_dump()
        for c in clashes
    ]


OVERLAP: dict[int | str, dict[str, Any]] = {
    409: {
        "description": "The plan overlaps other activities of its people (`overlaps`: id, "
        "person, start and end; nothing of their customers): send it again with "
        "`confirm_overlap: true` to keep it. Other conflicts are 409 `conflict`.",
        "content": {
            PROBLEM_JSON: {
                "example": {
                    "type": "/problems/activity-overlap",
                    "title": "Conflict",
                    "status": 409,
                    "detail": "the plan overlaps ACT-19c2 (RM-0042): confirm the overlap to "
                    "keep it",
                    "overlaps": [
                        {
                            "activity_id": "ACT-19c2",
                            "person_id": "RM-0042",
                            "started_at": "2026-11-25T14:30:00+08:00",
                            "ended_at": "2026-11-25T15:30:00+08:00",
                        }
                    ],
                }
            }
        },
    }
}
"""The 409 a plan overlapping its people's other activities is answered with."""
