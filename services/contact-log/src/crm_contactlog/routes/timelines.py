"""``/customers/{customer_id}/timeline``: a customer's contacts, newest first."""

from __future__ import annotations

from typing import Annotated

from crm_backbone.callers import Reader
from crm_backbone.read_audit import PersonalReads
from fastapi import APIRouter, Query

from crm_contactlog.queries import TimelinePage
from crm_contactlog.routes.dependencies import Book, Queries
from crm_contactlog.routes.models import CustomerId

router = APIRouter(tags=["views"])


@router.get(
    "/customers/{customer_id}/timeline",
    summary="The customer's contacts, newest first",
    description="For a customer in the caller's reach (else 404 `customer-not-found`); "
    "notes masked for the analyst.",
)
async def timeline(
    customer_id: CustomerId,
    caller: Reader,
    reads: PersonalReads,
    book: Book,
    queries: Queries,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> TimelinePage:
    await book.require_customer(caller.reach, customer_id)
    page = await queries.timeline(caller.reach, customer_id, limit=limit, cursor=cursor)
    await reads.record(contact.customer_id for contact in page.items)
    return page
