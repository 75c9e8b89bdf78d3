"""One service's moving parts, wired and run: relay, projections, policies, readiness.

A service's ``bootstrap`` builds :class:`ServiceComponents`; :class:`ServiceRuntime` runs
its background work (in the API process, or in a worker process of its own) and answers
the readiness checks.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
from aiokafka import AIOKafkaProducer
from crm_events.personal import FieldSealer
from crm_events.registry import EventPayload
from crm_events.topics import SUBSCRIPTIONS, Service, written_by
from eventsourcing.application import Application
from faststream.kafka import KafkaBroker
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from crm_backbone.application import ServiceApplication
from crm_backbone.eventstore import EventStoreConfig
from crm_backbone.http import ReadinessCheck
from crm_backbone.kafka import (
    ConsumerHealth,
    KafkaDeadLetters,
    drain_released_holds,
    ensure_topics,
    kafka_broker,
    reliable_producer,
    subscribe,
)
from crm_backbone.kafka_acls import principal_of
from crm_backbone.keys import KeySealer
from crm_backbone.keys.factory import key_sealer
from crm_backbone.pause import PauseGate
from crm_backbone.policy import Policy, PolicyConsumer
from crm_backbone.projection import Document, Projection, ProjectionEngine
from crm_backbone.relay import OutboxRelay, Translate
from crm_backbone.sealing import EventSealing
from crm_backbone.settings import ServiceSettings
from crm_backbone.topic_names import TopicNames

log = structlog.get_logger(__name__)


@dataclass
class ServiceComponents:
    """What a service is made of; built by its ``bootstrap``."""

    service: Service
    application: Application[Any]
    translate: Translate
    database: AsyncDatabase[Document]
    projections: Sequence[Projection] = ()
    policies: Sequence[Policy] = ()
    jobs: Sequence[Callable[[], Coroutine[Any, Any, None]]] = ()
    """Scheduled work of the service's own (a rule that acts on time passing), each run
    as a background task beside the consumers until the runtime stops."""


@dataclass
class ServiceRuntime:
    """Starts and stops the relay and the consumers of one service."""

    components: ServiceComponents
    kafka_bootstrap: str
    postgres_dsn: str | None = None
    sqlite_path: Path | None = None
    namespace: str = "crm"
    topics: TopicNames = field(default_factory=TopicNames)
    max_records: int = 1000
    kafka_login: dict[str, Any] = field(default_factory=dict)
    """The service principal's login (``ServiceSettings.kafka_client_options``)."""
    sealer: FieldSealer | None = None
    """Seals what the relay publishes and opens what the consumers read; none: clear."""
    relay: OutboxRelay = field(init=False)
    health: list[ConsumerHealth] = field(init=False, default_factory=list)
    _tasks: list[asyncio.Task[None]] = field(init=False, default_factory=list)
    _broker: KafkaBroker | None = field(init=False, default=None)
    _producer: AIOKafkaProducer | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        c = self.components
        self.relay = OutboxRelay(
            c.application,
            c.translate,
            source=c.service.source,
            bootstrap_servers=self.kafka_bootstrap,
            postgres_dsn=self.postgres_dsn,
            sqlite_path=self.sqlite_path,
            route=self.topics.of_event,
            kafka_login=self.kafka_login,
            sealer=self.sealer,
        )

    def group(self, name: str) -> str:
        """The consumer group of one of this service's projections or policies."""
        return f"{self.namespace}.{self.components.service.value}.{name}"

    async def start(self) -> None:
        """Create the missing topics this service uses (writes, reads, dead-letters), then
        run the relay and every consumer (under the deployment's topic names)."""
        c = self.components
        used = (*written_by(c.service), *SUBSCRIPTIONS.get(c.service, ()))
        await ensure_topics(
            self.kafka_bootstrap,
            self.topics.specs(topic.name for topic in used),
            login=self.kafka_login,
        )
        producer = reliable_producer(self.kafka_bootstrap, **self.kafka_login)
        await producer.start()
        dead_letters = KafkaDeadLetters(producer, self.topics.dead_letter, self.sealer)
        broker = kafka_broker(self.kafka_bootstrap, self.kafka_login, logger=None)
        engines: list[ProjectionEngine | PolicyConsumer] = []  # each drains its holds
        for projection in c.projections:
            engine = ProjectionEngine(
                projection,
                c.database,
                dead_letters,
                self.group(projection.name),
                sealer=self.sealer,
            )
            await engine.setup()
            engines.append(engine)
            self.health.append(
                subscribe(
                    broker,
                    engine,
                    self.topics.of(projection.topics),
                    max_records=self.max_records,
                    gate=PauseGate(c.database, engine.consumer_group),
                )
            )
        for policy in c.policies:
            consumer = PolicyConsumer(
                policy,
                dead_letters,
                self.group(policy.name),
                c.database,
                sealer=self.sealer if policy.reads_personal_data else None,
                parking_sealer=self.sealer,
            )
            await consumer.setup()
            engines.append(consumer)
            self.health.append(
                subscribe(
                    broker, consumer, self.topics.of(policy.topics), max_records=self.max_records
                )
            )
        await broker.start()
        self._broker = broker
        relay = asyncio.create_task(self.relay.run(), name="relay")
        relay.add_done_callback(_log_if_failed)
        self._tasks = [relay, *(drain_released_holds(engine) for engine in engines)]
        for job in c.jobs:
            task = asyncio.create_task(job(), name=getattr(job, "__qualname__", "job"))
            task.add_done_callback(_log_if_failed)
            self._tasks.append(task)
        self._producer = producer
        log.info(
            "service workers started", projections=len(c.projections), policies=len(c.policies)
        )

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._broker is not None:
            await self._broker.stop()
            self._broker = None
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    def readiness_checks(self) -> dict[str, ReadinessCheck]:
        """What this process needs: the workers' checks only where they run."""
        checks: dict[str, ReadinessCheck] = {
            "event_store": self._store_answers,
            "mongodb": self._mongo_answers,
        }
        if self._broker is not None:
            checks |= {
                "kafka": self._kafka_answers,
                "relay": self._relay_publishing,
                "consumers": self._consumers_flowing,
            }
        return checks

    async def _store_answers(self) -> str | None:
        await asyncio.to_thread(self.components.application.recorder.max_notification_id)
        return None

    async def _mongo_answers(self) -> str | None:
        """The service's database answers *as the service's user*: a ping answers anyone,
        listing the database's collections only a client allowed to read it."""
        await self.components.database.list_collection_names(filter={"name": ""})
        return None

    async def _kafka_answers(self) -> str | None:
        assert self._broker is not None
        return None if await self._broker.ping(timeout=1.5) else "the broker does not answer"

    async def _relay_publishing(self) -> str | None:
        for task in self._tasks:
            if task.done() and not task.cancelled() and (error := task.exception()):
                return f"the relay ended: {type(error).__name__}: {error}"
        return self.relay.unready_reason()

    async def _consumers_flowing(self) -> str | None:
        stalled = [f"{h.group}: {why}" for h in self.health if (why := h.stalled())]
        return "; ".join(stalled) or None


def _log_if_failed(task: asyncio.Task[None]) -> None:
    """A background task must never end silently."""
    if not task.cancelled() and (error := task.exception()) is not None:
        log.error("background task ended", task=task.get_name(), error=repr(error))


@dataclass
class Infrastructure:
    """What a service runs on: its event store, its MongoDB database, Kafka, and the key
    store that seals personal data (none when the settings turn sealing off)."""

    settings: ServiceSettings
    service: Service
    store: EventStoreConfig
    mongo: AsyncMongoClient[Document]
    database: AsyncDatabase[Document]
    sealer: FieldSealer | None = None

    @classmethod
    def connect(cls, settings: ServiceSettings, service: Service) -> Infrastructure:
        store = settings.event_store_config(service.value)
        mongo: AsyncMongoClient[Document] = AsyncMongoClient(
            settings.mongo_client_uri(service.value), tz_aware=True
        )
        sealer = key_sealer(settings, service.value) if settings.seal_personal_data else None
        database = mongo[settings.mongo_database(service.value)]
        return cls(settings, service, store, mongo, database, sealer)

    def key_sealer(self) -> KeySealer | None:
        """The service's sealer: where erasure destroys a subject's key (the process then
        forgets it at once); none when sealing is off."""
        return self.sealer if isinstance(self.sealer, KeySealer) else None

    def sealing(self, payloads: Mapping[str, type[EventPayload]]) -> EventSealing | None:
        """What seals the personal data of the service's stored events, named as
        ``payloads`` (its ``publication.PAYLOADS``); none when sealing is off."""
        return None if self.sealer is None else EventSealing(self.sealer, payloads)

    def runtime(
        self,
        application: ServiceApplication,
        translate: Translate,
        projections: Sequence[Projection] = (),
        policies: Sequence[Policy] = (),
        jobs: Sequence[Callable[[], Coroutine[Any, Any, None]]] = (),
    ) -> ServiceRuntime:
        """The service's runtime; every save of ``application`` wakes its relay."""
        runtime = ServiceRuntime(
            ServiceComponents(
                self.service, application, translate, self.database, projections, policies, jobs
            ),
            kafka_bootstrap=self.settings.kafka_bootstrap,
            postgres_dsn=self.store.postgres_dsn,
            sqlite_path=self.store.sqlite_path,
            namespace=self.settings.namespace,
            topics=self.settings.topic_names(),
            kafka_login=self.settings.kafka_client_options(principal_of(self.service)),
            sealer=self.sealer,
        )
        application.on_saved = runtime.relay.nudge
        return runtime


@dataclass
class ServiceHandle:
    """A wired service; each service's own handle adds its settings and queries."""

    application: ServiceApplication
    runtime: ServiceRuntime
    mongo: AsyncMongoClient[Document]
    settings: ServiceSettings

    @property
    def database(self) -> AsyncDatabase[Document]:
        """The service's own MongoDB database."""
        return self.runtime.components.database

    async def close(self) -> None:
        await self.runtime.stop()
        await self.mongo.close()
        self.application.close()
