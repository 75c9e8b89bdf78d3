"""The outbox relay: the event store's notification log, published to Kafka in order.

The relay reads notifications after its recorded position, turns each domain event into
its integration event, publishes the batch with the idempotent producer (``acks=all``)
and only after Kafka acknowledged every record does it record the new position in the
store itself (an ``eventsourcing`` tracking record). A crash between publish and record
republishes the batch: never a skip, at worst a duplicate, which consumers absorb (the
envelope id and aggregate version are deterministic).

On PostgreSQL the relay sleeps on ``LISTEN`` for the store's ``NOTIFY``; on SQLite it
polls, and an in-process writer can :meth:`OutboxRelay.nudge` it.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import psycopg
import structlog
from aiokafka import AIOKafkaProducer
from crm_events.envelope import Envelope, to_kafka
from crm_events.registry import EventPayload
from crm_events.topics import topic_for
from eventsourcing.application import Application
from eventsourcing.domain import DomainEvent
from eventsourcing.persistence import Notification, Tracking, TrackingRecorder
from eventsourcing.postgres import PostgresApplicationRecorder

from crm_backbone.kafka import reliable_producer
from crm_backbone.metrics import RELAY_ERRORS, RELAY_HEAD, RELAY_POSITION, RELAY_PUBLISHED

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
        source=source,
        correlation_id=getattr(domain_event, "correlation_id", None),
        causation_id=getattr(domain_event, "causation_id", None),
        event_id=str(uuid.uuid5(_EVENT_ID_NAMESPACE, f"{source}/{aggregate_id}/{version}")),
        time=domain_event.timestamp,
    )


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
        batch_size: int = 2000,
        poll_interval: float = 0.2,
        route: Callable[[str], str] = lambda event_type: topic_for(event_type).name,
    ) -> None:
        self.app = app
        self.translate = translate
        self.source = source
        self.name = f"{app.name}->kafka"
        self.bootstrap_servers = bootstrap_servers
        self.postgres_dsn = postgres_dsn
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.route = route
        self.tracking: TrackingRecorder = app.factory.tracking_recorder()
        self._nudged = asyncio.Event()
        self._producer: AIOKafkaProducer | None = None
        self.failures_in_row = 0
        self.last_error: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

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

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._producer = reliable_producer(
            self.bootstrap_servers, linger_ms=5, max_batch_size=512 * 1024
        )
        await self._producer.start()

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def publish_pending(self) -> int:
        """Publish everything after the recorded position, batch by batch; events sent."""
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
                RELAY_POSITION.labels(self.name).set(position)
                return sent
            await self._publish(notifications)
            last = notifications[-1].id
            await asyncio.to_thread(self.tracking.insert_tracking, Tracking(self.name, last))
            RELAY_POSITION.labels(self.name).set(last)
            sent += len(notifications)

    async def run(self) -> None:
        """Publish forever: wake on NOTIFY (PostgreSQL), a nudge, or the poll interval."""
        await self.start()
        listener = asyncio.create_task(self._listen()) if self.postgres_dsn else None
        try:
            while True:
                try:
                    await self.publish_pending()
                    RELAY_HEAD.labels(self.name).set(await asyncio.to_thread(self.head))
                    self.failures_in_row = 0
                except Exception as error:
                    self.failures_in_row += 1
                    self.last_error = repr(error)
                    RELAY_ERRORS.labels(self.name).inc()
                    log.exception("relay cycle failed; retrying from the recorded position")
                    await asyncio.sleep(1.0)
                self._nudged.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._nudged.wait(), timeout=self.poll_interval)
        finally:
            if listener is not None:
                listener.cancel()
            await self.stop()

    async def _publish(self, notifications: Sequence[Notification]) -> None:
        assert self._producer is not None, "call start() first"
        deliveries = []
        for notification in notifications:
            domain_event = self.app.mapper.to_domain_event(notification)
            assert isinstance(domain_event, DomainEvent)
            payload = self.translate(domain_event)
            if payload is None:
                continue
            record = to_kafka(integration_envelope(domain_event, payload, self.source))
            deliveries.append(
                await self._producer.send(
                    self.route(payload.event_type),
                    value=record.value,
                    key=record.key,
                    headers=record.headers,
                )
            )
        # Every record must be acknowledged (acks=all) before the position moves.
        await asyncio.gather(*deliveries)
        RELAY_PUBLISHED.labels(self.name).inc(len(deliveries))

    async def _listen(self) -> None:
        """Turn the store's NOTIFY into nudges; on connection loss, reconnect."""
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
            except psycopg.OperationalError:
                log.warning("relay lost its LISTEN connection; reconnecting")
                await asyncio.sleep(1.0)
