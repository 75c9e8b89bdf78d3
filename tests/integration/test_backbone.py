"""The backbone against genuine servers: relay to Kafka, projection into MongoDB, DLQ."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from crm_backbone.context import command_context
from crm_backbone.eventstore import EventStoreConfig
from crm_backbone.kafka import KafkaDeadLetters, kafka_broker, subscribe
from crm_backbone.kafka_acls import ADMIN
from crm_backbone.projection import ProjectionEngine
from crm_backbone.readmodel import wait_until_applied
from crm_backbone.relay import OutboxRelay, integration_envelope
from crm_backbone.testing import SOURCE, CustomerCards, Customers, translate
from crm_events.envelope import to_kafka
from eventsourcing.persistence import Tracking
from local_infra.pytest_plugin import Servers, kafka_login
from pymongo.asynchronous.database import AsyncDatabase

pytestmark = pytest.mark.integration

TopicFactory = Callable[..., Awaitable[str]]


@pytest.fixture
async def engine(
    crm_servers: Servers, kafka_topics: TopicFactory, database: AsyncDatabase[dict[str, Any]]
) -> AsyncIterator[ProjectionEngine]:
    """The sample projection over this test's database, dead letters to a topic of its own."""
    dead_letters = await kafka_topics("dlq", partitions=1)
    producer = AIOKafkaProducer(
        bootstrap_servers=crm_servers.kafka_bootstrap, **kafka_login(ADMIN), acks="all"
    )
    await producer.start()
    yield ProjectionEngine(
        CustomerCards(), database, KafkaDeadLetters(producer, dead_letters), f"g-{uuid.uuid4()}"
    )
    await producer.stop()


async def read_all(bootstrap: str, topic: str, expected: int) -> list[ConsumerRecord[bytes, bytes]]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        **kafka_login(ADMIN),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    try:
        async with asyncio.timeout(30):
            while len(records) < expected:
                batch = await consumer.getmany(timeout_ms=1000)
                records += [r for rs in batch.values() for r in rs]
        extra = await consumer.getmany(timeout_ms=500)
        records += [r for rs in extra.values() for r in rs]
    finally:
        await consumer.stop()
    return records


def make_relay(app: Customers, store: EventStoreConfig, bootstrap: str, topic: str) -> OutboxRelay:
    return OutboxRelay(
        app,
        translate,
        source=SOURCE,
        bootstrap_servers=bootstrap,
        kafka_login=kafka_login(ADMIN),
        postgres_dsn=store.postgres_dsn,
        route=lambda _: topic,
    )


def write_history(app: Customers, customers: int, changes: int) -> int:
    with command_context(actor="rm-042"):
        ids = [app.register(f"Customer {n}") for n in range(customers)]
        for round_ in range(changes):
            for customer_id in ids:
                app.change_phone(customer_id, f"+86 {round_:03d} {customer_id.int % 10000:04d}")
    return customers * (1 + changes)


async def test_relay_publishes_exactly_the_store_events_in_order(
    crm_servers: Servers, kafka_topics: TopicFactory, store: EventStoreConfig
) -> None:
    topic = await kafka_topics("relay")
    app = Customers(env=store.environment())
    total = write_history(app, customers=20, changes=4)
    relay = make_relay(app, store, crm_servers.kafka_bootstrap, topic)
    await relay.start()
    try:
        assert await relay.publish_pending() == total
        assert await relay.publish_pending() == 0
    finally:
        await relay.stop()
    assert relay.position() == relay.head()

    records = await read_all(crm_servers.kafka_bootstrap, topic, total)
    assert len(records) == total
    versions: dict[bytes, list[int]] = defaultdict(list)
    for record in records:
        headers = dict(record.headers)
        assert record.key == headers["ce_aggregateid"]
        assert headers["ce_actor"] == b"rm-042"
        versions[record.key].append(int(headers["ce_aggregateversion"]))
    assert all(v == list(range(1, 6)) for v in versions.values())
    app.close()


class CrashingTracking:
    """Wraps a tracking recorder; the first insert 'crashes' after Kafka acknowledged."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.crashed = False

    def insert_tracking(self, tracking: Tracking) -> None:
        if not self.crashed:
            self.crashed = True
            raise RuntimeError("relay killed between publish and record")
        self.inner.insert_tracking(tracking)

    def max_tracking_id(self, name: str) -> int | None:
        result: int | None = self.inner.max_tracking_id(name)
        return result


async def test_relay_crash_between_publish_and_record_loses_nothing_and_counts_once(
    crm_servers: Servers,
    kafka_topics: TopicFactory,
    store: EventStoreConfig,
    database: AsyncDatabase[dict[str, Any]],
    engine: ProjectionEngine,
) -> None:
    topic = await kafka_topics("relay_crash")
    app = Customers(env=store.environment())
    total = write_history(app, customers=10, changes=2)
    relay = make_relay(app, store, crm_servers.kafka_bootstrap, topic)
    relay.tracking = CrashingTracking(relay.tracking)  # type: ignore[assignment]
    await relay.start()
    try:
        with pytest.raises(RuntimeError, match="killed"):
            await relay.publish_pending()
        assert relay.position() == 0
        assert await relay.publish_pending() == total  # republished, not skipped
    finally:
        await relay.stop()

    records = await read_all(crm_servers.kafka_bootstrap, topic, 2 * total)
    assert len(records) == 2 * total
    result = await engine.process(records)
    assert (result.applied, result.duplicates, result.dead_lettered) == (total, total, 0)
    cards = await database.cards.find().to_list()
    assert len(cards) == 10
    assert all(card["changes"] == 3 for card in cards)
    app.close()


async def produce(
    bootstrap: str, topic: str, records: list[tuple[bytes, bytes, list[Any]]]
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **kafka_login(ADMIN), acks="all")
    await producer.start()
    try:
        for key, value, headers in records:
            await producer.send_and_wait(topic, value=value, key=key, headers=headers)
    finally:
        await producer.stop()


async def test_batch_delivered_twice_leaves_the_view_unchanged(
    crm_servers: Servers,
    kafka_topics: TopicFactory,
    database: AsyncDatabase[dict[str, Any]],
    engine: ProjectionEngine,
) -> None:
    topic = await kafka_topics("twice")
    app = Customers()
    total = write_history(app, customers=5, changes=3)
    relay = OutboxRelay(
        app,
        translate,
        source=SOURCE,
        bootstrap_servers=crm_servers.kafka_bootstrap,
        kafka_login=kafka_login(ADMIN),
        route=lambda _: topic,
    )
    await relay.start()
    await relay.publish_pending()
    await relay.stop()
    records = await read_all(crm_servers.kafka_bootstrap, topic, total)
    first = await engine.process(records)
    before = await database.cards.find().sort("_id").to_list()
    second = await engine.process(records)
    # Positions lost (as in a crash before they were written): the view's guards hold.
    await engine.positions.delete_many({})
    third = await engine.process(records)
    after = await database.cards.find().sort("_id").to_list()
    assert first.applied == total
    assert second.duplicates == total
    assert third.applied == total  # re-run, but every guarded update was refused
    assert before == after
    assert all(card["changes"] == 4 for card in after)


async def test_poison_events_go_to_the_dead_letter_topic_and_the_partition_goes_on(
    crm_servers: Servers,
    kafka_topics: TopicFactory,
    database: AsyncDatabase[dict[str, Any]],
    engine: ProjectionEngine,
) -> None:
    topic = await kafka_topics("poison", partitions=1)
    app = Customers()
    with command_context(actor="rm-7"):
        customer_id = app.register("Wang Fang")
        app.change_phone(customer_id, "+86 138 0000 0000")
        app.change_phone(customer_id, "+00 0000 0000")
        app.change_phone(customer_id, "+86 139 1111 2222")
    envelopes = [
        to_kafka(integration_envelope(event, payload, SOURCE))
        for event in list[Any](app.events.get(customer_id))
        if (payload := translate(event)) is not None
    ]
    registered, phone1, poison, phone2 = envelopes
    headers = registered.headers

    def with_header(name: str, value: bytes) -> list[tuple[str, bytes]]:
        return [(k, value if k == name else v) for k, v in headers]

    body = json.loads(registered.value)
    records = [
        (registered.key, registered.value, registered.headers),
        (registered.key, b"{not json", phone1.headers),  # malformed
        (registered.key, registered.value, with_header("ce_type", b"crm.customer.teleported")),
        (registered.key, registered.value, with_header("ce_schemaversion", b"99")),
        (registered.key, json.dumps(body | {"branch_id": ""}).encode(), phone1.headers),
        (poison.key, poison.value, poison.headers),  # its handler raises
        (phone1.key, phone1.value, phone1.headers),
        (phone2.key, phone2.value, phone2.headers),
    ]
    await produce(crm_servers.kafka_bootstrap, topic, records)

    broker = kafka_broker(crm_servers.kafka_bootstrap, kafka_login(ADMIN))
    subscribe(broker, engine, [topic])
    assert isinstance(engine.dead_letters, KafkaDeadLetters)
    async with broker:
        await broker.start()
        dead = await read_all(crm_servers.kafka_bootstrap, engine.dead_letters.topic, 5)
    # The handler's failure was retried, then dead-lettered; it holds its aggregate back:
    # version 4 is parked (not applied, not lost) until version 3 is redriven or purged.
    card = await database.cards.find_one({"_id": str(customer_id)})
    assert card is not None
    assert card["phone"] == "+86 138 0000 0000"
    assert card["changes"] == 2
    (parked,) = await engine.parking.parked(f"{topic} {registered.key.hex()}")
    assert (parked.offset, parked.value) == (7, phone2.value)
    assert engine.retries.dead_lettered == 1
    codes = [dict(r.headers)["dlq_code"].decode() for r in dead]
    assert codes == [
        "malformed",
        "unknown_type",
        "unknown_version",
        "invalid_body",
        "handler_error",
    ]
    assert all(dict(r.headers)["dlq_topic"] == topic.encode() for r in dead)
    assert dead[1].value == registered.value  # the original body is kept


async def test_read_your_writes_waits_without_polling_and_is_bounded(
    database: AsyncDatabase[dict[str, Any]],
) -> None:
    positions = database["cards__positions"]
    aggregate = str(uuid.uuid4())
    assert not await wait_until_applied(positions, SOURCE, aggregate, 1, within=0.5)

    async def apply_later() -> None:
        await asyncio.sleep(0.2)
        key = f"{SOURCE}|{aggregate}".replace(".", "_")
        await positions.update_one({"_id": key}, {"$max": {"version": 2}}, upsert=True)

    task = asyncio.create_task(apply_later())
    assert await wait_until_applied(positions, SOURCE, aggregate, 2, within=10)
    await task


async def test_relay_on_postgres_wakes_on_notify_not_on_its_poll_interval(
    crm_servers: Servers, kafka_topics: TopicFactory, postgres_database: str
) -> None:
    topic = await kafka_topics("notify")
    store = EventStoreConfig(postgres_dsn=postgres_database)
    app = Customers(env=store.environment())
    relay = OutboxRelay(
        app,
        translate,
        source=SOURCE,
        bootstrap_servers=crm_servers.kafka_bootstrap,
        kafka_login=kafka_login(ADMIN),
        postgres_dsn=postgres_database,
        route=lambda _: topic,
        poll_interval=3600,  # only a NOTIFY can wake it within the test's bound
    )
    running = asyncio.create_task(relay.run())
    try:
        await asyncio.sleep(1.0)  # let it publish the (empty) backlog and LISTEN
        await asyncio.to_thread(app.register, "Zhao Lei")  # another writer, no nudge
        records = await read_all(crm_servers.kafka_bootstrap, topic, 1)
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
        app.close()
    assert len(records) == 1
    assert dict(records[0].headers)["ce_type"] == b"crm.customer.registered"
