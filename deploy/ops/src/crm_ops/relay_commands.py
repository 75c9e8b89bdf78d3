"""``crm-ops relay status``: each service's relay, read from its process's metrics."""

from __future__ import annotations

import time
from typing import Annotated

import httpx
import typer
from crm_backbone.serve import WORKER_PORT_OFFSET
from rich import box

from crm_ops.console import console, folding_table

relay_app = typer.Typer(no_args_is_help=True, help="Each service's relay (event store -> Kafka).")
API_PORTS = {"customer": 8101, "opportunity": 8102, "campaign": 8103, "contact-log": 8104}
WORKERS = {
    name: f"http://127.0.0.1:{port + WORKER_PORT_OFFSET}" for name, port in API_PORTS.items()
}
"""Where make run's worker processes (relay and consumers) answer."""


@relay_app.command("status")
def relay_status(
    service: Annotated[
        list[str] | None,
        typer.Option(
            metavar="NAME=URL",
            help="The processes running the relays (default: make run's workers)",
        ),
    ] = None,
) -> None:
    """Each service's relay: position against its store's head, when it last published,
    and why it cannot (exit code 1 when one cannot, 2 when a process does not answer)."""
    urls = dict(value.split("=", 1) for value in service) if service else WORKERS
    table = folding_table(
        "service",
        "position",
        "head",
        "pending",
        "last success",
        "errors",
        "state",
        box=box.SIMPLE_HEAD,
    )
    down = False
    problems: list[str] = []
    for name, url in urls.items():
        try:
            metrics = httpx.get(f"{url}/metrics", timeout=5).text
            readiness = httpx.get(f"{url}/readyz", timeout=5).json()
        except (httpx.HTTPError, ValueError) as error:
            table.add_row(name, "-", "-", "-", "-", "-", "[red]DOWN")
            problems.append(f"{name} does not answer: {error}")
            down = True
            continue
        positions = _gauges(metrics, "crm_relay_position")
        if not positions:
            table.add_row(name, "-", "-", "-", "-", "-", "no relay here")
        heads = _gauges(metrics, "crm_relay_store_head")
        successes = _gauges(metrics, "crm_relay_last_success_timestamp_seconds")
        errors = _gauges(metrics, "crm_relay_errors_total")
        why = readiness.get("checks", {}).get("relay", "ok")
        for relay, position in positions.items():
            head = heads.get(relay, position)
            success = successes.get(relay)
            age = f"{time.time() - success:,.1f}s ago" if success else "never"
            state = "ok" if why == "ok" else "[red]FAILING"
            if why != "ok":
                problems.append(f"{name} ({relay}): {why}")
            table.add_row(
                name,
                f"{position:.0f}",
                f"{head:.0f}",
                f"{max(head - position, 0):.0f}",
                age,
                f"{errors.get(relay, 0):.0f}",
                state,
            )
    console.print(table)
    for problem in problems:
        console.print(problem, soft_wrap=True, markup=False)
    if down:
        raise typer.Exit(2)
    if problems:
        raise typer.Exit(1)


def _gauges(text: str, name: str) -> dict[str, float]:
    """``{label value: gauge}`` of a one-label gauge in Prometheus text format."""
    values = {}
    for line in text.splitlines():
        if line.startswith(name + "{"):
            labels, _, value = line.rpartition(" ")
            values[labels.split('"')[1]] = float(value)
    return values
