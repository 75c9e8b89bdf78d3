"""The contact-log service's HTTP API: contacts, activities, timelines and task lists.

Every call carries a bearer token (its subject is the actor of the events a command
causes); commands on an activity may carry
``expected_version`` (a stale one is refused with 409 and nothing is written) and answer
its new version, which a read can wait for (``min_version``). Errors are RFC 9457
problem documents. The routes are in ``crm_contactlog.routes``, one module per resource.
"""

from __future__ import annotations

from crm_backbone.callers import Authentication
from crm_backbone.http import Problem
from crm_backbone.service_api import service_api
from fastapi import FastAPI

from crm_contactlog.application import ActivityNotFound, ContactNotFound
from crm_contactlog.bootstrap import SERVICE, ContactLogService
from crm_contactlog.domain import ActivityClosed, Conflict, Overlap, RuleViolation
from crm_contactlog.routes import activities, calendars, contacts, task_lists, timelines
from crm_contactlog.routes.models import overlaps

DOMAIN_ERRORS = {
    ContactNotFound: lambda e: Problem(404, "contact-not-found", "Not found", str(e)),
    ActivityNotFound: lambda e: Problem(404, "activity-not-found", "Not found", str(e)),
    ActivityClosed: lambda e: Problem(
        409, "activity-closed", "Conflict", str(e), activity_status=e.status.value
    ),
    Overlap: lambda e: Problem(
        409, "activity-overlap", "Conflict", str(e), overlaps=overlaps(e.clashes)
    ),
    Conflict: lambda e: Problem(409, "conflict", "Conflict", str(e)),
    RuleViolation: lambda e: Problem(422, "rule-violation", "Unprocessable request", str(e)),
}


def create_app(
    service: ContactLogService,
    *,
    run_workers: bool = True,
    authentication: Authentication | None = None,
) -> FastAPI:
    """The API; with ``run_workers`` its process also runs the relay and the consumers."""
    return service_api(
        service,
        service=SERVICE,
        title="Contact-log service",
        summary="Contacts, activities and tasks; contact timelines and manager task lists",
        domain_errors=DOMAIN_ERRORS,
        routers=[
            contacts.router,
            activities.router,
            calendars.router,
            timelines.router,
            task_lists.router,
        ],
        run_workers=run_workers,
        authentication=authentication,
    )
