"""The command line every service has: ``serve`` its API, ``work`` its relay and consumers.

``serve`` runs the HTTP API, by default with the relay and the consumers in the same
process; ``serve --no-workers`` plus ``work`` runs them in two processes, so decoding,
folding and translating batches never compete with requests on the API's event loop.
``work`` answers ``/healthz``, ``/readyz`` and ``/metrics`` on a port of its own.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated

import typer
import uvicorn
from crm_events.generate import asyncapi_document
from fastapi import FastAPI

from crm_backbone.http import ops_router
from crm_backbone.runtime import ServiceHandle
from crm_backbone.settings import ServiceSettings, configure_logging

WORKER_PORT_OFFSET = 100
"""A service's worker answers on its API's port plus this, unless told otherwise."""


def worker_app(handle: ServiceHandle) -> FastAPI:
    """The worker process: the service's relay and consumers, with its operations routes."""
    runtime = handle.runtime

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await handle.close()

    service = runtime.components.service
    app = FastAPI(title=f"{service.value} worker", summary="Relay and consumers", lifespan=lifespan)
    app.include_router(ops_router(runtime.readiness_checks, asyncapi_document(service)))
    return app


def service_cli(
    name: str,
    default_port: int,
    create: Callable[[bool], FastAPI],
    settings: ServiceSettings,
    *,
    bootstrap: Callable[[], ServiceHandle],
) -> typer.Typer:
    """A Typer app with ``serve`` and ``work``: ``create(run_workers)`` builds the service's
    API, ``bootstrap()`` wires the service for a worker process."""
    cli = typer.Typer(help=f"The {name} service.", no_args_is_help=True, add_completion=False)

    @cli.command()
    def serve(
        host: Annotated[str, typer.Option(help="Address to bind")] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="Port of the HTTP API")] = default_port,
        workers: Annotated[
            bool, typer.Option(help="Also run the relay and the consumers in this process")
        ] = True,
    ) -> None:
        """Serve the HTTP API (OpenAPI docs at /docs)."""
        configure_logging(name, settings.log_level, settings.log_format)
        _run(create(workers), host, port)

    @cli.command()
    def work(
        host: Annotated[str, typer.Option(help="Address to bind")] = "127.0.0.1",
        port: Annotated[
            int, typer.Option(help="Port of /healthz, /readyz and /metrics")
        ] = default_port + WORKER_PORT_OFFSET,
    ) -> None:
        """Run the relay and the consumers (beside a `serve --no-workers`)."""
        configure_logging(f"{name}-worker", settings.log_level, settings.log_format)
        _run(worker_app(bootstrap()), host, port)

    @cli.command()
    def version() -> None:
        """Print the service name."""
        typer.echo(name)

    return cli


def _run(app: FastAPI, host: str, port: int) -> None:
    # What exists now lives as long as the process: keep it out of the collector's
    # full passes, whose pauses otherwise show in the read API's p99.
    gc.freeze()
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
