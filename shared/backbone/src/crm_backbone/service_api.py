"""The skeleton every service's HTTP API shares: lifespan, problems, ops routes, commands.

A service's ``api.py`` builds its app with :func:`service_api`, derives its command bodies
from :class:`Command`, and answers read-your-writes requests with :func:`read_your_writes`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Annotated

from crm_events.generate import asyncapi_document
from crm_events.topics import Service
from fastapi import Depends, FastAPI, Query
from pydantic import BaseModel, ConfigDict, Field

from crm_backbone.application import StaleVersion
from crm_backbone.http import (
    PROBLEM_RESPONSES,
    Caller,
    Problem,
    ProblemMapper,
    caller,
    install_problem_handlers,
    ops_router,
)
from crm_backbone.runtime import ServiceRuntime

Who = Annotated[Caller, Depends(caller)]
"""The caller of a command (``X-Actor``, ``X-Correlation-Id``)."""

MinVersion = Annotated[
    int | None, Query(ge=1, description="Wait until the view has applied this version")
]
WaitMs = Annotated[int, Query(ge=0, le=10_000, description="How long to wait for min_version")]


class Command(BaseModel):
    """A command's body: ``expected_version`` makes it conditional (a stale one is a 409)."""

    model_config = ConfigDict(extra="forbid")
    expected_version: int | None = Field(
        None, ge=1, description="Refuse the command (409) unless the aggregate is at this version"
    )


async def read_your_writes(
    wait: Callable[[str, int, float], Awaitable[bool]],
    key: str,
    min_version: int | None,
    wait_ms: int,
) -> None:
    """Wait (bounded) until the view has applied ``min_version`` of ``key``, else a 503."""
    if min_version is not None and not await wait(key, min_version, wait_ms / 1000):
        raise Problem(
            503, "view-behind", "Service unavailable",
            f"the view has not applied version {min_version} of {key} within {wait_ms} ms; "
            "retry", retry_after_ms=wait_ms,
        )  # fmt: skip


def _stale_version(error: Exception) -> Problem:
    assert isinstance(error, StaleVersion)
    return Problem(409, "stale-version", "Conflict", str(error), current_version=error.current)


def service_api(
    *,
    service: Service,
    title: str,
    summary: str,
    runtime: ServiceRuntime,
    close: Callable[[], Awaitable[None]],
    domain_errors: Mapping[type[Exception], ProblemMapper],
    run_workers: bool,
) -> FastAPI:
    """A FastAPI app with the service's lifespan (its workers, when ``run_workers``),
    problem+json errors and ``/healthz``, ``/readyz``, ``/metrics``, ``/asyncapi.json``."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if run_workers:
            await runtime.start()
        try:
            yield
        finally:
            await close()

    app = FastAPI(
        title=title, version="1.0", summary=summary, lifespan=lifespan,
        responses=PROBLEM_RESPONSES,
    )  # fmt: skip
    install_problem_handlers(app, {StaleVersion: _stale_version, **domain_errors})
    app.include_router(ops_router(runtime.readiness_checks, asyncapi_document(service)))
    return app
