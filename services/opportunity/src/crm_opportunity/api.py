"""The opportunity service's HTTP API: leads, opportunities, needs, and their views.

Every call carries a bearer token (its subject is the actor of the events a command
causes), may carry ``expected_version`` (a stale one
is refused with 409 and nothing is written) and answers the aggregate's id and new
version. Ids are the caller's or generated. Errors are RFC 9457 problem documents. The
routes are in ``crm_opportunity.routes``, one module per resource.
"""

from __future__ import annotations

from crm_backbone.callers import Authentication
from crm_backbone.http import Problem
from crm_backbone.service_api import service_api
from fastapi import FastAPI

from crm_opportunity.application import NotFound
from crm_opportunity.bootstrap import SERVICE, OpportunityService
from crm_opportunity.domain.base import Conflict, RuleViolation
from crm_opportunity.domain.opportunity import InvalidStageMove
from crm_opportunity.routes import leads, needs, opportunities, sales_book, views

DOMAIN_ERRORS = {
    NotFound: lambda e: Problem(404, f"{e.kind}-not-found", "Not found", str(e)),
    Conflict: lambda e: Problem(409, "conflict", "Conflict", str(e)),
    InvalidStageMove: lambda e: Problem(
        422,
        "invalid-stage-move",
        "Unprocessable request",
        str(e),
        current_stage=e.current,
        wanted_stage=e.wanted,
    ),
    RuleViolation: lambda e: Problem(422, "rule-violation", "Unprocessable request", str(e)),
}


def create_app(
    service: OpportunityService,
    *,
    run_workers: bool = True,
    authentication: Authentication | None = None,
) -> FastAPI:
    """The API; with ``run_workers`` its process also runs the relay and the consumers."""
    return service_api(
        service,
        service=SERVICE,
        title="Opportunity service",
        summary="Leads, opportunities through the sales funnel, needs and complaints",
        domain_errors=DOMAIN_ERRORS,
        routers=[leads.router, opportunities.router, needs.router, views.router, sales_book.router],
        run_workers=run_workers,
        authentication=authentication,
    )
