"""Kafka plumbing of the backbone: topic creation, dead letters, projection subscribers."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from crm_events.topics import DEAD_LETTER, TopicSpec, topic_specs
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.message import StreamMessage

from crm_backbone.projection import ProjectionEngine, Record


async def ensure_topics(
    bootstrap_servers: str, specs: Sequence[TopicSpec] | None = None
) -> list[str]:
    """Create the contract's topics that are missing; names of those created.

    A topic that exists with fewer partitions than the contract says is an error: keys
    would map to other partitions than producers expect.
    """
    specs = list(specs if specs is not None else topic_specs())
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [spec for spec in specs if spec.name not in existing]
        if missing:
            await admin.create_topics(
                [
                    NewTopic(
                        s.name,
                        num_partitions=s.num_partitions,
                        replication_factor=s.replication_factor,
                        topic_configs=s.topic_configs,
                    )
                    for s in missing
                ]
            )
        present = [spec for spec in specs if spec.name in existing]
        if present:
            described = await admin.describe_topics([spec.name for spec in present])
            partitions = {t["topic"]: len(t["partitions"]) for t in described}
            wrong = [s.name for s in present if partitions[s.name] < s.num_partitions]
            if wrong:
                raise RuntimeError(f"topics with fewer partitions than the contract: {wrong}")
        return [spec.name for spec in missing]
    finally:
        await admin.close()


class KafkaDeadLetters:
    """Sends a record that cannot be applied to the dead-letter topic, unchanged.

    Its key, value and headers are kept; ``dlq_*`` headers say why and where it came from.
    The send is acknowledged (``acks=all``) before the caller commits its offset.
    """

    def __init__(self, producer: AIOKafkaProducer, topic: str = DEAD_LETTER.name) -> None:
        self.producer = producer
        self.topic = topic

    async def __call__(self, record: Record, code: str, reason: str, consumer: str) -> None:
        headers = [
            *record.headers,
            ("dlq_code", code.encode()),
            ("dlq_reason", reason.encode()),
            ("dlq_topic", record.topic.encode()),
            ("dlq_partition", str(record.partition).encode()),
            ("dlq_offset", str(record.offset).encode()),
            ("dlq_consumer", consumer.encode()),
            ("dlq_time", datetime.now(UTC).isoformat().encode()),
        ]
        await self.producer.send_and_wait(
            self.topic, value=record.value, key=record.key, headers=headers
        )


def reliable_producer(bootstrap_servers: str, **options: Any) -> AIOKafkaProducer:
    """An idempotent producer that waits for all in-sync replicas."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers, enable_idempotence=True, acks="all", **options
    )


async def _keep_raw(message: StreamMessage[Any]) -> Any:
    """Skip faststream's JSON decoding: the engine decodes and dead-letters bad bodies."""
    return message.body


def subscribe_projection(
    broker: KafkaBroker,
    engine: ProjectionEngine,
    *,
    topics: Sequence[str] | None = None,
    max_records: int = 1000,
    batch_timeout_ms: int = 100,
) -> None:
    """Consume the projection's topics in batches with its consumer group.

    ``topics`` replaces the projection's own (tests use topics of their own).
    Offsets are committed when ``process`` returned, that is after MongoDB acknowledged;
    if it raises, the batch's partitions are rewound and the batch is redelivered.
    """

    @broker.subscriber(
        *(topics or engine.projection.topics),
        group_id=engine.consumer_group,
        batch=True,
        max_records=max_records,
        batch_timeout_ms=batch_timeout_ms,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        decoder=_keep_raw,
    )
    async def apply_batch(_: Any, message: KafkaMessage) -> None:
        raw = message.raw_message
        records: tuple[Record, ...] = tuple(raw) if isinstance(raw, tuple | list) else (raw,)
        await engine.process(records)
        consumer = getattr(message, "consumer", None)
        highwater = getattr(consumer, "highwater", None)
        if callable(highwater):
            engine.observe_lag(records, lambda t, p: highwater(TopicPartition(t, p)))
