"""The system under test, the stream that drives it, and how a scenario is measured.

:class:`System` is one scenario's customer pipeline on the suite's own servers, under
names of its own (topics, consumer groups, MongoDB and PostgreSQL databases): the event
store written by the suite's process, the relay and the projection workers each in a
child process of its own (``run_relay``, ``run_worker``), which a supervisor restarts
when one exits unplanned (counted and reported, as ``make run`` would restart it).

:class:`Driver` plays the plan: commands into the event store and upstream records to
Kafka, concurrently and paced, each retried through outages until it succeeds.

:func:`run_scenario` runs the stream, lets the scenario inject its fault, then measures
recovery: from the fault's end until every read model equals the ground truth and every
poison record is dead-lettered, then (once the consumer groups have consumed and committed
everything) the final count of events lost and applied twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError
from crm_backbone.eventstore import EventStoreConfig
from crm_backbone.holds import VIEW_PARKING_SUFFIX
from crm_backbone.kafka import reliable_producer
from crm_backbone.parking import PARKING_COLLECTION
from crm_backbone.projection import Document
from crm_customer.application import CustomerApplication
from crm_customer.views import CustomerViews
from crm_events.topics import (
    CONTACTLOG_EVENTS,
    COREBANKING_ACCOUNTS,
    COREBANKING_CUSTOMERS,
    CUSTOMER_EVENTS,
)
from eventsourcing.persistence import PersistenceError
from local_infra.infra import Infra
from local_infra.process import port_is_free
from local_infra.servers import Server
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from faults.child import READY
from faults.ledger import Ledger
from faults.workload import Command, Plan, Truth, Upstream, Verdict, compare, ground_truth
from faults.workload import run_command as execute

ROOT = Path(__file__).resolve().parents[1]
PREFIX = "fault_"
"""Every topic and database of the suite starts with it (leftovers are dropped at start)."""
TOPICS = (CUSTOMER_EVENTS, COREBANKING_ACCOUNTS, COREBANKING_CUSTOMERS, CONTACTLOG_EVENTS)
"""The contract topics the pipeline uses; each scenario has its own copy of each."""
PARTITIONS = 6
RETRY_FOR = 240.0
"""Seconds a command or a send keeps being retried through an outage before failing."""
TRANSIENT = (PersistenceError, psycopg.Error, OSError, KafkaError, TimeoutError)
"""What an outage raises in the suite's own clients: retried, not failed."""


async def until(
    condition: Callable[[], Awaitable[bool]], *, within: float, what: str, every: float = 0.2
) -> float:
    """Wait (bounded) until ``condition`` holds; seconds waited. TimeoutError says what."""
    started = time.monotonic()
    while not await condition():
        if time.monotonic() - started > within:
            raise TimeoutError(f"{what}: not within {within:.0f}s")
        await asyncio.sleep(every)
    return time.monotonic() - started


async def restart(server: Server, *, hard: bool, down_for: float = 2.0) -> float:
    """Stop ``server`` (SIGKILL when ``hard``), leave it down a moment, start it again and
    wait until it answers; the monotonic time it answered again (the fault's end)."""
    await asyncio.to_thread(server.stop, hard=hard)
    await asyncio.sleep(down_for)  # the outage itself, not a wait for a condition

    async def port_free() -> bool:
        # A killed JVM's threads may still hold the port for a moment after it is reaped.
        return port_is_free(server.port)

    await until(port_free, within=60, what=f"{server.name}'s port released")
    await asyncio.to_thread(server.launch)
    await asyncio.to_thread(server.wait_ready)
    return time.monotonic()


# --- Child processes -------------------------------------------------------------------


@dataclass
class Child:
    """A child process of the suite (``python -m <module> <config>``), owned by its PID."""

    name: str
    module: str
    config: dict[str, Any]
    logs: Path
    process: subprocess.Popen[bytes] | None = None
    launches: int = 0
    supervised: bool = True
    """Restarted by the supervisor when it exits; off while a planned death is awaited."""

    @property
    def log(self) -> Path:
        return self.logs / f"{self.name}.{self.launches}.log"

    def launch(self) -> None:
        self.launches += 1
        self.logs.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", self.module, json.dumps(self.config)],
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.supervised = True

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    async def wait_ready(self, within: float = 90) -> None:
        async def ready() -> bool:
            if not self.running():
                raise RuntimeError(f"{self.name} exited while starting:\n{self.tail()}")
            return READY in self.log.read_text(errors="replace")

        await until(ready, within=within, what=f"{self.name} ready")

    async def wait_exit(self, within: float) -> int:
        """Wait (bounded) for the process to exit by itself; its return code."""

        async def exited() -> bool:
            return not self.running()

        await until(exited, within=within, what=f"{self.name} exiting", every=0.05)
        assert self.process is not None
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL it now (no clean-up at all), and reap it."""
        if self.process is not None and self.running():
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def signal(self, signum: signal.Signals) -> None:
        assert self.process is not None
        assert self.running(), f"{self.name} is not running"
        os.kill(self.process.pid, signum)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after a grace period; always reaped."""
        self.supervised = False
        process = self.process
        if process is None or process.poll() is not None:
            return
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=30)

    def tail(self, lines: int = 15) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


# --- The system ------------------------------------------------------------------------


class System:
    """One scenario's pipeline: store, relay, projection workers, under its own names."""

    def __init__(
        self,
        infra: Infra,
        scenario: str,
        *,
        logs: Path,
        workers: int = 1,
        worker_die: dict[str, str] | None = None,
        worker_bug: dict[str, Any] | None = None,
        relay_die: bool = False,
    ) -> None:
        self.infra = infra
        self.scenario = scenario
        self.name = f"{PREFIX}{scenario}_{uuid.uuid4().hex[:6]}"
        self.topics = {topic.name: f"{self.name}.{topic.name}" for topic in TOPICS}
        self.dead_letter_topic = f"{self.name}.deadletter"
        self.groups = [f"{self.name}.{CustomerViews.name}", f"{self.name}.{Ledger.name}"]
        self.logs = logs / self.name
        self.store_dsn = self._dsn(self.name)
        self.mongo: AsyncMongoClient[Document] = AsyncMongoClient(
            infra.mongo.address, tz_aware=True, serverSelectionTimeoutMS=5000
        )
        self.database: AsyncDatabase[Document] = self.mongo[self.name]
        self.app: CustomerApplication | None = None
        self.relay = self.relay_child(die=relay_die)
        self.workers = [self.worker(n, worker_die, worker_bug) for n in range(workers)]
        self.children: list[Child] = [self.relay, *self.workers]
        self.unplanned_restarts: list[str] = []
        self.keep = False
        """Keep the topics and databases after the scenario (it failed: to look at)."""
        self._supervisor: asyncio.Task[None] | None = None

    # Wiring ----------------------------------------------------------------------------

    def _dsn(self, database: str) -> str:
        base, _, _ = self.infra.postgres.address.rpartition("/")
        return f"{base}/{database}"

    def relay_child(
        self,
        name: str = "relay",
        *,
        die: bool = False,
        replay: bool = False,
        reject: tuple[str, datetime] | None = None,
    ) -> Child:
        """The configuration of a relay (not started); ``reject`` = (a domain event's class,
        e.g. ``Customer.StatusChanged``; a time): a translator bug rejecting those events
        stored from that time on."""
        config = {
            "kafka": self.infra.kafka.address,
            "postgres": self.store_dsn,
            "topics": self.topics,
            "name": "replay" if replay else None,
            "die": die,
            "reject": reject and {"event": reject[0], "from": reject[1].isoformat()},
        }
        return Child(name, "faults.run_relay", config, self.logs)

    def worker(
        self, n: int, die: dict[str, str] | None = None, bug: dict[str, Any] | None = None
    ) -> Child:
        """The configuration of projection worker ``n`` (not started); ``die`` and ``bug``
        as ``run_worker`` says."""
        assert set(self.topics) <= set(CustomerViews.topics)
        config = {
            "kafka": self.infra.kafka.address,
            "mongo": self.infra.mongo.address,
            "database": self.name,
            "view_topics": list(self.topics.values()),
            "ledger_topics": list(self.topics.values()),
            "dead_letters": self.dead_letter_topic,
            "prefix": self.name,
            "max_records": 200,
            "die": die,
            "bug": bug,
        }
        return Child(f"worker{n}", "faults.run_worker", config, self.logs)

    def rebuild_child(self, lease: float) -> Child:
        """A rebuild of the customer view that dies holding the live consumer's pause
        (``run_rebuild``; not started, not supervised)."""
        config = {
            "kafka": self.infra.kafka.address,
            "mongo": self.infra.mongo.address,
            "database": self.name,
            "topics": list(self.topics.values()),
            "live_group": self.groups[0],
            "lease": lease,
        }
        return Child("rebuild", "faults.run_rebuild", config, self.logs)

    async def __aenter__(self) -> System:
        try:
            await self._start()
        except BaseException as error:
            await self.__aexit__(type(error))
            raise
        return self

    async def _start(self) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.infra.kafka.address)
        await admin.start()
        try:
            await admin.create_topics(
                [NewTopic(name, PARTITIONS, 1) for name in self.topics.values()]
                + [NewTopic(self.dead_letter_topic, 1, 1)]
            )
        finally:
            await admin.close()
        await asyncio.to_thread(self._create_store)
        for child in self.children:
            child.launch()
        for child in self.children:
            await child.wait_ready()
        self._supervisor = asyncio.create_task(self._supervise())

    def _create_store(self) -> None:
        with psycopg.connect(self.infra.postgres.address, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.name}"')
        store = EventStoreConfig(postgres_dsn=self.store_dsn)
        self.app = CustomerApplication(env=store.environment())

    async def __aexit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        for child in self.children:
            await asyncio.to_thread(child.stop)
        if self.app is not None:
            self.app.close()
        try:
            # Servers a failed scenario left down are started again for the next one.
            await asyncio.to_thread(self.infra.up)
            if kind is None and not self.keep:
                await self._drop()
        except Exception as error:
            if kind is None:
                raise
            print(f"\n{self.scenario}: clean-up after the failure failed too: {error!r}")
        finally:
            await self.mongo.close()

    async def _drop(self) -> None:
        """Remove the scenario's topics and databases (kept after a failure, to look at)."""
        for database in await self.mongo.list_database_names():
            if database.startswith(self.name):  # a rebuild's scratch database too
                await self.mongo.drop_database(database)
        admin = AIOKafkaAdminClient(bootstrap_servers=self.infra.kafka.address)
        await admin.start()
        try:
            await admin.delete_topics([*self.topics.values(), self.dead_letter_topic])
        finally:
            await admin.close()

        def drop_store() -> None:
            with psycopg.connect(self.infra.postgres.address, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')

        await asyncio.to_thread(drop_store)

    async def _supervise(self) -> None:
        """Restart a child that exited unplanned (a crash under a fault), counting it."""
        while True:
            for child in self.children:
                if child.supervised and child.process is not None and not child.running():
                    code = child.process.returncode
                    self.unplanned_restarts.append(f"{child.name} exited {code}")
                    print(f"\n{self.scenario}: {child.name} exited {code}:\n{child.tail()}")
                    child.launch()
            await asyncio.sleep(0.5)

    # Faults ----------------------------------------------------------------------------

    async def kill_at_armed_point(self, child: Child, within: float = 120) -> None:
        """Arm ``child``'s kill point (SIGUSR1) and wait until it killed itself there."""
        child.supervised = False
        child.signal(signal.SIGUSR1)
        code = await child.wait_exit(within)
        if code != -signal.SIGKILL:
            raise AssertionError(f"{child.name} exited {code}, not by SIGKILL:\n{child.tail()}")

    async def relaunch(self, old: Child, new: Child | None = None) -> float:
        """Start ``new`` (or ``old`` again) in ``old``'s place; the time it is ready."""
        child = new or old
        if new is not None:
            self.children[self.children.index(old)] = new
            if old in self.workers:
                self.workers[self.workers.index(old)] = new
            if old is self.relay:
                self.relay = new
            new.launches = old.launches
        child.launch()
        await child.wait_ready()
        return time.monotonic()

    async def start_replay_relay(self) -> Child:
        """A second relay with a position of its own: it republishes every stored event."""
        replay = self.relay_child("replay", replay=True)
        self.children.append(replay)
        replay.launch()
        await replay.wait_ready()
        return replay

    def relay_position(self, name: str | None = None) -> int:
        """The position the relay named ``name`` recorded (None: the pipeline's relay)."""
        assert self.app is not None
        tracking = self.app.factory.tracking_recorder()
        relay = f"{self.app.name}->kafka" + (f"-{name}" if name else "")
        return tracking.max_tracking_id(relay) or 0

    def store_head(self) -> int:
        assert self.app is not None
        return self.app.recorder.max_notification_id() or 0

    # Measuring -------------------------------------------------------------------------

    async def dead_letters(self) -> tuple[dict[str, int], int]:
        """Distinct records dead-lettered, per consumer group; and dead-letter records."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.infra.kafka.address, enable_auto_commit=False
        )
        await consumer.start()
        origins: dict[str, set[tuple[bytes, ...]]] = defaultdict(set)
        records = 0
        try:
            partition = TopicPartition(self.dead_letter_topic, 0)
            consumer.assign([partition])
            await consumer.seek_to_beginning(partition)
            end = (await consumer.end_offsets([partition]))[partition]
            async with asyncio.timeout(60):
                while await consumer.position(partition) < end:
                    batch = await consumer.getmany(partition, timeout_ms=1000)
                    for record in batch.get(partition, []):
                        records += 1
                        headers = dict(record.headers)
                        origins[headers["dlq_consumer"].decode()].add(
                            (headers["dlq_topic"], headers["dlq_partition"], headers["dlq_offset"])
                        )
        finally:
            await consumer.stop()
        return {group: len(found) for group, found in origins.items()}, records

    async def published(self, topic: str) -> int:
        """Records written so far to the suite's copy of contract topic ``topic``."""
        consumer = AIOKafkaConsumer(bootstrap_servers=self.infra.kafka.address)
        await consumer.start()
        try:
            name = self.topics[topic]
            ends = await consumer.end_offsets([TopicPartition(name, p) for p in range(PARTITIONS)])
            return sum(ends.values())
        finally:
            await consumer.stop()

    async def parked(self) -> int:
        """Records held back in the scenario's parking lots: the policies' shared one and
        each view's own, whoever owns them."""
        lots = [
            name
            for name in await self.database.list_collection_names()
            if name == PARKING_COLLECTION or name.endswith(VIEW_PARKING_SUFFIX)
        ]
        return sum([await self.database[lot].count_documents({}) for lot in lots])

    async def lag(self) -> int:
        """Records of the pipeline's topics that a consumer group has not committed yet."""
        admin = AIOKafkaAdminClient(bootstrap_servers=self.infra.kafka.address)
        consumer = AIOKafkaConsumer(bootstrap_servers=self.infra.kafka.address)
        await admin.start()
        await consumer.start()
        try:
            partitions = [
                TopicPartition(t, p) for t in self.topics.values() for p in range(PARTITIONS)
            ]
            ends = await consumer.end_offsets(partitions)
            behind = 0
            for group in self.groups:  # both consume every topic of the pipeline
                committed = await admin.list_consumer_group_offsets(group)
                for tp, end in ends.items():
                    offset = committed.get(tp)
                    done = offset.offset if offset is not None and offset.offset >= 0 else 0
                    behind += end - done
            return behind
        finally:
            await consumer.stop()
            await admin.close()


# --- The driver ------------------------------------------------------------------------


class Driver:
    """Plays a plan against a system: commands and upstream records, paced over
    ``duration`` seconds (until :meth:`hurry`), each retried through outages."""

    def __init__(
        self, system: System, plan: Plan, *, duration: float, duplicate_from: float | None = None
    ) -> None:
        self.system = system
        self.plan = plan
        self.duration = duration
        self.duplicate_from = duplicate_from
        self.done = 0
        self.total = len(plan.commands) + len(plan.upstream)
        self.duplicates = 0
        self.finished_at: float | None = None
        self._hurried = asyncio.Event()
        self._started = 0.0
        self._sent: list[Upstream] = []
        self._originals_done = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._started = time.monotonic()
        self._task = asyncio.create_task(self._run())

    def hurry(self) -> None:
        """Play the rest of the stream unpaced."""
        self._hurried.set()

    async def reached(self, fraction: float, within: float = 300) -> None:
        """Wait (bounded) until ``fraction`` of the stream is played."""

        async def far_enough() -> bool:
            self._raise_if_failed()
            return self.done >= fraction * self.total

        await until(far_enough, within=within, what=f"{fraction:.0%} of the stream", every=0.05)

    async def finished(self) -> float:
        """Wait for the whole stream; when it ended (monotonic)."""
        assert self._task is not None
        await self._task
        assert self.finished_at is not None
        return self.finished_at

    def _raise_if_failed(self) -> None:
        if self._task is not None and self._task.done():
            self._task.result()

    async def cancel(self) -> None:
        """Stop playing (a scenario that failed midway)."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        async with asyncio.TaskGroup() as group:  # one failing cancels the others
            group.create_task(self._commands())
            group.create_task(self._upstream())
            if self.duplicate_from is not None:
                group.create_task(self._duplicate(self.duplicate_from))
        self.finished_at = time.monotonic()

    async def _pace(self, index: int, count: int) -> None:
        """Sleep until item ``index`` of ``count`` is due (pacing, not a condition)."""
        delay = self._started + self.duration * index / max(count, 1) - time.monotonic()
        if delay > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._hurried.wait(), timeout=delay)

    async def _commands(self) -> None:
        assert self.system.app is not None
        app = self.system.app
        for index, command in enumerate(self.plan.commands):
            await self._pace(index, len(self.plan.commands))

            async def issue(command: Command = command) -> None:
                await asyncio.to_thread(execute, app, command)

            await retry(issue, what=str(command))
            self.done += 1

    async def _upstream(self) -> None:
        upstream = self.plan.upstream
        producer = Producer(self.system.infra.kafka.address, self.system.topics)
        try:
            index = 0
            while index < len(upstream):
                await self._pace(index, len(upstream))
                due = index + 1
                while due < len(upstream) and due - index < 100 and self._is_due(due, upstream):
                    due += 1
                chunk = upstream[index:due]
                await producer.send(chunk)
                self._sent += chunk
                self.done += len(chunk)
                index = due
        finally:
            self._originals_done = True
            await producer.close()

    def _is_due(self, index: int, items: Sequence[object]) -> bool:
        due = self._started + self.duration * index / len(items)
        return self._hurried.is_set() or time.monotonic() >= due

    async def _duplicate(self, start: float) -> None:
        """From ``start`` of the stream on, send every valid upstream record sent so far
        again, in another order across keys (each key's own order kept, so its partition
        sees the copies in order, after the originals)."""
        await self.reached(start)
        producer = Producer(self.system.infra.kafka.address, self.system.topics)
        rng = random.Random(self.system.name)
        copied = 0
        try:
            while True:
                finished = self._originals_done
                copied, sent = len(self._sent), self._sent[copied:]
                by_key: dict[str, list[Upstream]] = defaultdict(list)
                for item in sent:
                    if item.envelope is not None:  # valid: keyed by its aggregate id
                        by_key[item.envelope.aggregateid].append(item)
                queues = [by_key[key] for key in sorted(by_key)]
                rng.shuffle(queues)
                order: list[Upstream] = []
                while queues:
                    queue = rng.choice(queues)
                    order.append(queue.pop(0))
                    if not queue:
                        queues.remove(queue)
                for start_at in range(0, len(order), 100):
                    await producer.send(order[start_at : start_at + 100])
                self.duplicates += len(order)
                if finished and copied == len(self._sent):
                    return
                await asyncio.sleep(0.3)
        finally:
            await producer.close()


async def retry(action: Callable[[], Awaitable[Any]], *, what: str) -> Any:
    """Run ``action`` until it succeeds; transient errors (an outage) are retried for at
    most :data:`RETRY_FOR` seconds."""
    deadline = time.monotonic() + RETRY_FOR
    while True:
        try:
            return await action()
        except TRANSIENT:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.3)


class Producer:
    """The upstream systems' producer: idempotent, ``acks=all``, keyed by aggregate id.

    A chunk that fails (the broker went away) is sent again whole with a new producer:
    what had been written then arrives twice, later in its partition, never out of order.
    """

    def __init__(self, bootstrap: str, topics: dict[str, str]) -> None:
        self.bootstrap = bootstrap
        self.topics = topics
        self._producer: Any = None

    async def send(self, chunk: Sequence[Upstream]) -> None:
        await retry(lambda: self._send(chunk), what="upstream records")

    async def _send(self, chunk: Sequence[Upstream]) -> None:
        try:
            if self._producer is None:
                self._producer = reliable_producer(
                    self.bootstrap, linger_ms=5, request_timeout_ms=15000
                )
                await self._producer.start()
            async with asyncio.timeout(60):
                deliveries = [
                    await self._producer.send(
                        self.topics[item.topic],
                        value=item.record.value,
                        key=item.record.key,
                        headers=item.record.headers,
                    )
                    for item in chunk
                ]
                await asyncio.gather(*deliveries)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(20):
                    await producer.stop()


# --- A scenario, measured --------------------------------------------------------------


@dataclass
class Fault:
    """What a scenario injected, and when the fault ended (monotonic)."""

    count: int
    what: str
    ended: float
    redriven: int = 0
    """Records the customer view dead-lettered beyond the poison ones, redriven since."""


@dataclass
class Result:
    """One scenario's line of the report."""

    scenario: str
    events: int
    faults: int
    what: str
    lost: int
    twice: int
    dead_letters: int
    poison: int
    recovery: float | None
    redriven: int = 0
    parked: int = 0
    """Records still parked at the end (held back behind a dead letter or a condition)."""
    dead_letter_records: int = 0
    dead_letters_per_group: dict[str, int] = field(default_factory=dict)
    expected_dead_letters: dict[str, int] = field(default_factory=dict)
    """Per group: the poison records, plus for the customer view the redriven ones."""
    unplanned_restarts: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)

    HEADER = (
        f"{'scenario':22} {'events sent':>11} {'faults':>6} {'lost':>5} {'twice':>5} "
        f"{'dead letters':>12} {'poison':>6} {'parked':>6} {'recovery':>9}  fault"
    )

    def line(self) -> str:
        recovery = f"{self.recovery:8.1f}s" if self.recovery is not None else "      n/a"
        notes = [self.what]
        if self.dead_letter_records > self.dead_letters * max(len(self.dead_letters_per_group), 1):
            notes.append(f"{self.dead_letter_records} dead-letter records (some twice)")
        if self.unplanned_restarts:
            notes.append("unplanned restarts: " + ", ".join(self.unplanned_restarts))
        return (
            f"{self.scenario:22} {self.events:11d} {self.faults:6d} {self.lost:5d} "
            f"{self.twice:5d} {self.dead_letters:12d} {self.poison:6d} {self.parked:6d} "
            f"{recovery}  " + "; ".join(notes)
        )


Injection = Callable[[System, Driver], Awaitable[Fault]]


async def run_scenario(
    infra: Infra,
    scenario: str,
    plan: Plan,
    inject: Injection,
    *,
    logs: Path,
    workers: int = 1,
    duration: float = 10.0,
    duplicate_from: float | None = None,
    worker_die: dict[str, str] | None = None,
    worker_bug: dict[str, Any] | None = None,
    relay_die: bool = False,
    recover_within: float = 240.0,
) -> Result:
    """Run ``plan`` with ``inject``'s fault; measure recovery, losses and doubles."""
    async with System(
        infra, scenario, logs=logs, workers=workers, worker_die=worker_die,
        worker_bug=worker_bug, relay_die=relay_die,
    ) as system:  # fmt: skip
        driver = Driver(system, plan, duration=duration, duplicate_from=duplicate_from)
        driver.start()
        try:
            fault = await inject(system, driver)
            driver.hurry()
            await driver.finished()
        finally:
            await driver.cancel()
        assert system.app is not None
        truth = await asyncio.to_thread(ground_truth, system.app, plan)
        expected = {group: plan.poison for group in system.groups}
        expected[system.groups[0]] += fault.redriven
        recovery, verdict = await _recover(system, truth, expected, fault.ended, recover_within)
        if recovery is not None:
            # Quiescent: every record consumed and committed; anything applied late shows now.
            await until(_no_lag(system), within=120, what="consumer groups caught up", every=0.5)
            verdict = await compare(system.database, truth)
        per_group, records = await system.dead_letters()
        result = Result(
            scenario=scenario,
            events=truth.events,
            faults=fault.count,
            what=fault.what,
            lost=verdict.lost,
            twice=verdict.twice,
            dead_letters=per_group.get(system.groups[0], 0),
            poison=plan.poison,
            recovery=recovery,
            redriven=fault.redriven,
            parked=await system.parked(),
            dead_letter_records=records,
            dead_letters_per_group=per_group,
            expected_dead_letters=expected,
            unplanned_restarts=list(system.unplanned_restarts),
            mismatches=verdict.mismatches,
        )
        print(f"\n{Result.HEADER}\n{result.line()}")
        if recovery is None or not verdict.ok:
            system.keep = True
            print(await _diagnosis(system, verdict))
        return result


def _no_lag(system: System) -> Callable[[], Awaitable[bool]]:
    async def caught_up() -> bool:
        return await system.lag() == 0

    return caught_up


async def _recover(
    system: System, truth: Truth, expected: dict[str, int], since: float, within: float
) -> tuple[float | None, Verdict]:
    """Seconds from ``since`` until the read models equal the truth, each group dead-lettered
    the records ``expected`` and nothing is parked any more (None if not within
    ``within``); the last verdict."""
    deadline = time.monotonic() + within
    verdict = Verdict(mismatches=["not compared yet"])
    while time.monotonic() < deadline:
        try:
            verdict = await compare(system.database, truth)
            if verdict.ok:
                per_group, _ = await system.dead_letters()
                dead_lettered = all(per_group.get(g, 0) == n for g, n in expected.items())
                if dead_lettered and await system.parked() == 0:
                    return time.monotonic() - since, verdict
        except (PyMongoError, KafkaError, OSError, TimeoutError):
            pass  # a server still recovering: look again
        await asyncio.sleep(0.5)
    return None, verdict


async def _diagnosis(system: System, verdict: Verdict) -> str:
    """What a failed scenario leaves to look at: the first mismatches, with the guards and
    positions of the customers concerned, and where its data and logs are kept."""
    lines = [f"kept for inspection: databases and topics {system.name}, logs in {system.logs}"]
    seen: set[str] = set()
    for mismatch in verdict.mismatches[:10]:
        lines.append(f"  {mismatch}")
        words = mismatch.split()
        if words[0] != "customer" or words[1] in seen:
            continue
        seen.add(words[1])
        try:
            doc = await system.database["customers"].find_one({"_id": words[1]}, {"_applied": 1})
            guards = (doc or {}).get("_applied", {})
            positions = (
                await system.database[f"{CustomerViews.name}__positions"]
                .find({"_id": {"$in": list(guards)}})
                .to_list()
            )
        except PyMongoError as error:
            lines.append(f"    (guards and positions unreadable: {error!r})")
            continue
        lines.append(
            f"    guards {guards}; positions {[(p['_id'], p['version']) for p in positions]}"
        )
    return "\n".join(lines)
