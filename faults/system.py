"""The system under test: one scenario's customer pipeline on the suite's own servers.

:class:`System` runs under names of its own (topics, consumer groups, MongoDB and
PostgreSQL databases): the event store written by the suite's process, the relay and the
projection workers each in a child process of its own (``run_relay``, ``run_worker``),
which a supervisor restarts when one exits unplanned (counted and reported, as
``make run`` would restart it). It injects the faults that concern its own processes and
measures what the scenario checks: dead letters, records published, parked and not yet
consumed.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
import uuid
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from crm_backbone.credentials import postgres_dsn
from crm_backbone.eventstore import EventStoreConfig
from crm_backbone.holds import VIEW_PARKING_SUFFIX
from crm_backbone.kafka_acls import ADMIN
from crm_backbone.parking import PARKING_COLLECTION
from crm_backbone.projection import Document
from crm_backbone.sealing import EventSealing
from crm_backbone.settings import KAFKA
from crm_backbone.topic_names import TopicNames
from crm_customer.application import CustomerApplication
from crm_customer.publication import PAYLOADS
from crm_customer.views import CustomerViews
from crm_events.topics import (
    CONTACTLOG_EVENTS,
    COREBANKING_ACCOUNTS,
    COREBANKING_CUSTOMERS,
    CUSTOMER_EVENTS,
)
from local_infra.infra import Infra
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from faults.child import key_sealer
from faults.ledger import Ledger
from faults.processes import Child

PREFIX = "fault_"
"""Every topic and database of the suite starts with it (leftovers are dropped at start)."""
PIPELINE_TOPICS = tuple(
    topic.name
    for topic in (CUSTOMER_EVENTS, COREBANKING_ACCOUNTS, COREBANKING_CUSTOMERS, CONTACTLOG_EVENTS)
)
"""The contract topics the pipeline uses; each scenario has its own copy of each."""
PARTITIONS = 6


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
        self.topic_names = TopicNames(f"{self.name}.")
        """The scenario's topics: the contract's names behind its own prefix."""
        self.topics = self.topic_names.of(PIPELINE_TOPICS)
        self.dead_letter_topic = self.topic_names.dead_letter
        self.groups = [f"{self.name}.{CustomerViews.name}", f"{self.name}.{Ledger.name}"]
        self.logs = logs / self.name
        self.store_dsn = self._dsn(self.name)
        self.keys_database = f"{self.name}_keys"
        self.keys = {
            "keys": self._dsn(self.keys_database),
            "secrets": str(self.infra.postgres.secrets.folder),
        }
        """Where every process of the scenario finds the customers' data keys, as the
        customer service does (``child.key_sealer``): the scenario's key database, and the
        secrets folder holding the profile's master key ring (written by the launcher)."""
        self.mongo: AsyncMongoClient[Document] = AsyncMongoClient(
            infra.mongo.admin_uri, tz_aware=True, serverSelectionTimeoutMS=5000
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
        return postgres_dsn(self.infra.postgres.admin_dsn, None, database)

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
            "kafka_secrets": str(self.infra.kafka.secrets.folder / KAFKA),
            **self.keys,
            "postgres": self.store_dsn,
            "topic_prefix": self.topic_names.prefix,
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
        assert set(PIPELINE_TOPICS) <= set(CustomerViews.topics)
        config = {
            "kafka": self.infra.kafka.address,
            "kafka_secrets": str(self.infra.kafka.secrets.folder / KAFKA),
            **self.keys,
            "mongo": self.infra.mongo.admin_uri,
            "database": self.name,
            "view_topics": self.topics,
            "ledger_topics": self.topics,
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
            "kafka_secrets": str(self.infra.kafka.secrets.folder / KAFKA),
            **self.keys,
            "mongo": self.infra.mongo.admin_uri,
            "database": self.name,
            "topics": self.topics,
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
        admin = AIOKafkaAdminClient(
            bootstrap_servers=self.infra.kafka.address, **self.infra.kafka.login(ADMIN)
        )
        await admin.start()
        try:
            await admin.create_topics(
                [NewTopic(name, PARTITIONS, 1) for name in self.topics]
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
        with psycopg.connect(self.infra.postgres.admin_dsn, autocommit=True) as conn:
            for database in (self.name, self.keys_database):
                conn.execute(f'CREATE DATABASE "{database}"')
        store = EventStoreConfig(postgres_dsn=self.store_dsn)
        self.infra.postgres.secrets.master_keys()  # the launcher's ring (made if missing)
        sealer = key_sealer(self.keys)
        self.app = CustomerApplication(
            env=store.environment(),
            sealing=EventSealing(sealer, PAYLOADS),
            subject_keys=sealer,
        )

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
        admin = AIOKafkaAdminClient(
            bootstrap_servers=self.infra.kafka.address, **self.infra.kafka.login(ADMIN)
        )
        await admin.start()
        try:
            await admin.delete_topics([*self.topics, self.dead_letter_topic])
        finally:
            await admin.close()

        def drop_store() -> None:
            with psycopg.connect(self.infra.postgres.admin_dsn, autocommit=True) as conn:
                for database in (self.name, self.keys_database):
                    conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')

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
            bootstrap_servers=self.infra.kafka.address,
            enable_auto_commit=False,
            **self.infra.kafka.login(ADMIN),
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
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.infra.kafka.address, **self.infra.kafka.login(ADMIN)
        )
        await consumer.start()
        try:
            name = self.topic_names(topic)
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
        admin = AIOKafkaAdminClient(
            bootstrap_servers=self.infra.kafka.address, **self.infra.kafka.login(ADMIN)
        )
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.infra.kafka.address, **self.infra.kafka.login(ADMIN)
        )
        await admin.start()
        await consumer.start()
        try:
            partitions = [TopicPartition(t, p) for t in self.topics for p in range(PARTITIONS)]
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
