"""What every service's HTTP API shares: RFC 9457 problem details, who is calling, ops routes.

Errors are ``application/problem+json`` documents: ``type`` (a relative URI naming the
kind of problem), ``title``, ``status``, ``detail`` and, where useful, extension members
(``errors`` for invalid fields, ``current_version`` for a stale write, ...).
"""

from __future__ import annotations

import asyncio
import urllib.parse
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Mapping
from types import UnionType
from typing import Annotated, Any, ParamSpec, TypeVar, Union, get_args, get_origin

import structlog
from crm_events.common import Id
from fastapi import APIRouter, FastAPI, Header, Request
from fastapi.dependencies.utils import get_flat_params
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException
from starlette.routing import Match

log = structlog.get_logger(__name__)

PROBLEM_JSON = "application/problem+json"
P = ParamSpec("P")
T = TypeVar("T")


class Problem(Exception):
    """An error the API reports as a problem details document."""

    def __init__(self, status: int, kind: str, title: str, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.kind = kind
        self.title = title
        self.detail = detail
        self.extra = extra

    def response(self, instance: str) -> JSONResponse:
        body = {
            "type": f"/problems/{self.kind}",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "instance": instance,
            **self.extra,
        }
        return JSONResponse(body, status_code=self.status, media_type=PROBLEM_JSON)


def problem_responses(
    *problems: tuple[int, str, str, str],
) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for ``(status, kind, description, example detail)``."""
    return {
        status: {
            "description": description,
            "content": {
                PROBLEM_JSON: {
                    "example": {
                        "type": f"/problems/{kind}",
                        "title": description,
                        "status": status,
                        "detail": detail,
                    }
                }
            },
        }
        for status, kind, description, detail in problems
    }


PROBLEM_RESPONSES = problem_responses(
    (400, "invalid-cursor", "Bad request", "the cursor is not one this service gave"),
    (404, "not-found", "Not found", "no customer C00000042"),
    (409, "stale-version", "Conflict", "expected version 3, the customer is at 4"),
    (422, "invalid-request", "Unprocessable request", "a corporate tier needs a corporate"),
)
"""OpenAPI ``responses`` entry documenting the problem documents a route may return."""

ProblemMapper = Callable[[Exception], Problem]


def install_problem_handlers(
    app: FastAPI, domain_errors: Mapping[type[Exception], ProblemMapper]
) -> None:
    """Answer every error as problem+json; ``domain_errors`` map a service's own exceptions."""

    async def on_problem(request: Request, error: Exception) -> Response:
        assert isinstance(error, Problem)
        return error.response(request.url.path)

    async def on_validation(request: Request, error: Exception) -> Response:
        assert isinstance(error, RequestValidationError)
        errors = [
            {"location": list(e["loc"]), "message": e["msg"], "type": e["type"]}
            for e in error.errors()
        ]
        summary = "; ".join(f"{'.'.join(map(str, e['location']))}: {e['message']}" for e in errors)
        problem = Problem(422, "invalid-request", "Unprocessable request", summary, errors=errors)
        return problem.response(request.url.path)

    async def on_http(request: Request, error: Exception) -> Response:
        assert isinstance(error, HTTPException)
        problem = Problem(error.status_code, "http", str(error.detail), str(error.detail))
        response = problem.response(request.url.path)
        response.headers.update(error.headers or {})
        if error.status_code == 405:
            response.headers["Allow"] = ", ".join(allowed_methods(request))
        return response

    def on_domain(mapper: ProblemMapper) -> Callable[[Request, Exception], Awaitable[Response]]:
        async def handle(request: Request, error: Exception) -> Response:
            return mapper(error).response(request.url.path)

        return handle

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(HTTPException, on_http)
    for error_type, mapper in domain_errors.items():
        app.add_exception_handler(error_type, on_domain(mapper))


HTTP_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def allowed_methods(request: Request) -> list[str]:
    """The methods some route answers on the request's path (a 405 answer's ``Allow``).

    Each method is tried against the app's routes as the router would match it, so the
    routes of an included router (a route of its own that holds them) count too.
    """
    routes = request.app.router.routes
    return [
        method
        for method in HTTP_METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] == Match.FULL for route in routes
        )
    ]


def one_value_per_query_parameter(request: Request) -> None:
    """FastAPI dependency of every route: a query naming more than once a parameter the
    operation takes one value of is refused (422 ``invalid-request``), as the OpenAPI
    document says; FastAPI alone would keep the last value. It runs before the caller's
    token is checked, as nothing is read."""
    route = request.scope.get("route")
    counts = Counter(name for name, _ in request.query_params.multi_items())
    repeated = {name for name, count in counts.items() if count > 1}
    if not repeated or not isinstance(route, APIRoute):
        return
    single = {
        field.alias
        for field in get_flat_params(route.dependant)
        if field.alias in repeated and not _takes_many(field.field_info.annotation)
    }
    if single:
        raise RequestValidationError(
            [
                {"loc": ("query", name), "msg": "Input should be given once", "type": "repeated"}
                for name in sorted(single)
            ]
        )


def _takes_many(annotation: Any) -> bool:
    """Whether a parameter of type ``annotation`` takes a list of values (``list[str]``)."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _takes_many(get_args(annotation)[0])
    if origin is Union or origin is UnionType:
        return any(_takes_many(arg) for arg in get_args(annotation))
    return isinstance(origin, type) and issubclass(origin, Collection)


def location(*segments: str) -> str:
    """The path of a created resource, each segment percent-encoded (a ``Location`` header)."""
    return "".join("/" + urllib.parse.quote(segment, safe="") for segment in segments)


CorrelationId = Annotated[Id | None, Header(description="Flow this command belongs to (optional)")]
"""The ``X-Correlation-Id`` header of a command."""


ReadinessCheck = Callable[[], Awaitable[str | None]]
"""Returns None when ready, else why not."""


def ops_router(
    checks: Callable[[], Mapping[str, ReadinessCheck]], asyncapi: Mapping[str, Any]
) -> APIRouter:
    """``/healthz`` (alive), ``/readyz`` (dependencies answer), ``/metrics``, ``/asyncapi.json``."""
    router = APIRouter(tags=["operations"])

    @router.get("/asyncapi.json", summary="AsyncAPI document of the events this service uses")
    async def asyncapi_json() -> Mapping[str, Any]:
        return asyncapi

    @router.get("/healthz", summary="The process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get(
        "/readyz",
        summary="Store, Kafka and MongoDB reachable, projections not stalled",
        responses={503: {"description": "Not ready; each failing check says why"}},
    )
    async def readyz() -> JSONResponse:
        named = checks()
        results = await asyncio.gather(*(_bounded(check) for check in named.values()))
        failing = {name: why for name, why in zip(named, results, strict=True) if why}
        body = {
            "status": "not ready" if failing else "ready",
            "checks": {name: failing.get(name, "ok") for name in named},
        }
        return JSONResponse(body, status_code=503 if failing else 200)

    @router.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router


async def _bounded(check: ReadinessCheck, within: float = 2.0) -> str | None:
    try:
        async with asyncio.timeout(within):
            return await check()
    except TimeoutError:
        return f"no answer within {within:g} s"
    except Exception as error:
        return f"{type(error).__name__}: {error}"
