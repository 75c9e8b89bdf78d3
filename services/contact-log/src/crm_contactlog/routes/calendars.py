"""``/activities?person=``: the team calendar, a person's activities in a period."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from crm_backbone.callers import Reader
from crm_backbone.http import problem_responses
from crm_backbone.read_audit import PersonalReads
from crm_backbone.service_api import IsoDateTime
from fastapi import APIRouter, Query

from crm_contactlog.domain import RuleViolation
from crm_contactlog.queries import PersonCalendar
from crm_contactlog.routes.dependencies import Book, Queries

router = APIRouter(tags=["views"])

ME = "me"
LONGEST_PERIOD = timedelta(days=92)
"""The widest period one read lists (a quarter)."""
NO_PERSON = problem_responses((404, "manager-not-found", "Not found", "no manager RM-0099"))


@router.get(
    "/activities",
    summary="A person's calendar: the activities they take part in, by start",
    description="The activities of `person` (`me`: the caller) starting in "
    "[`starts_from`, `starts_before`), at most 92 days: those assigned to them about "
    "customers in the caller's reach (or about none) and every one they are a participant "
    "of, as on their task list; cancelled ones "
    "only with `include_cancelled`. A relationship manager reads their own calendar, a "
    "branch manager those of their branch's staff, a regional head those of the region's; "
    "any other person is 404 `manager-not-found`, as if there were none. Each entry says "
    "the person's `role` and the other listed open activities it `overlaps`; free text is "
    "masked for the analyst.",
    responses=NO_PERSON,
)
async def calendar(
    caller: Reader,
    reads: PersonalReads,
    book: Book,
    queries: Queries,
    starts_from: Annotated[
        IsoDateTime, Query(description="First moment", examples=["2026-11-23T00:00:00+08:00"])
    ],
    starts_before: Annotated[
        IsoDateTime, Query(description="End (excluded)", examples=["2026-11-30T00:00:00+08:00"])
    ],
    person: Annotated[
        str,
        Query(min_length=1, max_length=64, description="A staff id, or `me`", examples=["RM-0042"]),
    ] = ME,
    include_cancelled: Annotated[bool, Query(examples=[False])] = False,
) -> PersonCalendar:
    if not starts_from < starts_before <= starts_from + LONGEST_PERIOD:
        raise RuleViolation("the period must end after it starts, at most 92 days later")
    staff_id = caller.principal.staff_id if caller.principal and person == ME else person
    if staff_id is None or staff_id == ME:
        raise RuleViolation("`me` names a staff member: the caller is none")
    await book.require_staff(caller.reach, staff_id)
    listed = await queries.calendar(
        book,
        caller.reach,
        staff_id,
        starts_from,
        starts_before,
        include_cancelled=include_cancelled,
    )
    await reads.record(item.customer_id for item in listed.items if item.customer_id)
    return listed
