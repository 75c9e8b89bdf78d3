"""``crm-ops``: the operators' command line.

Every command talks to the genuine servers (addresses from ``CRM_KAFKA_BOOTSTRAP`` and
``CRM_MONGO_URI``, as ``crm-infra`` writes them) and says clearly which one is down.
"""

from __future__ import annotations

import asyncio
import getpass
import importlib
import json
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, TextIO, TypeVar

import httpx
import typer
from aiokafka.errors import KafkaError
from crm_backbone.kafka import ensure_topics
from crm_backbone.projection import Projection
from crm_backbone.rebuild import Progress, abort_rebuild, rebuild, replay
from crm_backbone.serve import WORKER_PORT_OFFSET
from crm_backbone.settings import ServiceSettings
from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError
from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
from rich.progress import Progress as ProgressBar
from rich.table import Table

from crm_ops.deadletters import (
    DeadLetter,
    DeadLetterLedger,
    Holding,
    holding,
    purge,
    read_all,
    redrive,
)
from crm_ops.kafka_state import group_lag, verify_topics

T = TypeVar("T")
OFF_TERMINAL_WIDTH = 100_000
"""Columns of the console when output goes to a pipe or a file: lines are never cut."""


def _console_for(stream: TextIO) -> Console:
    """At a terminal, its width; elsewhere (a pipe, a file) wide enough never to cut a line."""
    return Console(width=None if stream.isatty() else OFF_TERMINAL_WIDTH)


console = _console_for(sys.stdout)
app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
topics_app = typer.Typer(no_args_is_help=True, help="The contract's topics on the broker.")
dlq_app = typer.Typer(no_args_is_help=True, help="Dead letters: inspect, redrive, purge.")
relay_app = typer.Typer(no_args_is_help=True, help="Each service's relay (event store -> Kafka).")
app.add_typer(topics_app, name="topics")
app.add_typer(dlq_app, name="dlq")
app.add_typer(relay_app, name="relay")

Bootstrap = Annotated[
    str, typer.Option(envvar="CRM_KAFKA_BOOTSTRAP", help="Kafka bootstrap servers")
]
MongoUri = Annotated[str, typer.Option(envvar="CRM_MONGO_URI", help="MongoDB URI")]
Actor = Annotated[str, typer.Option(help="Who is acting (recorded)")]
Reason = Annotated[str, typer.Option(help="Why (recorded)")]
USER = getpass.getuser()
DEFAULT_KAFKA = "127.0.0.1:19092"
DEFAULT_MONGO = "mongodb://127.0.0.1:27117/?replicaSet=rs0"
API_PORTS = {"customer": 8101, "opportunity": 8102, "campaign": 8103, "contact-log": 8104}
WORKERS = {
    name: f"http://127.0.0.1:{port + WORKER_PORT_OFFSET}" for name, port in API_PORTS.items()
}
"""Where make run's worker processes (relay and consumers) answer."""


def _table(*headers: str, **options: Any) -> Table:
    """A table that never cuts a value (ids, consumer group and topic names): on a
    terminal too narrow for it, a long value folds onto the next line of its cell."""
    table = Table(**options)
    for header in headers:
        table.add_column(header, overflow="fold")
    return table


def _run(work: Callable[[], Coroutine[Any, Any, T]], what: str) -> T:
    """Run ``work``; a server that does not answer is a clear error, exit code 2."""
    try:
        return asyncio.run(work())
    except KafkaError as error:
        console.print(f"[red]Kafka does not answer ({what}): {error!r}[/red]")
    except PyMongoError as error:
        console.print(f"[red]MongoDB does not answer ({what}): {error}[/red]")
    raise typer.Exit(2)


# topics ------------------------------------------------------------------------------


@topics_app.command("verify")
def topics_verify(bootstrap: Bootstrap = DEFAULT_KAFKA) -> None:
    """Check every contract topic exists with its partitions and settings (exit 1 if not)."""
    checks = _run(lambda: verify_topics(bootstrap), bootstrap)
    table = _table("topic", "state")
    for check in checks:
        table.add_row(
            check.name, "[green]ok[/green]" if check.ok else "[red]" + "; ".join(check.problems)
        )
    console.print(table)
    if not all(check.ok for check in checks):
        raise typer.Exit(1)


@topics_app.command("create")
def topics_create(bootstrap: Bootstrap = DEFAULT_KAFKA) -> None:
    """Create the contract's missing topics."""
    created = _run(lambda: ensure_topics(bootstrap), bootstrap)
    console.print(f"created: {', '.join(created) or 'none (all present)'}")


# projections -------------------------------------------------------------------------


@app.command("projections")
def projections(
    bootstrap: Bootstrap = DEFAULT_KAFKA,
    mongo_uri: MongoUri = DEFAULT_MONGO,
    namespace: Annotated[str, typer.Option(help="Consumer groups' prefix")] = "crm",
) -> None:
    """Each consumer group: position and lag per partition, and its last dead letter."""

    async def gather() -> tuple[list[Any], dict[str, DeadLetter]]:
        lags = await group_lag(bootstrap, f"{namespace}.")
        last: dict[str, DeadLetter] = {}
        async for letter in read_all(bootstrap):
            last[letter.header("dlq_consumer")] = letter
        return lags, last

    lags, last_errors = _run(gather, bootstrap)
    parked = _run(lambda: _holding(mongo_uri), mongo_uri)
    table = _table("consumer group", "topic", "partition", "position", "end", "lag", "parked")
    shown: set[str] = set()
    for row in lags:
        waiting = parked.parked_for(row.group)
        parked_column = "" if row.group in shown else f"[yellow]{waiting}" if waiting else "0"
        shown.add(row.group)
        table.add_row(row.group, row.topic, str(row.partition), str(row.committed), str(row.end),
                      f"[yellow]{row.lag}" if row.lag else "0", parked_column)  # fmt: skip
    console.print(table)
    for group in sorted({row.group for row in lags}):
        letter = last_errors.get(group)
        if letter is not None:
            when, code = letter.header("dlq_time"), letter.header("dlq_code")
            console.print(f"{group}: last error {when} [{code}] {letter.header('dlq_reason')}")


# rebuild and replay ------------------------------------------------------------------


@dataclass(frozen=True)
class View:
    service: str
    projection: str  # "module:Class" of the Projection

    def load(self) -> Projection:
        module, _, name = self.projection.partition(":")
        projection: Projection = getattr(importlib.import_module(module), name)()
        return projection


VIEWS = {
    "customer_view": View("customer", "crm_customer.views:CustomerViews"),
    "opportunity_view": View("opportunity", "crm_opportunity.views:OpportunityViews"),
    "campaign_tracking": View("campaign", "crm_campaign.views:CampaignTracking"),
    "contact_log_view": View("contact-log", "crm_contactlog.views:ContactLogViews"),
}
"""Every read model ops can rebuild, by its projection's name."""

ViewName = Annotated[str, typer.Argument(help=f"One of: {', '.join(VIEWS)}")]
Namespace = Annotated[str, typer.Option(help="Namespace of databases and consumer groups")]


def _view(name: str) -> tuple[View, Projection]:
    if name not in VIEWS:
        console.print(f"[red]no view {name!r}; known: {', '.join(VIEWS)}")
        raise typer.Exit(1)
    view = VIEWS[name]
    return view, view.load()


def _progress_bar() -> tuple[ProgressBar, Callable[[Progress], None]]:
    bar = ProgressBar(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:,.0f} events/s"), TimeRemainingColumn(),
        console=console,
    )  # fmt: skip
    task = bar.add_task("applying", total=None, rate=0.0)

    def report(progress: Progress) -> None:
        bar.update(task, completed=progress.done, total=progress.total, rate=progress.rate)

    return bar, report


@app.command("rebuild")
def rebuild_view(
    view_name: ViewName,
    bootstrap: Bootstrap = DEFAULT_KAFKA,
    mongo_uri: MongoUri = DEFAULT_MONGO,
    namespace: Namespace = "crm",
    keep_old: Annotated[bool, typer.Option(help="Keep the old collections")] = False,
    abort: Annotated[
        bool,
        typer.Option(
            help="Instead: end a rebuild's pause of the live consumer at once and drop the "
            "view it was building (after a rebuild was killed)"
        ),
    ] = False,
) -> None:
    """Rebuild a view from the beginning of its streams; switch once caught up."""
    view, projection = _view(view_name)
    settings = ServiceSettings(namespace=namespace)
    live_group = f"{namespace}.{view.service}.{projection.name}"
    if abort:
        _abort_rebuild(view_name, mongo_uri, settings.mongo_database(view.service), live_group)
        return

    async def work() -> Progress:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_uri)
        bar, report = _progress_bar()
        try:
            with bar:
                return await rebuild(
                    projection, client[settings.mongo_database(view.service)],
                    bootstrap=bootstrap, live_group=live_group, keep_old=keep_old, report=report,
                )  # fmt: skip
        finally:
            await client.close()

    done = _run(work, bootstrap)
    console.print(
        f"rebuilt {view_name}: {done.done:,} events at {done.rate:,.0f} events/s; "
        f"{done.set_aside} could not be applied (already dead-lettered by the live consumer)"
    )


def _abort_rebuild(view_name: str, mongo_uri: str, database: str, live_group: str) -> None:
    async def work() -> Any:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_uri)
        try:
            return await abort_rebuild(client[database], live_group)
        finally:
            await client.close()

    aborted = _run(work, mongo_uri)
    console.print(
        f"{view_name}: "
        + ("pause ended, the live consumer goes on" if aborted.pause_ended else "no pause on")
        + "; "
        + ("half-built view dropped" if aborted.scratch_dropped else "no half-built view")
    )


@app.command("replay")
def replay_view(
    view_name: ViewName,
    start: Annotated[str, typer.Option("--from", help="ISO time, or an offset (integer)")],
    bootstrap: Bootstrap = DEFAULT_KAFKA,
    mongo_uri: MongoUri = DEFAULT_MONGO,
    namespace: Namespace = "crm",
) -> None:
    """Reapply a view's streams from a time or an offset (safe: the view is idempotent)."""
    view, projection = _view(view_name)
    settings = ServiceSettings(namespace=namespace)
    since_ms, offset = None, None
    if start.isdigit():
        offset = int(start)
    else:
        since_ms = int(datetime.fromisoformat(start).timestamp() * 1000)

    async def work() -> Progress:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_uri)
        bar, report = _progress_bar()
        try:
            with bar:
                return await replay(
                    projection, client[settings.mongo_database(view.service)],
                    bootstrap=bootstrap,
                    consumer_group=f"{namespace}.{view.service}.{projection.name}",
                    since_ms=since_ms, from_offset=offset, report=report,
                )  # fmt: skip
        finally:
            await client.close()

    done = _run(work, bootstrap)
    console.print(f"replayed {view_name}: {done.done:,} events at {done.rate:,.0f} events/s")


# dead letters ------------------------------------------------------------------------


def _ledger(mongo_uri: str) -> tuple[AsyncMongoClient[dict[str, Any]], DeadLetterLedger]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        mongo_uri, serverSelectionTimeoutMS=5000
    )
    return client, DeadLetterLedger(client["crm_ops"]["dead_letter_actions"])


async def _letters(
    bootstrap: str, mongo_uri: str, pending_only: bool
) -> tuple[list[DeadLetter], dict[str, dict[str, Any]]]:
    client, ledger = _ledger(mongo_uri)
    try:
        done = await ledger.done()
    finally:
        await client.close()
    letters = [
        letter async for letter in read_all(bootstrap) if not (pending_only and letter.id in done)
    ]
    return letters, done


async def _holding(mongo_uri: str) -> Holding:
    client, _ = _ledger(mongo_uri)
    try:
        return await holding(client)
    finally:
        await client.close()


@dlq_app.command("list")
def dlq_list(
    bootstrap: Bootstrap = DEFAULT_KAFKA,
    mongo_uri: MongoUri = DEFAULT_MONGO,
    all_letters: Annotated[bool, typer.Option("--all", help="Include redriven and purged")] = False,
    consumer: Annotated[str | None, typer.Option(help="Only this consumer group")] = None,
) -> None:
    """Dead letters with their reasons (pending ones unless --all)."""
    letters, done = _run(lambda: _letters(bootstrap, mongo_uri, not all_letters), bootstrap)
    held = _run(lambda: _holding(mongo_uri), mongo_uri)
    table = _table("id", "code", "reason", "from", "consumer", "time", "state", "holds back")
    for letter in letters:
        if consumer and letter.header("dlq_consumer") != consumer:
            continue
        action = done.get(letter.id)
        behind = held.held_by(letter)
        table.add_row(
            letter.id, letter.header("dlq_code"), letter.header("dlq_reason")[:80],
            f"{letter.header('dlq_topic')}[{letter.header('dlq_partition')}]@"
            f"{letter.header('dlq_offset')}",
            letter.header("dlq_consumer"), letter.header("dlq_time")[:19],
            f"{action['action']} by {action['actor']}" if action else "pending",
            "-" if behind is None else f"its aggregate, {behind} parked",
        )  # fmt: skip
    console.print(table)


@dlq_app.command("show")
def dlq_show(
    letter_id: Annotated[str, typer.Argument(help="partition:offset in the dead-letter topic")],
    bootstrap: Bootstrap = DEFAULT_KAFKA,
    mongo_uri: MongoUri = DEFAULT_MONGO,
) -> None:
    """One dead letter: every header and its body."""
    letters, done = _run(lambda: _letters(bootstrap, mongo_uri, False), bootstrap)
    letter = next((item for item in letters if item.id == letter_id), None)
    if letter is None:
        console.print(f"[red]no dead letter {letter_id}[/red]")
        raise typer.Exit(1)
    console.print(f"key: {letter.key!r}")
    for name, value in letter.headers:
        console.print(f"{name}: {value.decode(errors='replace')}")
    try:
        console.print_json(json.dumps(json.loads(letter.value or b"")))
    except ValueError:
        console.print(f"body (not JSON): {letter.value!r}")
    if letter.id in done:
        console.print(f"state: {done[letter.id]}")


def _act(
    ids: list[str], bootstrap: str, mongo_uri: str, actor: str, reason: str, send: bool
) -> None:
    async def work() -> int:
        letters, _ = await _letters(bootstrap, mongo_uri, True)
        chosen = [letter for letter in letters if letter.id in ids]
        missing = set(ids) - {letter.id for letter in chosen}
        if missing:
            console.print(f"[red]not pending (unknown, redriven or purged): {sorted(missing)}")
            raise typer.Exit(1)
        if send:
            await redrive(bootstrap, chosen)
        client, ledger = _ledger(mongo_uri)
        try:
            if not send:
                await purge(client, chosen)
            for letter in chosen:
                await ledger.record(letter, "redriven" if send else "purged", actor, reason)
        finally:
            await client.close()
        return len(chosen)

    count = _run(work, bootstrap)
    console.print(f"{'redriven' if send else 'purged'}: {count} dead letter(s), by {actor}")


@dlq_app.command("redrive")
def dlq_redrive(
    ids: Annotated[list[str], typer.Argument(help="partition:offset of each letter")],
    reason: Reason,
    bootstrap: Bootstrap = DEFAULT_KAFKA,
    mongo_uri: MongoUri = DEFAULT_MONGO,
    actor: Actor = USER,
) -> None:
    """Send dead letters back to their topics (after the fix), recording who did it."""
    _act(ids, bootstrap, mongo_uri, actor, reason, send=True)


@dlq_app.command("purge")
def dlq_purge(
    ids: Annotated[list[str], typer.Argument(help="partition:offset of each letter")],
    reason: Reason,
    bootstrap: Bootstrap = DEFAULT_KAFKA,
    mongo_uri: MongoUri = DEFAULT_MONGO,
    actor: Actor = USER,
) -> None:
    """Drop dead letters for good, recording who did it and why."""
    _act(ids, bootstrap, mongo_uri, actor, reason, send=False)


# relays ------------------------------------------------------------------------------


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
    table = _table("service", "position", "head", "pending", "last success", "errors", "state",
                  box=box.SIMPLE_HEAD)  # fmt: skip
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
            table.add_row(name, f"{position:.0f}", f"{head:.0f}",
                          f"{max(head - position, 0):.0f}", age, f"{errors.get(relay, 0):.0f}",
                          state)  # fmt: skip
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
