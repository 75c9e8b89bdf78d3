"""The book analysed: ``/customers/{id}/exposure``, ``/groups/{id}/exposure`` (credit
exposure), ``/customers/{id}/value``, ``/analysis/value`` and ``/analysis/segment-reviews``
(customer value). Rules: ``exposure.py`` and ``customer_value.py``."""

from __future__ import annotations

from typing import Annotated

from crm_backbone.callers import Reader
from crm_backbone.http import Problem, problem_responses
from crm_events.common import Id
from fastapi import APIRouter, Query

from crm_customer.analysis_models import (
    CustomerExposure,
    CustomerValue,
    GroupExposure,
    SegmentReviews,
    ValueAnalysis,
)
from crm_customer.routes.dependencies import Analyses
from crm_customer.routes.models import CustomerId, GroupId

router = APIRouter(tags=["analysis"])

NO_CUSTOMER = problem_responses((404, "customer-not-found", "Not found", "no customer C00012345"))
NO_GROUP = problem_responses((404, "group-not-found", "Not found", "no group GRP-0001"))


def _no_customer(customer_id: str) -> Problem:
    return Problem(404, "customer-not-found", "Not found", f"no customer {customer_id}")


@router.get(
    "/customers/{customer_id}/exposure",
    summary="A customer's credit exposure",
    description="Facilities the customer borrows and those of others they guarantee, per "
    "currency, with limit, drawn, utilisation and the next maturity. A customer out of "
    "reach answers 404, as a missing one does; a borrower out of reach is not named.",
    responses=NO_CUSTOMER,
)
async def customer_exposure(
    customer_id: CustomerId, caller: Reader, analyses: Analyses
) -> CustomerExposure:
    found = await analyses.customer_exposure(customer_id, caller.reach)
    if found is None:
        raise _no_customer(customer_id)
    return found


@router.get(
    "/groups/{group_id}/exposure",
    summary="A corporate group's credit exposure",
    description="The exposure of the group's current members in the caller's reach, each "
    "facility counted once (a member guaranteeing another member's facility adds "
    "nothing). A group with no member in reach answers 404, as a missing one does.",
    responses=NO_GROUP,
)
async def group_exposure(group_id: GroupId, caller: Reader, analyses: Analyses) -> GroupExposure:
    found = await analyses.group_exposure(group_id, caller.reach)
    if found is None:
        raise Problem(404, "group-not-found", "Not found", f"no group {group_id}")
    return found


@router.get(
    "/customers/{customer_id}/value",
    summary="A customer's value and value band",
    description="AUM, loans and contribution over the contribution window, the value the "
    "rule makes of them and its band, beside the customer's segment.",
    responses=NO_CUSTOMER,
)
async def customer_value(
    customer_id: CustomerId, caller: Reader, analyses: Analyses
) -> CustomerValue:
    found = await analyses.customer_value(customer_id, caller.reach)
    if found is None:
        raise _no_customer(customer_id)
    return found


@router.get(
    "/analysis/value",
    summary="Customer value across the caller's book",
    description="Totals, the distribution by value band and by segment, the Pareto curve "
    "of AUM and of contribution (top 1, 5, 10, 20 % of customers), the bottom fifth's cost "
    "to revenue, and how many segments disagree with the value band; of the customers in "
    "the caller's reach.",
)
async def value_analysis(caller: Reader, analyses: Analyses) -> ValueAnalysis:
    return await analyses.value_analysis(caller.reach)


@router.get(
    "/analysis/segment-reviews",
    summary="Customers whose segment disagrees with their value band",
    description="The review list a manager works through: each customer in reach whose "
    "segment is not the band the value rule gives, the highest value first. Changing the "
    "segment (`POST /customers/{id}/segment`) or the figures moving takes them off the list.",
)
async def segment_reviews(
    caller: Reader,
    analyses: Analyses,
    manager_id: Annotated[
        Id | None, Query(description="Only this manager's customers", examples=["RM-0001"])
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> SegmentReviews:
    return await analyses.segment_reviews(caller.reach, manager_id=manager_id, limit=limit)
