"""The skeleton every service's HTTP API shares: lifespan, problems, ops routes, commands.

A service's ``api.py`` builds its app with :func:`service_api` from its handle and one
router per resource; route functions reach the handle's parts through dependencies made
with :func:`from_handle`, derive their request bodies from :class:`RequestBody` (command
bodies from :class:`Command`), answer commands with the service's :class:`Answers`, and
read a view their caller wrote with :func:`read_view` (:func:`read_your_writes`).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import date
from typing import Annotated, Any, Concatenate, Generic, ParamSpec, TypeVar

from crm_events.generate import asyncapi_document
from crm_events.topics import Service
from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response
from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    StrictInt,
    ValidatorFunctionWrapHandler,
)
from pydantic_core import CoreSchema, PydanticCustomError, core_schema, to_json

from crm_backbone.access import ACCESS_ERRORS
from crm_backbone.aggregate import TracedAggregate, uuid_for
from crm_backbone.application import Created, ServiceApplication, StaleVersion
from crm_backbone.callers import Authentication, Caller
from crm_backbone.cursor import InvalidCursor
from crm_backbone.http import (
    PROBLEM_RESPONSES,
    Problem,
    ProblemMapper,
    install_problem_handlers,
    location,
    one_value_per_query_parameter,
    ops_router,
    problem_responses,
)
from crm_backbone.ops_api import operators_router
from crm_backbone.read_audit import ReadAudit, document_audited_reads
from crm_backbone.runtime import ServiceHandle

H = TypeVar("H", bound=ServiceHandle)
T = TypeVar("T")
A = TypeVar("A", bound=BaseModel)
P = ParamSpec("P")
V = TypeVar("V")

MinVersion = Annotated[
    int | None, Query(ge=1, description="Wait until the view has applied this version")
]
WaitMs = Annotated[int, Query(ge=0, le=10_000, description="How long to wait for min_version")]


def _iso_8601(pattern: str, error: str, expected: str) -> BeforeValidator:
    """A query string's text must match ``pattern`` before pydantic reads it (pydantic
    would read ``61516`` as seconds since 1970); else the ``error``, saying ``expected``."""
    matcher = re.compile(pattern)

    def check(value: Any) -> Any:
        if isinstance(value, str) and not matcher.match(value):
            raise PydanticCustomError(error, f"Input should be {expected}")
        return value

    return BeforeValidator(check)


_ISO_DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}"
IsoDateTime = Annotated[
    AwareDatetime,
    _iso_8601(_ISO_DATE, "datetime_format", "an ISO 8601 date and time, e.g. 2026-11-23T10:00Z"),
]
"""A moment in a query string: ISO 8601 with its offset only (``61516`` is no date)."""
IsoDate = Annotated[
    date, _iso_8601(f"{_ISO_DATE}$", "date_format", "an ISO 8601 date, e.g. 2026-11-23")
]
"""A day in a query string: ISO 8601 ``YYYY-MM-DD`` only (``61516`` is no date)."""


VIEW_BEHIND = problem_responses(
    (409, "version-unreachable", "Conflict", "C00012345 is at version 3: version 4 does not exist"),
    (503, "view-behind", "Service unavailable", "the view has not applied version 3 yet; retry"),
)
"""OpenAPI ``responses`` of a read that takes ``min_version``."""


class RequestBody(BaseModel):
    """A request's JSON body, validated with JSON's own types: no coercion (``true`` is no
    number, ``61516`` no date), dates and times as ISO 8601 strings, no unknown fields.

    FastAPI hands a body to pydantic as Python objects, where strict mode would refuse an
    ISO date string; so a body given as a ``dict`` is validated as the JSON it came as,
    then its typed values build the model. As in JSON Schema, ``3.0`` is the integer 3.
    """

    model_config = ConfigDict(extra="forbid", strict=True)

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: type[BaseModel], handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        model = handler(source)

        def from_json(value: Any, validate: ValidatorFunctionWrapHandler) -> Any:
            if isinstance(value, dict):
                typed = cls.__pydantic_validator__.validate_json(to_json(_integral(value)))
                value = {name: getattr(typed, name) for name in typed.model_fields_set}
            return validate(value)

        return core_schema.json_or_python_schema(
            json_schema=model,
            python_schema=core_schema.no_info_wrap_validator_function(from_json, model),
        )


def _integral(value: Any) -> Any:
    """``value`` with its whole-number floats as ints (JSON Schema's integers)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _integral(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_integral(item) for item in value]
    return value


class Command(RequestBody):
    """A command's body: ``expected_version`` makes it conditional (a stale one is a 409)."""

    expected_version: StrictInt | None = Field(
        None, ge=1, description="Refuse the command (409) unless the aggregate is at this version"
    )


class Answers(Generic[A]):
    """How a service's routes run a command and answer it: as the caller, in a worker
    thread, with the service's answer model ``answer(id, version)`` (its field names are
    the service's published contract)."""

    def __init__(self, answer: Callable[[str, int], A]) -> None:
        self._answer = answer

    async def run(
        self,
        who: Caller,
        command: Callable[Concatenate[str, int | None, P], int],
        key: str,
        expected: int | None,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> A:
        """Run ``command`` on the aggregate ``key`` as ``who``, conditional on its
        ``expected`` version: the answer names it and its new version."""
        return self._answer(key, await who.run(command, key, expected, *args, **kwargs))

    async def create(
        self,
        who: Caller,
        response: Response,
        collection: str,
        command: Callable[P, Created],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> A:
        """Run the creating ``command`` as ``who``: the answer names the new aggregate,
        and ``Location`` its path in ``collection``."""
        new = await who.run(command, *args, **kwargs)
        response.headers["Location"] = location(collection, new.id)
        return self._answer(new.id, new.version)


async def read_your_writes(
    wait: Callable[[str, int, float], Awaitable[bool]],
    application: ServiceApplication,
    kind: type[TracedAggregate],
    key: str,
    min_version: int | None,
    wait_ms: int,
) -> None:
    """Wait (bounded) until the view has applied ``min_version`` of the ``kind`` ``key``.

    A version beyond what ``application``'s event store holds (0 when there is no such
    aggregate) can never come: a 409 at once, naming the version stored. A version
    stored but not yet in the view within ``wait_ms`` is a 503 (retry).
    """
    if min_version is None:
        return
    current = await asyncio.to_thread(application.stored_version, uuid_for(kind, key))
    if min_version > current:
        raise Problem(
            409,
            "version-unreachable",
            "Conflict",
            f"{key} is at version {current}: version {min_version} does not exist",
            current_version=current,
        )
    if not await wait(key, min_version, wait_ms / 1000):
        raise Problem(
            503,
            "view-behind",
            "Service unavailable",
            f"the view has not applied version {min_version} of {key} within {wait_ms} ms; retry",
            retry_after_ms=wait_ms,
        )


async def read_view(
    wait: Callable[[str, int, float], Awaitable[bool]],
    application: ServiceApplication,
    kind: type[TracedAggregate],
    key: str,
    min_version: int | None,
    wait_ms: int,
    read: Callable[[str], Awaitable[V | None]],
    missing: Callable[[str], Exception],
) -> V:
    """The view of the ``kind`` ``key`` that ``read`` finds once it has applied
    ``min_version`` (see :func:`read_your_writes`); ``missing(key)`` is raised when there
    is none."""
    await read_your_writes(wait, application, kind, key, min_version, wait_ms)
    found = await read(key)
    if found is None:
        raise missing(key)
    return found


def _invalid_cursor(error: Exception) -> Problem:
    return Problem(400, "invalid-cursor", "Bad request", str(error))


def _stale_version(error: Exception) -> Problem:
    assert isinstance(error, StaleVersion)
    return Problem(409, "stale-version", "Conflict", str(error), current_version=error.current)


def service_api(
    handle: ServiceHandle,
    *,
    service: Service,
    title: str,
    summary: str,
    domain_errors: Mapping[type[Exception], ProblemMapper],
    routers: Sequence[APIRouter],
    run_workers: bool,
    authentication: Authentication | None = None,
) -> FastAPI:
    """A FastAPI app with the service's routers and lifespan (its workers, when
    ``run_workers``), problem+json errors and ``/healthz``, ``/readyz``, ``/metrics``,
    ``/asyncapi.json``. Routes reach ``handle`` through :func:`from_handle`, and callers are
    proven by ``authentication`` (by default the identity provider of the handle's
    settings, see :mod:`crm_backbone.callers`)."""

    read_audit = ReadAudit.of(handle.runtime)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if run_workers:
            await handle.runtime.start()
        try:
            yield
        finally:
            await read_audit.close()
            await handle.close()

    app = FastAPI(
        title=title,
        version="1.0",
        summary=summary,
        lifespan=lifespan,
        responses=PROBLEM_RESPONSES,
        dependencies=[Depends(one_value_per_query_parameter)],
    )
    app.state.service = handle
    app.state.read_audit = read_audit  # unless the authentication brings its own recorder
    install_problem_handlers(
        app,
        {
            StaleVersion: _stale_version,
            InvalidCursor: _invalid_cursor,
            **ACCESS_ERRORS,
            **domain_errors,
        },
    )
    app.include_router(ops_router(handle.runtime.readiness_checks, asyncapi_document(service)))
    app.include_router(operators_router(lambda: handle.runtime.health))
    document_audited_reads(routers)
    for router in routers:
        app.include_router(router)
    authentication = authentication or Authentication.configured(handle.settings, handle.database)
    authentication.install(app)
    return app


def handle_of(request: Request, kind: type[H]) -> H:
    """The service handle the app was built with."""
    handle = request.app.state.service
    assert isinstance(handle, kind)
    return handle


def from_handle(kind: type[H], part: Callable[[H], T]) -> Callable[[Request], T]:
    """A FastAPI dependency giving ``part`` of the service handle the app was built with:
    ``Commands = Annotated[CustomerApplication, Depends(from_handle(CustomerService,
    lambda service: service.application))]``."""

    def dependency(request: Request) -> T:
        return part(handle_of(request, kind))

    return dependency
