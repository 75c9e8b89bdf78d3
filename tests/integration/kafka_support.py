"""Helpers of the integration tests that drive the real subscriber: a customer's records,
produced to one partition, consumed until the consumer group committed past them."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from crm_backbone.kafka import BatchProcessor, ConsumerHealth, kafka_broker, subscribe
from crm_backbone.kafka_acls import ADMIN
from crm_backbone.rebuild import committed_offsets
from crm_backbone.testing import (
    customer_history,
)
from crm_events.envelope import KafkaRecord, to_kafka
from local_infra.pytest_plugin import kafka_login


def history(customer: str, changes: int) -> list[KafkaRecord]:
    """The records of one customer: registered, then ``changes`` phone changes."""
    return [to_kafka(envelope) for envelope in customer_history(customer, changes)]


async def produce(bootstrap: str, topic: str, records: list[KafkaRecord], partition: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **kafka_login(ADMIN), acks="all")
    await producer.start()
    try:
        for record in records:
            await producer.send_and_wait(
                topic,
                value=record.value,
                key=record.key,
                headers=record.headers,
                partition=partition,
            )
    finally:
        await producer.stop()


async def committed_past_all(bootstrap: str, group: str, topic: str) -> bool:
    """Whether ``group`` committed offsets up to the end of every partition of ``topic``."""
    login = kafka_login(ADMIN)
    offsets = await committed_offsets(bootstrap, group, login=login)
    committed = {tp: offset for tp, offset in offsets.items() if tp.topic == topic}
    if not committed:
        return False
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, **login)
    await consumer.start()
    try:
        ends = await consumer.end_offsets(list(committed))
    finally:
        await consumer.stop()
    return all(offset == ends[tp] for tp, offset in committed.items())


async def consume_all(
    bootstrap: str,
    topic: str,
    processor: BatchProcessor,
    *,
    max_records: int = 1000,
    within: float = 60,
) -> ConsumerHealth:
    """Run ``processor`` through the real subscriber until its group has committed past
    every record now in ``topic``; its consumer's health."""
    broker = kafka_broker(bootstrap, kafka_login(ADMIN), logger=None)
    health = subscribe(broker, processor, [topic], max_records=max_records)
    async with broker:
        await broker.start()
        async with asyncio.timeout(within):
            while not await committed_past_all(bootstrap, processor.consumer_group, topic):  # noqa: ASYNC110 - offsets live in Kafka
                await asyncio.sleep(0.2)
    return health
