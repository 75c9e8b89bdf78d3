"""Records an outside producer may write, through the real subscriber, Kafka and MongoDB.

Every record is applied or dead-lettered with its reason, and its neighbours in the batch
are never lost, whatever bytes its key, headers and value hold.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from crm_backbone.kafka import KafkaDeadLetters, subscribe
from crm_backbone.projection import ProjectionEngine
from crm_backbone.testing import SOURCE, CustomerCards
from crm_events.common import CustomerName, CustomerType
from crm_events.customer import CustomerProfileUpdated, CustomerRegistered, CustomerStatus
from crm_events.envelope import Envelope, KafkaRecord, to_kafka
from crm_events.registry import EventPayload
from crm_ops.deadletters import read_all
from crm_ops.kafka_state import group_lag
from faststream.kafka import KafkaBroker
from local_infra.pytest_plugin import Servers
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

pytestmark = pytest.mark.integration

TopicFactory = Callable[..., Awaitable[str]]


def history(customer: str, changes: int) -> list[KafkaRecord]:
    """The records of one customer: registered, then ``changes`` phone changes."""
    payloads: list[EventPayload] = [
        CustomerRegistered(
            customer_type=CustomerType.INDIVIDUAL,
            name=CustomerName(full_name="Test Customer"),
            status=CustomerStatus.PROSPECT,
            branch_id="BR-001",
        ),
        *(CustomerProfileUpdated(phone=f"+86 100 {n:04d}") for n in range(changes)),
    ]
    return [
        to_kafka(Envelope.new(payload, customer, version, actor="rm-1", source=SOURCE))
        for version, payload in enumerate(payloads, start=1)
    ]


async def produce(bootstrap: str, topic: str, records: list[KafkaRecord], partition: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for record in records:
            await producer.send_and_wait(
                topic, value=record.value, key=record.key, headers=record.headers,
                partition=partition,
            )  # fmt: skip
    finally:
        await producer.stop()


async def committed_past_all(bootstrap: str, group: str, topic: str) -> bool:
    """Whether ``group`` committed offsets up to the end of every partition of ``topic``."""
    rows = [row for row in await group_lag(bootstrap, group) if row.topic == topic]
    return bool(rows) and all(row.committed == row.end for row in rows)


@pytest.fixture
async def database(
    crm_servers: Servers, mongo_database: str
) -> AsyncIterator[AsyncDatabase[dict[str, Any]]]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(crm_servers.mongo_uri)
    yield client[mongo_database]
    await client.close()


async def test_a_header_that_is_not_utf8_is_dead_lettered_alone(
    crm_servers: Servers, kafka_topics: TopicFactory, database: AsyncDatabase[dict[str, Any]]
) -> None:
    bootstrap = crm_servers.kafka_bootstrap
    topic, dead = await kafka_topics("events", partitions=1), await kafka_topics("dlq", 1)
    first, second = history("C-1", 2), history("C-2", 2)
    broken = KafkaRecord(
        second[0].key, second[0].value,
        [(name, b"\xed\xa0\x80" if name == "ce_id" else raw) for name, raw in first[2].headers],
    )  # fmt: skip
    # All in one partition, fetched as one batch: the broken record sits among valid ones.
    await produce(bootstrap, topic, [first[0], first[1], broken, *second, first[2]], 0)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    group = f"g-{uuid.uuid4()}"
    engine = ProjectionEngine(CustomerCards(), database, KafkaDeadLetters(producer, dead), group)
    broker = KafkaBroker(bootstrap, logger=None)
    subscribe(broker, engine, [topic])
    try:
        async with broker:
            await broker.start()
            async with asyncio.timeout(60):
                while not await committed_past_all(bootstrap, group, topic):  # noqa: ASYNC110 - offsets live in Kafka
                    await asyncio.sleep(0.2)
    finally:
        await producer.stop()
    cards = {card["_id"]: card async for card in database.cards.find()}
    assert {key: card["changes"] for key, card in cards.items()} == {"C-1": 3, "C-2": 3}
    letters = [letter async for letter in read_all(bootstrap, dead)]
    assert [(letter.header("dlq_code"), letter.header("dlq_offset")) for letter in letters] == [
        ("malformed", "2")
    ]
    assert letters[0].header("dlq_reason") == "header ce_id is not UTF-8 text"
