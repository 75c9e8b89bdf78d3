"""Rebuild and replay of a read model on the genuine Kafka and MongoDB."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from crm_backbone.kafka import kafka_broker, subscribe
from crm_backbone.kafka_acls import ADMIN
from crm_backbone.pause import PauseGate
from crm_backbone.projection import Document, ProjectionEngine
from crm_backbone.rebuild import (
    CountOnly,
    Progress,
    StreamReader,
    committed_offsets,
    rebuild,
    replay,
)
from crm_backbone.records import Record
from crm_backbone.testing import SOURCE, CustomerCards
from crm_events.common import CustomerName, CustomerType
from crm_events.customer import CustomerProfileUpdated, CustomerRegistered, CustomerStatus
from crm_events.envelope import Envelope, to_kafka
from crm_events.registry import EventPayload
from local_infra.pytest_plugin import Servers, kafka_login
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

pytestmark = pytest.mark.integration

CUSTOMERS = 50
CHANGES = 30  # events per customer after its registration


def history(customer: str, changes: int) -> list[Envelope[EventPayload]]:
    registered = CustomerRegistered(
        customer_type=CustomerType.INDIVIDUAL,
        name=CustomerName(full_name=f"Customer {customer}"),
        status=CustomerStatus.ACTIVE,
        branch_id="BR-001",
    )
    payloads: list[EventPayload] = [registered] + [
        CustomerProfileUpdated(phone=f"+86 139 {n:04d} 0000") for n in range(changes)
    ]
    return [
        Envelope.new(p, customer, version, actor="t", source=SOURCE)
        for version, p in enumerate(payloads, start=1)
    ]


async def produce(bootstrap: str, topic: str, envelopes: list[Envelope[EventPayload]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **kafka_login(ADMIN), linger_ms=5)
    await producer.start()
    try:
        for envelope in envelopes:
            record = to_kafka(envelope)
            await producer.send(topic, record.value, key=record.key, headers=record.headers)
            await asyncio.sleep(0)
        await producer.flush()
    finally:
        await producer.stop()


@pytest.fixture
async def live(crm_servers: Servers, mongo_database: str) -> AsyncIterator[AsyncDatabase[Document]]:
    client: AsyncMongoClient[Document] = AsyncMongoClient(crm_servers.mongo_uri)
    yield client[mongo_database]
    await client.drop_database(f"{mongo_database}__rebuild")
    await client.close()


async def end_offsets(bootstrap: str, topic: str) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, **kafka_login(ADMIN))
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(3)]
        ends: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
        return ends
    finally:
        await consumer.stop()


async def caught_up(bootstrap: str, group: str, ends: dict[TopicPartition, int]) -> None:
    """Wait (bounded) until the live group has committed every record up to ``ends``."""
    async with asyncio.timeout(60):
        while True:
            committed = await committed_offsets(bootstrap, group, login=kafka_login(ADMIN))
            if all(committed.get(tp, 0) >= end for tp, end in ends.items()):
                return
            await asyncio.sleep(0.2)


async def cards(database: AsyncDatabase[Document]) -> dict[str, Document]:
    return {doc["_id"]: doc async for doc in database.cards.find({})}


async def test_a_rebuild_while_events_keep_flowing_ends_equal_to_the_live_view(
    crm_servers: Servers,
    kafka_topics: Callable[..., Awaitable[str]],
    live: AsyncDatabase[Document],
) -> None:
    bootstrap = crm_servers.kafka_bootstrap
    topic = await kafka_topics("cards")
    group = f"live-{uuid.uuid4()}"
    customers = [f"C{n:03d}" for n in range(CUSTOMERS)]
    histories = {c: history(c, CHANGES) for c in customers}
    first, second = [], []
    for envelopes in histories.values():
        first += envelopes[: CHANGES // 2]
        second += envelopes[CHANGES // 2 :]
    await produce(bootstrap, topic, first)

    broker = kafka_broker(bootstrap, kafka_login(ADMIN), logger=None)
    engine = ProjectionEngine(CustomerCards(), live, CountOnly(), group)
    await engine.setup()
    subscribe(broker, engine, [topic], max_records=200, gate=PauseGate(live, group))
    async with broker:
        await broker.start()
        flowing = asyncio.create_task(produce(bootstrap, topic, second))
        progress = await rebuild(
            CustomerCards(),
            live,
            bootstrap=bootstrap,
            login=kafka_login(ADMIN),
            live_group=group,
            topics=[topic],
        )
        await flowing
        await caught_up(bootstrap, group, await end_offsets(bootstrap, topic))

    rebuilt = await cards(live)
    assert set(rebuilt) == set(customers)
    for customer, envelopes in histories.items():
        assert rebuilt[customer]["changes"] == len(envelopes), customer  # none lost, none twice
        assert rebuilt[customer]["phone"] == f"+86 139 {CHANGES - 1:04d} 0000"
    assert progress.done >= len(first)

    # A second rebuild (nothing flowing now) gives identical documents.
    await rebuild(
        CustomerCards(),
        live,
        bootstrap=bootstrap,
        login=kafka_login(ADMIN),
        live_group=group,
        topics=[topic],
    )
    assert await cards(live) == rebuilt


@dataclass
class Holding:
    """A live consumer that applies a batch of second-half records, then holds it
    uncommitted until released: busy with a batch when a rebuild asks it to pause."""

    engine: ProjectionEngine
    beyond_version: int
    holding: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.consumer_group = self.engine.consumer_group

    async def process(self, records: Sequence[Record]) -> Any:
        applied = await self.engine.process(records)
        versions = [int(dict(r.headers).get("ce_aggregateversion", b"0")) for r in records]
        if max(versions, default=0) > self.beyond_version:
            self.holding.set()
            await self.release.wait()  # offsets are committed once this returns
        return applied


async def test_a_rebuild_keeps_the_records_of_a_batch_the_live_consumer_has_not_committed(
    crm_servers: Servers,
    kafka_topics: Callable[..., Awaitable[str]],
    live: AsyncDatabase[Document],
) -> None:
    """Records produced after the rebuild read the streams' ends, applied by the live
    consumer to the old view but not yet committed when the rebuild, unanswered, swaps:
    the rebuilt view must hold them (the consumer's writes went to the view swapped out)."""
    bootstrap = crm_servers.kafka_bootstrap
    topic = await kafka_topics("held")
    group = f"live-{uuid.uuid4()}"
    histories = {c: history(c, CHANGES) for c in (f"C{n:03d}" for n in range(CUSTOMERS))}
    half = CHANGES // 2
    first = [e for envelopes in histories.values() for e in envelopes[: half + 1]]
    second = [e for envelopes in histories.values() for e in envelopes[half + 1 :]]
    await produce(bootstrap, topic, first)
    engine = ProjectionEngine(CustomerCards(), live, CountOnly(), group)
    await engine.setup()
    consumer = Holding(engine, beyond_version=half + 1)
    broker = kafka_broker(bootstrap, kafka_login(ADMIN), logger=None)
    subscribe(broker, consumer, [topic], max_records=2000, gate=PauseGate(live, group))
    produced = threading.Event()

    def second_half_once_the_ends_are_read(_: Progress) -> None:
        if not produced.is_set():  # the rebuild's first report: it has read the ends
            writer = threading.Thread(target=asyncio.run, args=(produce(bootstrap, topic, second),))
            writer.start()
            writer.join()
            produced.set()

    async with broker:
        await broker.start()
        await caught_up(bootstrap, group, await end_offsets(bootstrap, topic))
        rebuilding = asyncio.create_task(
            rebuild(
                CustomerCards(),
                live,
                bootstrap=bootstrap,
                login=kafka_login(ADMIN),
                live_group=group,
                topics=[topic],
                pause_within=2.0,
                report=second_half_once_the_ends_are_read,
            )
        )
        await asyncio.wait_for(consumer.holding.wait(), 60)
        await rebuilding
        consumer.release.set()
        await caught_up(bootstrap, group, await end_offsets(bootstrap, topic))

    rebuilt = await cards(live)
    for customer, envelopes in histories.items():
        assert rebuilt[customer]["changes"] == len(envelopes), customer  # none lost, none twice


async def test_records_fetched_past_a_target_are_applied_not_dropped(
    crm_servers: Servers,
    kafka_topics: Callable[..., Awaitable[str]],
    live: AsyncDatabase[Document],
) -> None:
    bootstrap = crm_servers.kafka_bootstrap
    topic = await kafka_topics("cards", partitions=1)
    await produce(bootstrap, topic, history("C1", 19))
    partition = TopicPartition(topic, 0)
    reader = StreamReader(bootstrap, [partition], kafka_login(ADMIN))
    engine = ProjectionEngine(CustomerCards(), live, CountOnly(), "g.rebuild")
    await engine.setup()
    await reader.start({})
    try:
        # One fetch brings all 20 records; the first target is the 5th (as when records
        # arrive after a rebuild read the streams' ends).
        await reader.apply_until(engine, {partition: 5}, Progress(5), lambda _: None)
        await reader.apply_until(engine, {partition: 20}, Progress(20), lambda _: None)
    finally:
        await reader.stop()
    (card,) = (await cards(live)).values()
    assert card["changes"] == 20


async def test_a_replay_from_an_offset_restores_what_the_view_lost(
    crm_servers: Servers,
    kafka_topics: Callable[..., Awaitable[str]],
    live: AsyncDatabase[Document],
) -> None:
    bootstrap = crm_servers.kafka_bootstrap
    topic = await kafka_topics("cards", partitions=1)
    envelopes = history("C1", 9)
    await produce(bootstrap, topic, envelopes)
    progress = await replay(
        CustomerCards(),
        live,
        bootstrap=bootstrap,
        login=kafka_login(ADMIN),
        consumer_group="g",
        from_offset=0,
        topics=[topic],
    )
    assert progress.done == 10
    again = await replay(
        CustomerCards(),
        live,
        bootstrap=bootstrap,
        login=kafka_login(ADMIN),
        consumer_group="g",
        from_offset=5,
        topics=[topic],
    )
    assert again.done == 5
    (card,) = (await cards(live)).values()
    assert card["changes"] == 10  # replaying applied nothing twice
    with pytest.raises(ValueError, match="exactly one"):
        await replay(
            CustomerCards(),
            live,
            bootstrap=bootstrap,
            login=kafka_login(ADMIN),
            consumer_group="g",
            topics=[topic],
        )
