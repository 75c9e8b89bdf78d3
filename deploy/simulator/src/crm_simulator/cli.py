"""``crm-simulate``: the simulated bank's upstream systems (HR, core banking, the credit
system, management accounting), publishing to Kafka."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Callable, Iterable
from datetime import datetime
from itertools import islice
from pathlib import Path
from typing import Annotated

import structlog
import typer
from aiokafka.errors import KafkaError
from crm_backbone.topic_names import TopicNames
from crm_events.topics import Service, produced_by

from crm_simulator.day import scripted_day
from crm_simulator.feed import FeedEvent, bank_feed
from crm_simulator.logins import Logins
from crm_simulator.population import population
from crm_simulator.publisher import Progress, UpstreamProducers, publish

app = typer.Typer(add_completion=False, no_args_is_help=True)
log = structlog.get_logger("crm_simulator")

SIMULATED_SYSTEMS = (
    Service.HR,
    Service.CORE_BANKING,
    Service.CREDIT,
    Service.MANAGEMENT_ACCOUNTING,
)
SIMULATED_TOPICS = tuple(topic.name for s in SIMULATED_SYSTEMS for topic in produced_by(s))
"""The topics the simulated bank publishes to: HR's organisation, core banking's, the credit
system's and management accounting's."""


@app.callback()
def main() -> None:
    """Simulated bank (HR, core banking, credit, management accounting): publishes upstream
    events under the CRM's contract."""


def _start(value: str) -> datetime:
    try:
        start = datetime.fromisoformat(value)
    except ValueError:
        message = f"not an ISO 8601 date-time: {value!r}"
        raise typer.BadParameter(message, param_hint="--start") from None
    if start.utcoffset() is None:
        raise typer.BadParameter(
            "give a time zone, e.g. 2026-01-01T00:00:00Z", param_hint="--start"
        )
    return start


def _topic_names(prefix: str) -> TopicNames:
    try:
        return TopicNames(prefix)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--topic-prefix") from None


@app.command("feed")
def feed_command(
    bootstrap: Annotated[
        str, typer.Option(envvar="CRM_KAFKA_BOOTSTRAP", help="Kafka bootstrap servers")
    ],
    seed: Annotated[int, typer.Option(help="Seed of the population and the events")] = 42,
    customers: Annotated[int, typer.Option(min=1, help="Size of the population")] = 200,
    rate: Annotated[float, typer.Option(min=0, help="Events per second; 0: unthrottled")] = 50,
    events: Annotated[
        int | None, typer.Option(min=1, help="Stop after this many records; default: Ctrl-C")
    ] = None,
    poison_rate: Annotated[
        float, typer.Option(min=0, max=0.99, help="Fraction of records that are poison")
    ] = 0.0,
    start: Annotated[
        str, typer.Option(metavar="ISO-TIME", help="Simulated time of the first event")
    ] = "2026-01-01T00:00:00Z",
    create_topics: Annotated[
        bool, typer.Option(help="Create the simulated systems' topics first if missing")
    ] = False,
    topic_prefix: Annotated[
        str,
        typer.Option(
            envvar="CRM_TOPIC_PREFIX",
            help="Prefix of the deployment's topic names (its services' CRM_TOPIC_PREFIX)",
        ),
    ] = "",
) -> None:
    """Publish the bank's organisation, then core-banking, credit and management-accounting
    events about a simulated population until stopped."""
    structlog.configure(
        processors=[
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.add_log_level,
            structlog.processors.LogfmtRenderer(key_order=["timestamp", "level", "event"]),
        ],
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )
    names = _topic_names(topic_prefix)
    begin = _start(start)
    stream: Iterable[FeedEvent] = bank_feed(
        population(seed, customers),
        seed=seed,
        start=begin,
        poison_rate=poison_rate,
        route=names.of_event,
    )
    if events is not None:
        stream = islice(stream, events)
    try:
        asyncio.run(_run(bootstrap, stream, rate, create_topics, names))
    except (KafkaError, OSError) as error:
        log.error("failed", error=repr(error))
        raise typer.Exit(1) from None


async def _run(
    bootstrap: str,
    events: Iterable[FeedEvent],
    rate: float,
    create_topics: bool,
    names: TopicNames,
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    producer = UpstreamProducers(bootstrap, SIMULATED_SYSTEMS, names, linger_ms=5)
    if create_topics:
        log.info("topics", created=",".join(await producer.ensure_topics()) or "none")
    try:
        await producer.start()
        log.info("publishing", bootstrap=bootstrap, rate=rate or "unthrottled")
        progress = await publish(
            producer, events, rate=rate or None, stop=stop, report=_report("progress")
        )
    finally:
        await producer.stop()
    _report("stopped" if stop.is_set() else "done")(progress)


def _report(event: str) -> Callable[[Progress], None]:
    def report(progress: Progress) -> None:
        simulated = progress.simulated_time
        log.info(
            event,
            sent=progress.sent,
            delivered=progress.delivered,
            poison=progress.poison,
            rate=round(progress.rate, 1),
            elapsed=round(progress.elapsed, 1),
            simulated_time=simulated.isoformat() if simulated else None,
        )

    return report


@app.command("day")
def day_command(
    service: Annotated[
        list[str], typer.Option(metavar="NAME=URL", help="A service's base URL, e.g. customer=...")
    ],
    oidc_issuer: Annotated[
        str,
        typer.Option(envvar="CRM_OIDC_ISSUER", help="The identity provider's issuer (realm URL)"),
    ],
    secrets_dir: Annotated[
        Path | None,
        typer.Option(
            envvar="CRM_SECRETS_DIR",
            help="The secrets folder: the staff users' password and a file per upstream "
            "system's client secret, under keycloak/ (the local launcher's)",
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the population")] = 42,
    customers: Annotated[int, typer.Option(min=1, help="Size of the population")] = 200,
) -> None:
    """Run a scripted day of the bank's work through the services' APIs, each call with
    the token of the staff member or upstream system making it."""
    urls = dict(value.split("=", 1) for value in service)
    if secrets_dir is None:
        raise typer.BadParameter("give --secrets-dir (or CRM_SECRETS_DIR): the realm's secrets")
    logins = Logins.from_secrets(oidc_issuer, secrets_dir)
    reports = asyncio.run(scripted_day(urls, population(seed, customers), seed, logins))
    for name, report in reports.items():
        log.info("day done", service=name, calls=report.calls, refused=report.refused)
