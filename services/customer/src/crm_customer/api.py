"""The customer service's HTTP API: commands on customers, the single customer view, search.

Every call carries a bearer token (its subject is the actor of the events a command
causes), may carry ``expected_version`` (a stale one
is refused with 409 and nothing is written) and answers the customer's new version.
Errors are RFC 9457 problem documents. The routes are in ``crm_customer.routes``, one
module per resource. Who may read and change which customers is ``ownership.py``'s: a
customer out of the caller's reach is ``CustomerNotFound``, a ``NotInReach``, answered
by the skeleton's one 404 (``crm_backbone.access.ACCESS_ERRORS``) as a missing one is.
"""

from __future__ import annotations

from crm_backbone.callers import Authentication
from crm_backbone.http import Problem
from crm_backbone.service_api import service_api
from fastapi import FastAPI

from crm_customer.application import ErasureUnavailable
from crm_customer.bootstrap import SERVICE, CustomerService
from crm_customer.erasure import CustomerErasedError, LegalHoldApplies
from crm_customer.routes import (
    analysis,
    audit,
    customers,
    erasure,
    groups,
    merges,
    performance,
    relationships,
    views,
    worklists,
)
from crm_customer.rules import (
    Conflict,
    CoreOwnedField,
    CustomerRetired,
    RuleViolation,
    UnknownProfileFields,
)

DOMAIN_ERRORS = {
    CustomerErasedError: lambda e: Problem(
        410, "customer-erased", "Gone", str(e), erased_at=e.erased_at
    ),
    LegalHoldApplies: lambda e: Problem(
        409,
        "legal-hold",
        "Conflict",
        str(e),
        holds=[
            {"kind": h.kind.value, "detail": h.detail, "until": h.until and h.until.isoformat()}
            for h in e.holds
        ],
    ),
    ErasureUnavailable: lambda e: Problem(503, "erasure-unavailable", "Unavailable", str(e)),
    CustomerRetired: lambda e: Problem(
        409, "customer-merged", "Conflict", str(e), survivor_customer_id=e.survivor_id
    ),
    Conflict: lambda e: Problem(409, "conflict", "Conflict", str(e)),
    CoreOwnedField: lambda e: Problem(
        403, "field-owned-upstream", "Forbidden", str(e), fields=e.fields, owner=e.owner
    ),
    UnknownProfileFields: lambda e: Problem(
        422, "invalid-request", "Unprocessable request", str(e)
    ),
    RuleViolation: lambda e: Problem(422, "rule-violation", "Unprocessable request", str(e)),
}


def create_app(
    service: CustomerService,
    *,
    run_workers: bool = True,
    authentication: Authentication | None = None,
) -> FastAPI:
    """The API; with ``run_workers`` its process also runs the relay and the consumers."""
    return service_api(
        service,
        service=SERVICE,
        title="Customer service",
        summary="Customers, their single customer view, search, households and groups",
        domain_errors=DOMAIN_ERRORS,
        routers=[
            customers.router,
            groups.router,
            relationships.router,
            merges.router,
            erasure.router,
            views.router,
            worklists.router,
            analysis.router,
            performance.router,
            audit.router,
        ],
        run_workers=run_workers,
        authentication=authentication,
    )
