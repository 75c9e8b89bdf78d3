"""The whole benchmark in one run: the limits, the baseline and ours, on the genuine servers.

Every topic, database and consumer group is the run's own (``bench.<run>.*``,
``bench_<run>*``). Topics and databases are removed at the end (consumer groups, empty
once their topics are gone, expire with Kafka's offset retention); the service processes
it starts are stopped by PID, on errors and SIGTERM too.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import os
import signal
import tempfile
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import psycopg
from aiokafka.admin import AIOKafkaAdminClient
from crm_backbone.eventstore import EventStoreConfig
from crm_backbone.readmodel import guard_key
from crm_backbone.settings import ensure_database
from crm_customer.application import CustomerApplication
from crm_customer.balance_history import BalanceHistory
from crm_customer.bootstrap import CustomerSettings
from crm_customer.performance_view import ManagerPerformanceView
from crm_customer.views.documents import CUSTOMERS
from crm_events.topics import COREBANKING_ACCOUNTS, COREBANKING_CUSTOMERS, CUSTOMER_EVENTS
from crm_simulator.feed import organisation_feed
from crm_simulator.population import SimulatedCustomer, population
from local_infra.accounts import LocalSecrets
from local_infra.tokens import RealmTokens
from pymongo import AsyncMongoClient

from bench import http_load, limits, pipeline, report, sealed
from bench.bank import CRM_SOURCE, START, Expected, crm_history, upstream
from bench.common import (
    OUTPUT,
    CpuMeter,
    Database,
    Names,
    Servers,
    grant_customer_service,
    machine,
    servers,
)
from bench.common import create_topics as create
from bench.service import MB, ServiceProcess, customer_process

VIEW_TOPICS = (CUSTOMER_EVENTS.name, COREBANKING_ACCOUNTS.name, COREBANKING_CUSTOMERS.name)
"""The streams the single customer view is fed from in this benchmark."""
RELAY_POSTGRES = "relay.postgres"
DEAD_LETTERS = "deadletter"
ACCOUNT_EVENTS_PER_HTTP_CUSTOMER = 5
UPSTREAM_SYSTEM = "core-banking"
"""Whose service account sends the commands: core banking feeding the CRM."""


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/run.py",
        description=__doc__,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--customers", type=int, default=10_000, help="synthetic customers")
    parser.add_argument(
        "--events",
        type=int,
        default=200_000,
        help="events in all: each customer's CRM history (~4.4 each), the rest core banking's",
    )
    parser.add_argument(
        "--large",
        action="store_true",
        help="1,000,000 events about 100,000 customers (rebuilds 1M for real; ~13 min)",
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--batch", type=int, default=1000, help="records per consumer batch")
    parser.add_argument(
        "--baseline-events", type=int, default=10_000, help="events the per-event baseline consumes"
    )
    parser.add_argument(
        "--http-customers",
        type=int,
        default=2_000,
        help="customers registered through the HTTP API",
    )
    parser.add_argument("--concurrency", type=int, default=16, help="HTTP requests in flight")
    parser.add_argument("--steady-rate", type=float, default=200, help="commands/s")
    parser.add_argument("--steady-seconds", type=float, default=30)
    parser.add_argument("--read-seconds", type=float, default=20)
    parser.add_argument(
        "--flow-rate",
        type=float,
        default=200,
        help="core-banking events/s into the worker during the reads",
    )
    args = parser.parse_args()
    if args.large:
        args.customers, args.events = 100_000, 1_000_000
    args.http_customers = min(args.http_customers, args.customers)
    return args


class Phases:
    """Runs and times the phases, and says which process used the cores in each."""

    def __init__(self, found: Servers, mongo: AsyncMongoClient[dict[str, Any]]) -> None:
        self.processes = {"bench": os.getpid(), **found.pids}
        self.mongo = mongo
        self.cpu: dict[str, dict[str, float]] = {}
        self.seconds: dict[str, float] = {}
        self.pauses: dict[str, list[float]] = {}
        """The service's full garbage collections (ms) in each phase it ran in."""
        self.updated: dict[str, float] = {}
        """MongoDB documents updated per event, in the phases given their events (MongoDB
        counts no document an upsert creates)."""

    @contextlib.asynccontextmanager
    async def __call__(
        self,
        key: str,
        label: str,
        service: ServiceProcess | None = None,
        events: int = 0,
        worker: ServiceProcess | None = None,
    ) -> AsyncIterator[None]:
        """Time a phase; ``service`` is the API's process (its GCs are counted), ``worker``
        the service's relay and consumers."""
        print(f"  {label} ...", end="", flush=True)
        updated = await self._updated() if events else 0
        ours = {"service": service, "worker": worker}
        meter = CpuMeter(self.processes | {k: p.pid for k, p in ours.items() if p is not None})
        began = time.monotonic()
        yield
        ended = time.monotonic()
        self.seconds[key] = ended - began
        self.cpu[key] = meter.cores()
        if service is not None:
            self.pauses[key] = service.full_collections(began, ended)
        if events:
            self.updated[key] = round((await self._updated() - updated) / events, 2)
        print(f" {self.seconds[key]:.1f} s", flush=True)

    async def _updated(self) -> int:
        """MongoDB's count of documents updated so far (the whole server)."""
        status = await self.mongo.admin.command("serverStatus")
        return int(status["metrics"]["document"]["updated"])


async def run(args: argparse.Namespace, found: Servers) -> None:
    # SIGTERM, like Ctrl-C, unwinds the run: its service processes and data are removed.
    main = asyncio.current_task()
    assert main is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main.cancel)
    names = Names()
    started = datetime.now(UTC)
    busy = await asyncio.to_thread(psutil.cpu_percent, 3)
    print(
        f"bench run {names.run}: {found.kafka.bootstrap}, {found.mongo}, PostgreSQL; "
        f"machine {busy:.0f}% busy before it"
    )
    if busy > 10:
        print("  other processes are running: they take cores from every figure")
    figures = report.Figures()
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(found.mongo, tz_aware=True)
    phases = Phases(found, mongo)
    try:
        with tempfile.TemporaryDirectory(prefix="crm-bench-") as tmp:
            settings = await _pipeline(args, found, names, phases, figures, mongo, Path(tmp))
            await _http(args, found, names, phases, figures, mongo, Path(tmp))
    finally:
        await _clean(found, names, mongo)
        await mongo.close()
    table = report.rows(figures, settings)
    duration = (datetime.now(UTC) - started).total_seconds()
    info = machine(found)
    context = {
        "run": names.run,
        "started": started.isoformat(),
        "seconds": round(duration),
        "machine": info,
        "cpu_busy_before_percent": busy,
        "phase_seconds": {k: round(v, 1) for k, v in phases.seconds.items()},
        "cpu_cores_used": phases.cpu,
        "service_full_gc_pauses_ms": phases.pauses,
        "mongodb_documents_updated_per_event": phases.updated,
        "notes": [
            "The HTTP load generator runs in the benchmark's process, on the same cores as "
            "the service and the servers: cpu_cores_used says who had them.",
            "command → view: from sending the command to the view's position for the "
            "customer reaching the command's version (a change stream, in this process).",
            "rebuild: 1M seconds extrapolated linearly unless the run had 1M events (--large).",
        ],
    }
    path = report.write(OUTPUT, figures=figures, table=table, settings=settings, context=context)
    print(
        f"\n{settings['events']:,} events about {settings['customers']:,} customers, "
        f"{info['cores']} cores ({info['cpu']}), {info['memory_gb']} GB, Python "
        f"{info['python']}; {duration / 60:.1f} min\n"
    )
    print(report.markdown(table))
    print("\ncores used per phase (the load generator is `bench`):\n")
    print(report.cpu_table(phases.cpu, phases.seconds, phases.pauses, phases.updated))
    missed = [r for r in table if r.met is False]
    print(f"\ntargets met: {sum(r.met is True for r in table)}, missed: {len(missed)}")
    for r in missed:
        print(f"  missed: {r.figure}: {r.ours} ({r.target}; {r.miss})")
    print(f"written to {path.relative_to(OUTPUT.parents[1])}")


async def _pipeline(
    args: argparse.Namespace,
    found: Servers,
    names: Names,
    phases: Phases,
    figures: report.Figures,
    mongo: AsyncMongoClient[dict[str, Any]],
    tmp: Path,
) -> dict[str, Any]:
    """Limits, relay, projection, baseline and rebuild; the run's settings."""
    kafka = found.kafka
    topics = names.topics.of(VIEW_TOPICS)
    await create(kafka, [*topics, names.topics(RELAY_POSTGRES), names.topics(DEAD_LETTERS)])
    async with phases("population", f"making {args.customers:,} customers"):
        customers = population(args.seed, args.customers)
    expected = Expected()

    sqlite = EventStoreConfig(sqlite_path=tmp / "relay.sqlite")
    async with phases("history_sqlite", "CRM history into an SQLite event store"):
        app = CustomerApplication(env=sqlite.environment())
        crm_events = crm_history(app, customers, args.seed, expected)
    try:
        async with phases("relay_sqlite", f"relay, SQLite store ({crm_events:,} events)"):
            figures.relay_sqlite = await pipeline.relay_rate(app, kafka, topics[0])
    finally:
        app.close()

    dsn = ensure_database(found.postgres, names.database("relay"))
    async with phases("history_postgres", "CRM history into a PostgreSQL event store"):
        app = CustomerApplication(env=EventStoreConfig(postgres_dsn=dsn).environment())
        crm_history(app, customers, args.seed)
    try:
        async with phases("relay_postgres", f"relay, PostgreSQL store ({crm_events:,} events)"):
            figures.relay_postgres = await pipeline.relay_rate(
                app, kafka, names.topics(RELAY_POSTGRES), dsn
            )
    finally:
        app.close()

    core = args.events - crm_events
    if core <= 0:
        raise SystemExit(f"--events must exceed the {crm_events:,} CRM events")

    chunks = upstream(customers, args.seed, core, names.topics.of_event, expected)
    async with phases("produce", f"Kafka produce, bare ({core:,} core-banking events)"):
        figures.produce = await limits.produce_rate(kafka, chunks)
    total = expected.events
    async with phases("consume", f"Kafka consume, bare ({total:,} records)"):
        figures.consume = await limits.consume_rate(kafka, topics, total)
    raw = mongo[names.database("raw")]
    async with phases("upsert", "MongoDB bulk upsert, bare", events=total):
        figures.upsert = await limits.bulk_upsert_rate(raw, expected.targets, args.batch)
    figures.raw_document_bytes = await _average_size(raw, "raw")
    await mongo.drop_database(raw.name)

    view: Database = mongo[names.database("view")]
    group, dlq = names.group("customer_view"), names.topics(DEAD_LETTERS)
    sample = min(args.baseline_events, total)
    async with phases("projection", "projection into the single customer view", events=total):
        figures.projection, figures.projection_early = await pipeline.projection_rate(
            kafka, view, topics, group, dlq, total, args.batch, sample
        )
    await pipeline.verify(view, expected)
    figures.view_document_bytes = await _average_size(view, CUSTOMERS)
    run = sealed.Run(found, names, phases, figures, customers, args.seed, tmp)
    await sealed.sealed_phases(run, mongo, VIEW_TOPICS, expected, core, args.batch)
    async with phases("baseline", f"per-event baseline ({sample:,} events)", events=sample):
        figures.baseline = await pipeline.baseline_rate(
            kafka, mongo[names.database("baseline")], topics, names.group("baseline"), sample
        )
    async with phases("rebuild", "rebuild of the view from offset 0", events=total):
        figures.rebuilt, figures.rebuild = await pipeline.rebuild_rate(kafka, view, topics, group)
    await pipeline.verify(view, expected)
    accounts = [names.topics(COREBANKING_ACCOUNTS.name)]
    async with phases("rebuild_balance_history", "rebuild of the balance history from offset 0"):
        (
            figures.rebuilt_balance_history,
            figures.rebuild_balance_history,
        ) = await pipeline.rebuild_rate(
            kafka, view, accounts, names.group(BalanceHistory.name), BalanceHistory()
        )
    # The bench's book has no opportunity or contact-log events: the topics it has.
    league_topics = names.topics.of((CUSTOMER_EVENTS.name, COREBANKING_ACCOUNTS.name))
    league = ManagerPerformanceView()
    async with phases("rebuild_manager_performance", "rebuild of the league's read model"):
        (
            figures.rebuilt_manager_performance,
            figures.rebuild_manager_performance,
        ) = await pipeline.rebuild_rate(
            kafka, view, league_topics, names.group(league.name), league
        )
    return {
        "customers": args.customers,
        "events": total,
        "crm_events": crm_events,
        "core_banking_events": core,
        "seed": args.seed,
        "batch": args.batch,
        "baseline_events": sample,
        "http_customers": args.http_customers,
        "concurrency": args.concurrency,
        "steady_rate": args.steady_rate,
        "steady_seconds": args.steady_seconds,
        "read_seconds": args.read_seconds,
        "flow_rate": args.flow_rate,
    }


async def _http(
    args: argparse.Namespace,
    found: Servers,
    names: Names,
    phases: Phases,
    figures: report.Figures,
    mongo: AsyncMongoClient[dict[str, Any]],
    tmp: Path,
) -> None:
    """The customer service as make run runs it, its API and its worker in processes of
    their own, every request with a token of the genuine identity provider: commands,
    command → view, reads while events flow, reads with and without token validation, RSS."""
    customers = population(args.seed, args.customers)[: args.http_customers]
    data, log = tmp / "service", OUTPUT / "logs" / f"service-{names.run}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    if found.secrets_dir is None:
        raise SystemExit("the bench's HTTP phases need the servers' secrets (CRM_SECRETS_DIR)")
    tokens = RealmTokens(found.oidc_issuer, LocalSecrets.in_folder(found.secrets_dir))
    await grant_customer_service(found.kafka, names)
    system = functools.partial(tokens.service_token, UPSTREAM_SYSTEM)
    label = f"commands via HTTP, API only ({len(customers):,} customers)"
    async with customer_process(found, names, data, role="api", log=log) as api:
        async with phases("commands", label, api):
            commands, versions = await http_load.commands(
                api.url, customers, args.concurrency, system
            )
        rss = (api.peak_rss / MB, api.rss() / MB, "commands")
        figures.rss["customer API (serve --no-workers)"] = rss
        figures.commands = commands.rate
        figures.commands_p50, figures.commands_p99 = commands.ms(50), commands.ms(99)

        expected = Expected()
        expected.positions = {guard_key(CRM_SOURCE, c): v for c, v in versions.items()}
        db: Database = mongo[CustomerSettings(namespace=names.namespace).mongo_database("customer")]
        core = names.service_topics(COREBANKING_ACCOUNTS.name)

        # The first chunk catches the view up; the rest flows during the reads.
        count = len(customers) * ACCOUNT_EVENTS_PER_HTTP_CUSTOMER
        flowing = round(args.flow_rate * (args.read_seconds + 10))
        chunks = upstream(
            customers,
            args.seed,
            count + flowing,
            names.service_topics.of_event,
            expected,
            only=core,
            chunk=count,
        )
        readers = _readers(customers, versions, tokens, args.concurrency)
        book_readers = [r.reader for r in readers]
        async with customer_process(found, names, data, role="worker", log=log) as worker:
            label = "service catching up (relay, accounts, organisation, projection)"
            async with phases("catch_up", label, api, worker=worker):
                hr = list(organisation_feed(start=START, route=names.service_topics.of_event))
                await limits.produce_rate(found.kafka, [hr, next(chunks)])
                await http_load.caught_up(db, expected.positions)
                await http_load.staff_placed(db, [r.staff_id for r in readers])
            label = f"command → view at {args.steady_rate:g}/s"
            async with phases("steady", label, api, worker=worker):
                steady = await http_load.steady(
                    api.url, db, list(versions), args.steady_rate, args.steady_seconds, system
                )
            worker_steady = worker.rss()
            flowed = http_load.Flow()
            events = (event for chunk in chunks for event in chunk)
            sending = asyncio.create_task(
                http_load.flow(found.kafka, events, args.flow_rate, flowed)
            )
            label = f"GET /customers/{{id}}/view, {args.flow_rate:g} events/s flowing"
            try:
                async with phases("reads", label, api, worker=worker):
                    reads = await http_load.reads(
                        api.url, book_readers, args.read_seconds, args.seed
                    )
            finally:
                sending.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sending
            # Two fresh API processes, started together: neither is warmer than the other.
            label = "GET /customers/{id}/view, token validated against unchecked"
            unchecked_log = log.with_name(f"service-{names.run}-unchecked.log")
            async with (
                customer_process(found, names, data, role="api", log=log) as checking,
                customer_process(
                    found, names, data, role="api", log=unchecked_log, tokens="unchecked"
                ) as unchecked,
                phases("token_validation", label, checking, worker=worker),
            ):
                validated, without = await http_load.validated_against_unchecked(
                    checking.url,
                    unchecked.url,
                    [r.reader for r in readers],
                    args.read_seconds,
                    args.seed,
                )
            rss = (worker.peak_rss / MB, worker_steady / MB, "steady")
            figures.rss["customer worker (relay, consumers)"] = rss
    figures.steady_offered = steady.offered_rate
    figures.steady_commands_p99 = steady.commands.ms(99)
    figures.to_view_p50, figures.to_view_p99 = steady.to_view_ms(50), steady.to_view_ms(99)
    figures.to_view_unseen = steady.unseen
    figures.reads, figures.reads_p50, figures.reads_p99 = reads.rate, reads.ms(50), reads.ms(99)
    figures.reads_flow = flowed.rate
    figures.reads_validated, figures.reads_validated_p99 = validated.rate, validated.ms(99)
    figures.reads_unchecked, figures.reads_unchecked_p99 = without.rate, without.ms(99)


@dataclass(frozen=True)
class BookReader:
    """A relationship manager of the simulated bank reading their own book."""

    staff_id: str
    reader: http_load.Reader


def _readers(
    customers: Sequence[SimulatedCustomer],
    registered: Mapping[str, int],
    tokens: RealmTokens,
    count: int,
) -> list[BookReader]:
    """The ``count`` relationship managers with the most registered customers, each with
    their own token (their demo user's) and book."""
    books: dict[str, list[str]] = defaultdict(list)
    for customer in customers:
        if customer.customer_id in registered:
            books[customer.manager_id].append(customer.customer_id)
    largest = sorted(books, key=lambda staff_id: (-len(books[staff_id]), staff_id))[:count]
    return [
        BookReader(
            staff_id,
            http_load.Reader(
                functools.partial(tokens.staff_token, staff_id.lower()), books[staff_id]
            ),
        )
        for staff_id in largest
    ]


async def _average_size(db: Database, collection: str) -> int:
    return int((await db.command("collStats", collection))["avgObjSize"])


async def _clean(found: Servers, names: Names, mongo: AsyncMongoClient[dict[str, Any]]) -> None:
    """Remove the run's topics, MongoDB and PostgreSQL databases."""
    for name in await mongo.list_database_names():
        if name.startswith(names.namespace):
            await mongo.drop_database(name)
    await grant_customer_service(found.kafka, names, grant=False)
    admin = AIOKafkaAdminClient(bootstrap_servers=found.kafka.bootstrap, **found.kafka.login)
    await admin.start()
    try:
        ours = [t for t in await admin.list_topics() if t.startswith(names.prefix)]
        if ours:
            await admin.delete_topics(ours)
    finally:
        await admin.close()
    with psycopg.connect(found.postgres, autocommit=True) as conn:
        for database in ("relay", *sealed.DATABASES):
            conn.execute(f'DROP DATABASE IF EXISTS "{names.database(database)}" WITH (FORCE)')


def main() -> None:
    args = arguments()
    found = servers()  # asks the servers with asyncio.run: before the benchmark's loop
    try:
        asyncio.run(run(args, found))
    except (KeyboardInterrupt, asyncio.CancelledError):
        message = "\ninterrupted: the run's processes, topics and databases are removed"
        raise SystemExit(message) from None
