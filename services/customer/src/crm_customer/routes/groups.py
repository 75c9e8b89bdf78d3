"""``/customers/{id}/groups`` and ``/groups``: households and corporate groups."""

from __future__ import annotations

from datetime import date
from typing import Any

from crm_backbone.callers import Reader, Who
from crm_backbone.http import Problem
from crm_backbone.service_api import Command
from crm_events.common import Id, Name
from crm_events.customer import GroupRole, GroupType
from fastapi import APIRouter
from pydantic import ConfigDict

from crm_customer.routes.dependencies import Commands, Queries
from crm_customer.routes.models import Accepted, CustomerId, GroupId, answers

router = APIRouter(tags=["groups"])


class GroupJoin(Command):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "group_id": "HH-0001",
                    "group_type": "household",
                    "group_name": "Wang household",
                    "role": "head",
                    "joined_on": "2026-01-01",
                }
            ]
        }
    )
    group_id: Id
    group_type: GroupType
    group_name: Name
    role: GroupRole
    joined_on: date


class GroupLeave(Command):
    left_on: date
    reason: str | None = None


@router.post("/customers/{customer_id}/groups", summary="Join a household or group")
async def join_group(
    customer_id: CustomerId, body: GroupJoin, who: Who, commands: Commands
) -> Accepted:
    return await answers.run(
        who,
        commands.join_group,
        customer_id,
        body.expected_version,
        body.group_id,
        body.group_type,
        body.group_name,
        body.role,
        body.joined_on.isoformat(),
        reach=who.reach,
    )


@router.post("/customers/{customer_id}/groups/{group_id}/leave", summary="Leave a group")
async def leave_group(
    customer_id: CustomerId, group_id: GroupId, body: GroupLeave, who: Who, commands: Commands
) -> Accepted:
    return await answers.run(
        who,
        commands.leave_group,
        customer_id,
        body.expected_version,
        group_id=group_id,
        left_on=body.left_on.isoformat(),
        reason=body.reason,
        reach=who.reach,
    )


@router.get(
    "/groups/{group_id}",
    summary="A household or corporate group",
    description="Only its members in the caller's reach (a member out of reach is left out, "
    "in its history too); a group with none answers 404, as a missing one does.",
)
async def group(group_id: GroupId, caller: Reader, queries: Queries) -> dict[str, Any]:
    found = await queries.group(group_id, caller.reach)
    if found is None:
        raise Problem(404, "group-not-found", "Not found", f"no group {group_id}")
    return found
