"""``/customers/{customer_id}/timeline``: a customer's contacts, newest first."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from crm_contactlog.queries import TimelinePage
from crm_contactlog.routes.dependencies import Queries
from crm_contactlog.routes.models import CustomerId

router = APIRouter(tags=["views"])


@router.get("/customers/{customer_id}/timeline", summary="The customer's contacts, newest first")
async def timeline(
    customer_id: CustomerId,
    queries: Queries,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> TimelinePage:
    return await queries.timeline(customer_id, limit=limit, cursor=cursor)
