"""``/managers/{manager_id}/tasks``: a manager's task list, explicit and derived tasks."""

from __future__ import annotations

from typing import Annotated

from crm_backbone.service_api import IsoDateTime
from fastapi import APIRouter, Query

from crm_contactlog.queries import TaskList
from crm_contactlog.routes.dependencies import Queries
from crm_contactlog.routes.models import ManagerId

router = APIRouter(tags=["views"])


@router.get(
    "/managers/{manager_id}/tasks",
    summary="The manager's task list: overdue, today, this week, upcoming",
)
async def tasks(
    manager_id: ManagerId,
    queries: Queries,
    as_of: Annotated[
        IsoDateTime | None, Query(description="The moment to evaluate at (default: now)")
    ] = None,
) -> TaskList:
    return await queries.tasks(manager_id, as_of)
