"""The campaign service's HTTP API: campaign commands and response tracking.

The routes live in ``routes/``, one module per resource; this module maps the domain's
errors to RFC 9457 problem documents and builds the app.
"""

from __future__ import annotations

from crm_backbone.callers import Authentication
from crm_backbone.http import Problem
from crm_backbone.service_api import service_api
from fastapi import FastAPI

from crm_campaign.application import CampaignNotFound
from crm_campaign.bootstrap import SERVICE, CampaignService
from crm_campaign.domain import (
    MAX_TARGET_LIST_BYTES,
    Conflict,
    NotStarted,
    NotTargeted,
    RuleViolation,
    TargetListTooLarge,
)
from crm_campaign.routes import campaigns, responses, tracking

DOMAIN_ERRORS = {
    CampaignNotFound: lambda e: Problem(404, "campaign-not-found", "Not found", str(e)),
    NotStarted: lambda e: Problem(409, "campaign-not-started", "Conflict", str(e)),
    Conflict: lambda e: Problem(409, "conflict", "Conflict", str(e)),
    TargetListTooLarge: lambda e: Problem(
        422,
        "target-list-too-large",
        "Unprocessable request",
        str(e),
        targets=e.targets,
        bytes=e.size,
        limit_bytes=MAX_TARGET_LIST_BYTES,
    ),
    NotTargeted: lambda e: Problem(
        422, "not-targeted", "Unprocessable request", str(e), customer_id=e.customer_id
    ),
    RuleViolation: lambda e: Problem(422, "rule-violation", "Unprocessable request", str(e)),
}


def create_app(
    service: CampaignService,
    *,
    run_workers: bool = True,
    authentication: Authentication | None = None,
) -> FastAPI:
    """The API; with ``run_workers`` its process also runs the relay and the consumers."""
    return service_api(
        service,
        service=SERVICE,
        title="Campaign service",
        summary="Marketing campaigns, target lists, responses and response tracking",
        domain_errors=DOMAIN_ERRORS,
        routers=[campaigns.router, responses.router, tracking.router],
        run_workers=run_workers,
        authentication=authentication,
    )
