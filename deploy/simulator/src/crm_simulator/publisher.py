"""Publishes a feed to Kafka at a given rate, counting what was sent and acknowledged.

Each upstream system the simulated bank plays writes as its own Kafka principal
(``core-banking``, ``hr``: ``crm_backbone.kafka_acls``), so :class:`UpstreamProducers`
holds one producer per system and sends each record with the one owning its topic.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from crm_backbone.kafka import ensure_topics, reliable_producer
from crm_backbone.kafka_acls import principal_of
from crm_backbone.settings import ServiceSettings
from crm_backbone.topic_names import TopicNames
from crm_events.topics import Service, produced_by

from crm_simulator.feed import FeedEvent


class UpstreamProducers:
    """One reliable producer per upstream system, each logged in as that system; a record
    goes out through the producer of the system owning its topic (under ``names``)."""

    def __init__(
        self,
        bootstrap: str,
        systems: Sequence[Service],
        names: TopicNames,
        settings: ServiceSettings | None = None,
        **options: Any,
    ) -> None:
        settings = settings or ServiceSettings()
        self.bootstrap = bootstrap
        self.names = names
        self.logins = {s: settings.kafka_client_options(principal_of(s)) for s in systems}
        self.producers = {
            system: reliable_producer(bootstrap, **options, **login)
            for system, login in self.logins.items()
        }
        self.owner = {
            names(topic.name): system for system in systems for topic in produced_by(system)
        }

    async def ensure_topics(self) -> list[str]:
        """Create each system's missing topics, as that system; names of those created."""
        created: list[str] = []
        for system, login in self.logins.items():
            own = [topic.name for topic in produced_by(system)]
            created += await ensure_topics(self.bootstrap, self.names.specs(own), login=login)
        return created

    async def start(self) -> None:
        for producer in self.producers.values():
            await producer.start()

    async def stop(self) -> None:
        for producer in self.producers.values():
            await producer.stop()

    async def send(
        self, topic: str, *, value: bytes, key: bytes | None, headers: list[tuple[str, bytes]]
    ) -> asyncio.Future[Any]:
        producer = self.producers[self.owner[topic]]
        sent: asyncio.Future[Any] = await producer.send(
            topic, value=value, key=key, headers=headers
        )
        return sent

    async def flush(self) -> None:
        for producer in self.producers.values():
            await producer.flush()


@dataclass
class Progress:
    """Counts of one publishing run, updated as it goes."""

    sent: int = 0
    poison: int = 0
    delivered: int = 0
    """Records Kafka acknowledged."""
    elapsed: float = 0.0
    """Seconds since the first send."""
    simulated_time: datetime | None = None
    """Time of the last event sent."""

    @property
    def rate(self) -> float:
        """Events sent per second."""
        return self.sent / self.elapsed if self.elapsed else 0.0


async def publish(
    producer: UpstreamProducers,
    events: Iterable[FeedEvent],
    *,
    rate: float | None = None,
    stop: asyncio.Event | None = None,
    report: Callable[[Progress], None] | None = None,
    report_every: float = 5.0,
) -> Progress:
    """Send ``events`` in order, ``rate`` per second (``None``: as fast as Kafka takes them).

    Stops when the events run out or ``stop`` is set, then waits until Kafka acknowledged
    every record sent; raises the first delivery error. ``report`` gets the progress every
    ``report_every`` seconds.
    """
    progress = Progress()
    pending: set[asyncio.Future[Any]] = set()
    failures: list[BaseException] = []

    def delivered(future: asyncio.Future[Any]) -> None:
        pending.discard(future)
        if future.cancelled():
            failures.append(asyncio.CancelledError("delivery cancelled"))
        elif (error := future.exception()) is not None:
            failures.append(error)
        else:
            progress.delivered += 1

    began = time.monotonic()
    next_report = began + report_every
    try:
        for event in events:
            if rate:
                await _wait_until(began + progress.sent / rate, stop)
            elif progress.sent % 1000 == 0:
                await asyncio.sleep(0)  # let signal handlers and the sender run
            if (stop is not None and stop.is_set()) or failures:
                break
            key, value, headers = event.record
            future = await producer.send(event.topic, value=value, key=key, headers=headers)
            pending.add(future)
            future.add_done_callback(delivered)
            progress.sent += 1
            progress.poison += event.poison is not None
            progress.simulated_time = event.time
            now = time.monotonic()
            if report is not None and now >= next_report:
                progress.elapsed = now - began
                report(progress)
                next_report = now + report_every
    finally:
        await producer.flush()
        if pending:
            await asyncio.wait(pending)
        progress.elapsed = time.monotonic() - began
    if failures:
        raise failures[0]
    return progress


async def _wait_until(due: float, stop: asyncio.Event | None) -> None:
    """Sleep until the monotonic time ``due``, or until ``stop`` is set."""
    delay = due - time.monotonic()
    if delay <= 0:
        return
    if stop is None:
        await asyncio.sleep(delay)
    else:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)
