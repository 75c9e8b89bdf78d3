"""The limits: what bare aiokafka and bare MongoDB bulk writes do on these servers."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer
from crm_backbone.kafka import reliable_producer
from crm_simulator.feed import FeedEvent
from pymongo import UpdateOne

from bench.common import Database, Kafka, partitions


async def produce_rate(kafka: Kafka, chunks: Iterable[list[FeedEvent]]) -> float:
    """Records/s sent and acknowledged: bare sends, with the relay's producer settings
    (idempotent, ``acks=all``, 5 ms linger, 512 KiB batches).

    Only sending is timed: each chunk of events is made before its clock starts.
    """
    producer = reliable_producer(
        kafka.bootstrap, linger_ms=5, max_batch_size=512 * 1024, **kafka.login
    )
    await producer.start()
    sent, busy = 0, 0.0
    try:
        for chunk in chunks:
            began = time.perf_counter()
            deliveries = []
            for event in chunk:
                key, value, headers = event.record
                deliveries.append(
                    await producer.send(event.topic, value=value, key=key, headers=headers)
                )
            for delivery in deliveries:
                await delivery
            busy += time.perf_counter() - began
            sent += len(chunk)
    finally:
        await producer.stop()
    return sent / busy


async def consume_rate(kafka: Kafka, topics: Sequence[str], total: int) -> float:
    """Records/s a bare consumer reads from the beginning of ``topics`` (nothing decoded)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka.bootstrap,
        enable_auto_commit=False,
        max_poll_records=10_000,
        **kafka.login,
    )
    assigned = await partitions(kafka, topics)
    await consumer.start()
    try:
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        read = 0
        began = time.perf_counter()
        while read < total:
            batches = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            if not batches and time.perf_counter() - began > 60:
                raise RuntimeError(f"read only {read} of {total} records")
            read += sum(len(records) for records in batches.values())
        return read / (time.perf_counter() - began)
    finally:
        await consumer.stop()


async def bulk_upsert_rate(db: Database, targets: Sequence[str], batch: int) -> float:
    """Upserts/s of one small update per event on its customer's document, in unordered
    bulk writes of ``batch``."""
    collection = db["raw"]
    began = time.perf_counter()
    for start in range(0, len(targets), batch):
        operations: list[UpdateOne] = []
        for n, target in enumerate(targets[start : start + batch], start):
            update: dict[str, Any] = {"$set": {"event": n}, "$inc": {"events": 1}}
            operations.append(UpdateOne({"_id": target}, update, upsert=True))
        await collection.bulk_write(operations, ordered=False)
    return len(targets) / (time.perf_counter() - began)
