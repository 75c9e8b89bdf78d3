"""The command line every service has: ``serve`` its API (and, by default, its workers)."""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Annotated

import typer
import uvicorn
from fastapi import FastAPI

from crm_backbone.settings import ServiceSettings, configure_logging


def service_cli(
    name: str, default_port: int, create: Callable[[bool], FastAPI], settings: ServiceSettings
) -> typer.Typer:
    """A Typer app with ``serve``; ``create(run_workers)`` builds the service's API."""
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
        app = create(workers)
        # What exists now lives as long as the process: keep it out of the collector's
        # full passes, whose pauses otherwise show in the read API's p99.
        gc.freeze()
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)

    @cli.command()
    def version() -> None:
        """Print the service name."""
        typer.echo(name)

    return cli
