"""``/customers/{id}/view`` and ``/customers?...``: the single customer view and search."""

from __future__ import annotations

import asyncio
from typing import Annotated

from crm_backbone.callers import Reader
from crm_backbone.read_audit import PersonalReads
from crm_backbone.service_api import VIEW_BEHIND, MinVersion, WaitMs, read_view
from crm_events.common import ValueBand
from crm_events.customer import CustomerStatus
from fastapi import APIRouter, Query

from crm_customer.application import CustomerNotFound
from crm_customer.domain import Customer
from crm_customer.queries import SearchPage
from crm_customer.routes.dependencies import Commands, Queries
from crm_customer.routes.models import CustomerId
from crm_customer.single_view import CustomerView

router = APIRouter(tags=["views"])


@router.get(
    "/customers/{customer_id}/view",
    summary="The single customer view",
    description="A customer out of the caller's reach answers 404, as a missing one does; "
    "with `min_version`, whether it is in reach is asked of the customer as it is stored "
    "(so a reassignment to the caller is read at once), then of the view.",
    responses=VIEW_BEHIND,
)
async def view(
    customer_id: CustomerId,
    caller: Reader,
    reads: PersonalReads,
    commands: Commands,
    queries: Queries,
    min_version: MinVersion = None,
    wait_ms: WaitMs = 2_000,
) -> CustomerView:
    if min_version is not None:
        await asyncio.to_thread(commands.get_in_reach, customer_id, caller.reach)

    async def read(key: str) -> CustomerView | None:
        return await queries.view(key, caller.reach)

    shown = await read_view(
        queries.wait_for,
        commands,
        Customer,
        customer_id,
        min_version,
        wait_ms,
        read,
        CustomerNotFound,
    )
    await reads.record([customer_id, shown.customer_id])
    return shown


@router.get(
    "/customers",
    summary="Search customers",
    description="Only customers in the caller's reach are found, counted or paged through.",
)
async def search(
    caller: Reader,
    reads: PersonalReads,
    queries: Queries,
    name: Annotated[str | None, Query(description="Name prefix, any case")] = None,
    phone: str | None = None,
    id_number: str | None = None,
    manager_id: str | None = None,
    branch_id: str | None = None,
    segment: ValueBand | None = None,
    status: CustomerStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
    cursor: str | None = None,
) -> SearchPage:
    page = await queries.search(
        name=name,
        phone=phone,
        id_number=id_number,
        manager_id=manager_id,
        branch_id=branch_id,
        segment=segment.value if segment else None,
        status=status.value if status else None,
        limit=limit,
        cursor=cursor,
        reach=caller.reach,
    )
    await reads.record(item["customer_id"] for item in page.items)
    return page
