"""Ours and the usual approach: relay, projection engine, per-event consumer, rebuild."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from crm_backbone.kafka import KafkaDeadLetters, kafka_broker, reliable_producer, subscribe
from crm_backbone.projection import BatchResult, Projection, ProjectionEngine, Record
from crm_backbone.rebuild import rebuild
from crm_backbone.relay import OutboxRelay
from crm_customer.application import CustomerApplication
from crm_customer.publication import translate
from crm_customer.views import CustomerViews
from crm_customer.views.documents import CUSTOMERS
from crm_events.envelope import from_kafka
from crm_events.personal import FieldSealer
from faststream.kafka.annotations import KafkaMessage
from faststream.message import StreamMessage

from bench.bank import CRM_SOURCE, Expected
from bench.common import Database, Kafka

WAIT = 600.0
"""Seconds a consumer phase may take before the benchmark gives up on it."""


async def relay_rate(
    app: CustomerApplication,
    kafka: Kafka,
    topic: str,
    postgres_dsn: str | None = None,
    sealer: FieldSealer | None = None,
) -> float:
    """Events/s the relay publishes from ``app``'s store (everything in it) to ``topic``;
    with ``sealer``, personal fields sealed on Kafka."""
    relay = OutboxRelay(
        app,
        translate,
        source=CRM_SOURCE,
        bootstrap_servers=kafka.bootstrap,
        postgres_dsn=postgres_dsn,
        route=lambda _: topic,
        kafka_login=kafka.login,
        sealer=sealer,
    )
    await relay.start()
    try:
        began = time.perf_counter()
        sent = await relay.publish_pending()
        return sent / (time.perf_counter() - began)
    finally:
        await relay.stop()


class _Counting:
    """The engine, timing what it applies; ``done`` is set once ``total`` records were."""

    def __init__(self, engine: ProjectionEngine, total: int) -> None:
        self.engine = engine
        self.consumer_group = engine.consumer_group
        self.total = total
        self.result = BatchResult()
        self.started = 0.0
        self.batches: list[tuple[int, float]] = []
        """(records applied so far, when) after each batch."""
        self.done = asyncio.Event()

    async def process(self, records: Sequence[Record]) -> BatchResult:
        if not self.batches:
            self.started = time.perf_counter()
        result = await self.engine.process(records)
        seen = len(records) + (self.batches[-1][0] if self.batches else 0)
        self.batches.append((seen, time.perf_counter()))
        self.result.applied += result.applied
        self.result.duplicates += result.duplicates
        self.result.dead_lettered += result.dead_lettered
        self.result.gaps += result.gaps
        if seen >= self.total:
            self.done.set()
        return result

    def rate(self, first: int) -> float:
        """Records/s over the batches that applied the first ``first`` records."""
        seen, at = next((n, t) for n, t in self.batches if n >= first)
        return seen / (at - self.started)


async def projection_rate(
    kafka: Kafka,
    db: Database,
    topics: Sequence[str],
    group: str,
    dlq: str,
    total: int,
    batch: int,
    early: int,
    sealer: FieldSealer | None = None,
) -> tuple[float, float]:
    """Records/s the customer service's projection consumes and applies, from the first
    batch to the last, and over the first ``early`` records only (those the baseline
    applies): the real subscriber (faststream, batches of ``batch``), engine and view;
    ``sealer`` opens sealed personal fields."""
    producer = reliable_producer(kafka.bootstrap, **kafka.login)
    await producer.start()
    dead_letters = KafkaDeadLetters(producer, dlq, sealer)
    engine = ProjectionEngine(CustomerViews(), db, dead_letters, group, sealer=sealer)
    await engine.setup()
    counting = _Counting(engine, total)
    broker = kafka_broker(kafka.bootstrap, kafka.login, logger=None)
    subscribe(broker, counting, topics, max_records=batch)
    try:
        await broker.start()
        await asyncio.wait_for(counting.done.wait(), WAIT)
    finally:
        await broker.stop()
        await producer.stop()
    outcome = counting.result
    if (outcome.applied, outcome.dead_lettered, outcome.gaps) != (total, 0, 0):
        raise RuntimeError(f"the projection applied {outcome} of {total} events")
    return counting.rate(total), counting.rate(early)


async def _keep_raw(message: StreamMessage[Any]) -> Any:
    return message.body


async def baseline_rate(
    kafka: Kafka, db: Database, topics: Sequence[str], group: str, sample: int
) -> float:
    """Events/s of the usual approach over the first ``sample`` events: a plain faststream
    subscriber, one event at a time, the same handlers, one ``find_one_and_update`` (upsert)
    per document update, no guards, into an empty view with the same indexes."""
    view = CustomerViews()
    await view.setup(db)
    handlers = view.handlers()
    broker = kafka_broker(kafka.bootstrap, kafka.login, logger=None)
    done = asyncio.Event()
    times: list[float] = []

    @broker.subscriber(*topics, group_id=group, auto_offset_reset="earliest", decoder=_keep_raw)
    async def on_event(_: Any, message: KafkaMessage) -> None:
        record = message.raw_message
        assert not isinstance(record, tuple)
        envelope = from_kafka(record.key, record.value or b"", record.headers)
        handler = handlers.get(envelope.type)
        for update in handler(envelope) if handler else ():
            await db[update.collection].find_one_and_update(
                {"_id": update.document_id}, update.update, upsert=True
            )
        times.append(time.perf_counter())
        if len(times) == sample:
            done.set()

    try:
        await broker.start()
        await asyncio.wait_for(done.wait(), WAIT)
    finally:
        await broker.stop()
    return (sample - 1) / (times[sample - 1] - times[0])


async def rebuild_rate(
    kafka: Kafka,
    db: Database,
    topics: Sequence[str],
    live_group: str,
    projection: Projection | None = None,
) -> tuple[int, float]:
    """Records rebuilt and their rate: ``crm_backbone.rebuild`` of the view (default: the
    single customer view) from offset 0, beside the live one, swapped in at the end."""
    began = time.perf_counter()
    progress = await rebuild(
        projection or CustomerViews(),
        db,
        bootstrap=kafka.bootstrap,
        login=kafka.login,
        live_group=live_group,
        topics=list(topics),
    )
    return progress.done, progress.done / (time.perf_counter() - began)


async def verify(db: Database, expected: Expected) -> None:
    """The view holds exactly the expected aggregates at their last versions."""
    positions = db[f"{CustomerViews.name}__positions"]
    found = {doc["_id"]: doc["version"] async for doc in positions.find({}, {"version": 1})}
    if found != expected.positions:
        wrong = sum(found.get(key) != version for key, version in expected.positions.items())
        raise RuntimeError(f"the view is wrong: {wrong} aggregates not at their last version")
    documents = await db[CUSTOMERS].count_documents({})
    if documents != expected.customers:
        raise RuntimeError(f"{documents} customer documents, {expected.customers} expected")
