"""The outbox relay: the event store's notification log, published to Kafka in order.

The relay reads notifications after its recorded position, turns each domain event into
its integration event, publishes the batch with the idempotent producer (``acks=all``)
and only after Kafka acknowledged every record does it record the new position in the
store itself (an ``eventsourcing`` tracking record). A crash between publish and record
republishes the batch: never a skip, at worst a duplicate, which consumers absorb (the
envelope id and aggregate version are deterministic).

On PostgreSQL the relay sleeps on ``LISTEN`` for the store's ``NOTIFY``; on SQLite it
wakes when the database file or its write-ahead log changes (another process wrote: the
API, when the relay runs in a worker process of its own), and an in-process writer can
:meth:`OutboxRelay.nudge` it. Either way it also polls.

:meth:`OutboxRelay.run` supervises itself: a failed cycle (broker or store unreachable)
restarts the relay with a growing delay, and its health (:meth:`OutboxRelay.unready_reason`,
the ``crm_relay_*`` metrics) says so. A stored event the translator rejects stops it at that
event, for good, with an error naming the event: skipping it would lose it, and retrying
cannot help until a fixed translator is deployed, which then resumes from there.

From a store that seals personal data (``crm_backbone.sealing``) the relay publishes the
stored tokens as they are: it never opens a person's data, nor needs their keys (the
tokens are bound to the same subject and hold the same JSON on Kafka). The translator
checks every other field against the contract; a personal field is checked where it is
opened, by its consumers (a value the contract refuses is dead-lettered there).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import structlog
from aiokafka import AIOKafkaProducer
from crm_events.envelope import Envelope, to_kafka
from crm_events.personal import FieldSealer, SealedFields
from crm_events.registry import EventPayload
from eventsourcing.application import Application
from eventsourcing.domain import DomainEvent
from eventsourcing.persistence import Notification, Tracking, TrackingRecorder
from eventsourcing.postgres import PostgresApplicationRecorder
from pydantic import ValidationError

from crm_backbone.kafka import reliable_producer
from crm_backbone.metrics import (
    RELAY_ERRORS,
    RELAY_FAILURES_IN_ROW,
    RELAY_HEAD,
    RELAY_LAST_SUCCESS,
    RELAY_POSITION,
    RELAY_PUBLISHED,
    RELAY_STOPPED,
)
from crm_backbone.sealing import SealingMapper
from crm_backbone.topic_names import CONTRACT_NAMES

log = structlog.get_logger(__name__)

Translate = Callable[[Any], EventPayload | None]
"""Maps a domain event to its integration payload, or None for a private event."""

_EVENT_ID_NAMESPACE = uuid.UUID("6b1f3c56-0c55-4a53-9b8a-3d1a3b7f0a11")


def integration_envelope(
    domain_event: DomainEvent, payload: EventPayload, source: str
) -> Envelope[EventPayload]:
    """The envelope of one stored event: its id is derived, so a republish is the same event.

    The aggregate id is the event's ``subject`` (see ``TracedAggregate``) when it has one.
    """
    aggregate_id = str(getattr(domain_event, "subject", None) or domain_event.originator_id)
    version = domain_event.originator_version
    return Envelope.new(
        payload,
        aggregate_id=aggregate_id,
        aggregate_version=version,
        actor=getattr(domain_event, "actor", "system"),
        client=getattr(domain_event, "client", None),
        source=source,
        correlation_id=getattr(domain_event, "correlation_id", None),
        causation_id=getattr(domain_event, "causation_id", None),
        event_id=str(uuid.uuid5(_EVENT_ID_NAMESPACE, f"{source}/{aggregate_id}/{version}")),
        time=domain_event.timestamp,
    )


class UntranslatableEvent(Exception):
    """A stored event the translator rejects: the relay stops before it, never skips it."""

    def __init__(self, notification_id: int, event_type: str, cause: Exception) -> None:
        super().__init__(
            f"stored event {notification_id} ({event_type}) cannot be translated: "
            f"{_describe(cause)}; nothing after it is published until a translator that "
            "accepts it is deployed"
        )
        self.notification_id = notification_id
        self.event_type = event_type


def _describe(error: Exception) -> str:
    """The error's kind and where it is, without the values involved (personal data)."""
    if isinstance(error, ValidationError):
        fields = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or '-'}: {e['type']}" for e in error.errors()
        )
        return f"ValidationError: {fields}"
    return f"{type(error).__name__}: {str(error)[:200]}"


@dataclass(frozen=True)
class _Record:
    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


@dataclass(frozen=True)
class _Translated:
    """A batch's records up to its first untranslatable event (``failure``), if any."""

    records: list[_Record]
    through: int | None
    """The last notification id covered by ``records`` (private events included)."""
    failure: UntranslatableEvent | None


class OutboxRelay:
    """Publishes one application's stored events to Kafka, then records its position."""

    def __init__(
        self,
        app: Application[Any],
        translate: Translate,
        *,
        source: str,
        bootstrap_servers: str,
        postgres_dsn: str | None = None,
        sqlite_path: Path | None = None,
        batch_size: int = 2000,
        poll_interval: float = 0.2,
        head_interval: float = 1.0,
        backoff: tuple[float, float] = (0.5, 10.0),
        route: Callable[[str], str] = CONTRACT_NAMES.of_event,
        name: str | None = None,
        kafka_login: Mapping[str, Any] | None = None,
        sealer: FieldSealer | None = None,
    ) -> None:
        self.app = app
        self.translate = translate
        self.sealer = sealer
        """Seals the personal data of what it publishes (none: published in clear)."""
        self.source = source
        self.name = name or f"{app.name}->kafka"
        """What its position is recorded under: a relay of another name keeps its own."""
        self.bootstrap_servers = bootstrap_servers
        self.kafka_login = dict(kafka_login or {})
        """The producer's login (``ServiceSettings.kafka_client_options``); none: plaintext."""
        self.postgres_dsn = postgres_dsn
        self.sqlite_path = sqlite_path
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.head_interval = head_interval
        self.backoff = backoff
        """First and longest delay before a failed relay starts again."""
        self.route = route
        self.tracking: TrackingRecorder = app.factory.tracking_recorder()
        self._nudged = asyncio.Event()
        self._producer: AIOKafkaProducer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.failures_in_row = 0
        self.last_error: str | None = None
        self.last_success_at: float | None = None
        """Unix time of the last batch published, or of the last look that found none."""
        self.stopped_at: UntranslatableEvent | None = None
        self.published_through = 0
        """The position recorded at the last success."""
        self.store_head = 0
        """The store's head when last measured."""

    def position(self) -> int:
        return self.tracking.max_tracking_id(self.name) or 0

    def head(self) -> int:
        return self.app.recorder.max_notification_id() or 0

    def nudge(self) -> None:
        """Wake the relay now: a writer in this process just saved events (any thread)."""
        if self._loop is None:
            self._nudged.set()
        else:
            self._loop.call_soon_threadsafe(self._nudged.set)

    def unready_reason(self, after_failures: int = 2, stale_after: float = 60.0) -> str | None:
        """Why the relay cannot publish (stopped, failing again after a restart, or making
        no progress with events pending, e.g. waiting on a broker that went away), or None."""
        if self.stopped_at is not None:
            return str(self.stopped_at)
        if self.failures_in_row >= after_failures:
            return (
                f"{self.failures_in_row} attempts in a row failed, restarting with backoff; "
                f"last: {self.last_error}"
            )
        pending = self.store_head - self.published_through
        if pending > 0 and self.last_success_at is not None:
            idle = time.time() - self.last_success_at
            if idle > stale_after:
                return f"{pending} events pending and nothing published for {idle:.0f} s"
        return None

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._producer = reliable_producer(
            self.bootstrap_servers, linger_ms=5, max_batch_size=512 * 1024, **self.kafka_login
        )
        try:
            await self._producer.start()
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                await producer.stop()

    async def publish_pending(self) -> int:
        """Publish everything after the recorded position, batch by batch; events sent.

        Raises :class:`UntranslatableEvent` after publishing (and recording) what comes
        before such an event.
        """
        sent = 0
        while True:
            position = await asyncio.to_thread(self.position)
            notifications = await asyncio.to_thread(
                self.app.recorder.select_notifications,
                start=position,
                limit=self.batch_size,
                inclusive_of_start=False,
            )
            if not notifications:
                self._succeeded(position)
                return sent
            # Decoding and translating a batch is CPU work: off the event loop.
            batch = await asyncio.to_thread(self._translate, notifications)
            await self._send(batch.records)
            if batch.through is not None:
                await asyncio.to_thread(
                    self.tracking.insert_tracking, Tracking(self.name, batch.through)
                )
                self._succeeded(batch.through)
            sent += len(batch.records)
            if batch.failure is not None:
                raise batch.failure

    async def run(self) -> None:
        """Publish until cancelled, restarting with backoff after a failure; stop for good
        at an event that cannot be translated. The store's head is watched throughout."""
        self._loop = asyncio.get_running_loop()
        RELAY_STOPPED.labels(self.name).set(0)
        RELAY_FAILURES_IN_ROW.labels(self.name).set(0)
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._watch_head())
            await self._supervise()

    async def _supervise(self) -> None:
        listener = (
            asyncio.create_task(self._listen())
            if self.postgres_dsn
            else asyncio.create_task(self._watch_file(self.sqlite_path))
            if self.sqlite_path
            else None
        )
        try:
            while True:
                try:
                    await self.start()
                    while True:
                        self._nudged.clear()
                        await self.publish_pending()
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(self._nudged.wait(), self.poll_interval)
                except UntranslatableEvent as error:
                    self.stopped_at = error
                    RELAY_STOPPED.labels(self.name).set(1)
                    log.error("relay stopped", relay=self.name, reason=str(error))
                    return
                except Exception as error:
                    delay = self._failed(error)
                    log.warning(
                        "relay failed; restarting from the recorded position",
                        relay=self.name,
                        error=self.last_error,
                        retry_in=delay,
                        failures_in_row=self.failures_in_row,
                    )
                    await self.stop()
                    await asyncio.sleep(delay)
        finally:
            if listener is not None:
                listener.cancel()
            await self.stop()

    def _succeeded(self, position: int) -> None:
        self.failures_in_row = 0
        self.last_success_at = time.time()
        self.published_through = position
        RELAY_POSITION.labels(self.name).set(position)
        RELAY_LAST_SUCCESS.labels(self.name).set(self.last_success_at)
        RELAY_FAILURES_IN_ROW.labels(self.name).set(0)

    def _failed(self, error: Exception) -> float:
        """Count a failed cycle; the delay before the next attempt."""
        self.failures_in_row += 1
        self.last_error = _describe(error)
        RELAY_ERRORS.labels(self.name).inc()
        RELAY_FAILURES_IN_ROW.labels(self.name).set(self.failures_in_row)
        first, longest = self.backoff
        return float(min(first * 2 ** (self.failures_in_row - 1), longest))

    async def _watch_head(self) -> None:
        """Measure the store's head on its own, so it moves while the relay cannot."""
        while True:
            try:
                self.store_head = await asyncio.to_thread(self.head)
                RELAY_HEAD.labels(self.name).set(self.store_head)
            except Exception as error:  # the event_store readiness check reports it
                log.debug("relay cannot read the store's head", error=_describe(error))
            await asyncio.sleep(self.head_interval)

    def _translate(self, notifications: Sequence[Notification]) -> _Translated:
        records: list[_Record] = []
        through: int | None = None
        for notification in notifications:
            try:
                domain_event, sealed = self._read(notification)
                assert isinstance(domain_event, DomainEvent)
                payload = self.translate(domain_event)
                if payload is not None:
                    envelope = integration_envelope(domain_event, payload, self.source)
                    record = to_kafka(envelope, self.sealer, sealed)
                    topic = self.route(payload.event_type)
            except Exception as error:
                failure = UntranslatableEvent(notification.id, notification.topic, error)
                return _Translated(records, through, failure)
            if payload is not None:
                records.append(_Record(topic, record.key, record.value, list(record.headers)))
            through = notification.id
        return _Translated(records, through, None)

    def _read(self, notification: Notification) -> tuple[Any, SealedFields | None]:
        """The stored event; from a sealing store to sealed topics, with its personal
        data left sealed: the tokens are published as stored, never opened here."""
        mapper = self.app.mapper
        if isinstance(mapper, SealingMapper) and self.sealer is not None:
            return mapper.to_sealed_domain_event(notification)
        return mapper.to_domain_event(notification), None

    async def _send(self, records: Sequence[_Record]) -> None:
        assert self._producer is not None, "call start() first"
        deliveries = [
            await self._producer.send(r.topic, value=r.value, key=r.key, headers=r.headers)
            for r in records
        ]
        # Every record must be acknowledged (acks=all) before the position moves.
        await asyncio.gather(*deliveries)
        RELAY_PUBLISHED.labels(self.name).inc(len(deliveries))

    async def _watch_file(self, database: Path, every: float = 0.01) -> None:
        """Nudge when the SQLite database or its write-ahead log changes (a ``stat`` of
        each every ``every`` seconds: microseconds, no query)."""
        files = (database, database.with_name(f"{database.name}-wal"))
        seen = tuple(map(_stamp, files))
        while True:
            await asyncio.sleep(every)
            now = tuple(map(_stamp, files))
            if now != seen:
                seen = now
                self.nudge()

    async def _listen(self) -> None:
        """Turn the store's NOTIFY into nudges; on any failure, reconnect (polling goes on)."""
        recorder = self.app.recorder
        assert isinstance(recorder, PostgresApplicationRecorder)
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self.postgres_dsn or "", autocommit=True
                ) as conn:
                    await conn.execute(f'LISTEN "{recorder.channel_name}"')
                    async for _ in conn.notifies():
                        self.nudge()
            except Exception as error:
                log.warning(
                    "relay lost its LISTEN connection; reconnecting", error=_describe(error)
                )
                await asyncio.sleep(1.0)


def _stamp(path: Path) -> tuple[int, int] | None:
    """When a file last changed and its size, or None while it does not exist."""
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    return stat.st_mtime_ns, stat.st_size
