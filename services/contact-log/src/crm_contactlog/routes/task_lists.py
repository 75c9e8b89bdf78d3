"""``/managers/{manager_id}/tasks``: a manager's task list, explicit and derived tasks."""

from __future__ import annotations

from typing import Annotated

from crm_backbone.callers import Reader
from crm_backbone.read_audit import PersonalReads
from crm_backbone.service_api import IsoDateTime
from fastapi import APIRouter, Query

from crm_contactlog.queries import TaskList
from crm_contactlog.routes.dependencies import Book, Queries
from crm_contactlog.routes.models import ManagerId

router = APIRouter(tags=["views"])


@router.get(
    "/managers/{manager_id}/tasks",
    summary="The manager's task list: overdue, today, this week, upcoming",
    description="A relationship manager reads their own list, a branch manager those of "
    "their branch's staff, a regional head those of the region's; any other manager is "
    "404 `manager-not-found`, as if there were none. The list holds only tasks about "
    "customers in the caller's reach (and the manager's tasks about no customer).",
)
async def tasks(
    manager_id: ManagerId,
    caller: Reader,
    reads: PersonalReads,
    book: Book,
    queries: Queries,
    as_of: Annotated[
        IsoDateTime | None, Query(description="The moment to evaluate at (default: now)")
    ] = None,
) -> TaskList:
    await book.require_staff(caller.reach, manager_id)
    listed = await queries.tasks(book, caller.reach, manager_id, as_of)
    shown = (listed.overdue, listed.today, listed.this_week, listed.upcoming)
    await reads.record(task.customer_id for tasks in shown for task in tasks if task.customer_id)
    return listed
