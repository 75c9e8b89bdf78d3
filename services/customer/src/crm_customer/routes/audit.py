"""``/audit``: the audit trail, the auditor's; the data protection officer reads the
entries of erasures only (every other role: 403)."""

from __future__ import annotations

from typing import Annotated

from crm_backbone.access import Surface, require_read
from crm_backbone.callers import Who
from crm_backbone.service_api import IsoDateTime, from_handle
from crm_events.common import Id
from crm_events.customer import CustomerErased
from fastapi import APIRouter, Depends, Query

from crm_customer.audit_queries import AuditPage, AuditQueries
from crm_customer.audit_trail import AuditKind
from crm_customer.bootstrap import CustomerService

router = APIRouter(tags=["audit"])


def audited_event_type(caller: Who) -> str | None:
    """The event type whose entries the caller may read: every one (None) for the
    auditor, erasures for the data protection officer; 403 for every other role."""
    if Surface.AUDIT in caller.reach.surfaces:
        require_read(caller.reach, Surface.AUDIT)
        return None
    require_read(caller.reach, Surface.ERASURE)
    return CustomerErased.event_type


AuditedEventType = Annotated[str | None, Depends(audited_event_type)]
Trail = Annotated[
    AuditQueries, Depends(from_handle(CustomerService, lambda s: AuditQueries(s.database)))
]
AuditedService = Annotated[
    str | None,
    Query(
        pattern="^(customer|opportunity|campaign|contact-log)$",
        description="The CRM service that produced the entry",
    ),
]


@router.get("/audit", summary="Who changed or read which customers, when, through which client")
async def audit(
    event_type: AuditedEventType,
    trail: Trail,
    customer_id: Id | None = None,
    actor: Annotated[Id | None, Query(description="The subject of the caller's token")] = None,
    service: AuditedService = None,
    kind: AuditKind | None = None,
    since: Annotated[IsoDateTime | None, Query(alias="from", description="From (included)")] = None,
    until: Annotated[IsoDateTime | None, Query(alias="to", description="Until (excluded)")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> AuditPage:
    return await trail.search(
        customer_id=customer_id,
        actor=actor,
        service=service,
        kind=kind,
        since=since,
        until=until,
        limit=limit,
        cursor=cursor,
        event_type=event_type,
    )
