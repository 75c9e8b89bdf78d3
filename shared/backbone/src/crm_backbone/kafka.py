"""Kafka plumbing of the backbone: topic creation, dead letters, batch subscribers."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import structlog
from aiokafka import AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code
from crm_events.personal import FieldSealer
from crm_events.topics import DEAD_LETTER, TopicSpec, topic_specs
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.message import StreamMessage
from faststream.security import SASLPlaintext, SASLScram512

from crm_backbone.dead_letter_sealing import SealedLetter, seal_letter
from crm_backbone.holds import Drains
from crm_backbone.metrics import BATCHES_FAILED, CONSUMER_LAG
from crm_backbone.records import Record
from crm_backbone.retries import HandlerRetries

log = structlog.get_logger(__name__)
NO_ERROR = 0


async def ensure_topics(
    bootstrap_servers: str,
    specs: Sequence[TopicSpec] | None = None,
    *,
    login: Mapping[str, Any],
) -> list[str]:
    """Create the contract's topics that are missing; names of those created. ``login``:
    the client's options (``ServiceSettings.kafka_client_options``).

    A topic that exists with fewer partitions than the contract says is an error: keys
    would map to other partitions than producers expect; so is a topic the broker refused
    to create (the login may not create it: ``TopicAuthorizationFailedError``).
    """
    specs = list(specs if specs is not None else topic_specs())
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, **login)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [spec for spec in specs if spec.name not in existing]
        if missing:
            response = await admin.create_topics(
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
            for topic, code, *message in response.topic_errors:
                if code not in (NO_ERROR, TopicAlreadyExistsError.errno):  # created meanwhile
                    raise for_code(code)(f"creating {topic}: {''.join(map(str, message))}")
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
    """Sends a record that cannot be applied to the dead-letter topic.

    Its key and headers are kept, and its value; given a ``sealer``, the value and the
    headers that may hold personal data are sealed under the data subject's key
    (:mod:`crm_backbone.dead_letter_sealing`). ``dlq_*`` headers say why and where it came
    from. The send is acknowledged (``acks=all``) before the caller commits its offset.
    """

    def __init__(
        self,
        producer: AIOKafkaProducer,
        topic: str = DEAD_LETTER.name,
        sealer: FieldSealer | None = None,
    ) -> None:
        self.producer = producer
        self.topic = topic
        self.sealer = sealer

    async def __call__(self, record: Record, code: str, reason: str, consumer: str) -> None:
        now = datetime.now(UTC)
        if self.sealer is None:
            letter = SealedLetter(
                record.value,
                [*record.headers, ("dlq_code", code.encode()), ("dlq_reason", reason.encode())],
            )
        else:
            letter = await asyncio.to_thread(  # the key store may be a database round trip
                seal_letter,
                record.topic,
                record.key,
                record.value,
                record.headers,
                (code, reason),
                self.sealer,
                now,
            )
        headers = [
            *letter.headers,
            ("dlq_topic", record.topic.encode()),
            ("dlq_partition", str(record.partition).encode()),
            ("dlq_offset", str(record.offset).encode()),
            ("dlq_consumer", consumer.encode()),
            ("dlq_time", now.isoformat().encode()),
        ]
        await self.producer.send_and_wait(
            self.topic, value=letter.value, key=record.key, headers=headers
        )


def reliable_producer(bootstrap_servers: str, **options: Any) -> AIOKafkaProducer:
    """An idempotent producer that waits for all in-sync replicas."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers, enable_idempotence=True, acks="all", **options
    )


def kafka_broker(bootstrap_servers: str, login: Mapping[str, Any], **options: Any) -> KafkaBroker:
    """A faststream broker logged in with ``login`` (``ServiceSettings.kafka_client_options``)."""
    security = None
    if login:
        mechanism = SASLScram512 if login["sasl_mechanism"] == "SCRAM-SHA-512" else SASLPlaintext
        security = mechanism(login["sasl_plain_username"], login["sasl_plain_password"])
    return KafkaBroker(bootstrap_servers, security=security, **options)


async def _keep_raw(message: StreamMessage[Any]) -> Any:
    """Skip faststream's JSON decoding: the processor decodes and dead-letters bad bodies."""
    return message.body


async def _records_unread(
    records: tuple[ConsumerRecord[bytes, bytes], ...],
    faststream_parser: Callable[[tuple[ConsumerRecord[bytes, bytes], ...]], Awaitable[Any]],
) -> StreamMessage[Any]:
    """The batch as faststream's message, its records untouched: no header is decoded here.

    faststream's own batch parser decodes every header of every record as UTF-8 text. One
    header that is not UTF-8 made it raise before our handler ran; faststream then failed to
    rewind (its fallback parser raised again), swallowed the error, and the consumer's next
    commit went past the whole batch: every record in it was lost. So faststream builds its
    message (consumer, acknowledgement) from header-less copies, and the message carries the
    original records: decoding happens in the processor, record by record, where one bad
    record is dead-lettered alone.
    """
    message: StreamMessage[Any] = await faststream_parser(
        tuple(dataclasses.replace(record, headers=()) for record in records)
    )
    message.raw_message = records
    return message


class BatchProcessor(Protocol):
    """What consumes a batch of records: a projection engine or a policy consumer."""

    consumer_group: str

    async def process(self, records: Sequence[Record]) -> Any: ...


class Gate(Protocol):
    async def wait_if_paused(self) -> None: ...


@dataclass
class ConsumerHealth:
    """How one consumer group is doing, for readiness and the ops tools."""

    group: str
    last_batch_at: float | None = None
    failures_in_row: int = 0
    last_error: str | None = None
    lag: dict[tuple[str, int], int] = field(default_factory=dict)
    retries: HandlerRetries | None = None

    def stalled(self, after_failures: int = 3) -> str | None:
        """Why the consumer is not healthy, or None: its batches keep failing, or a handler
        raised until its event was dead-lettered (a code bug: red until the process restarts
        with the fix, then the dead letter is redriven)."""
        if self.failures_in_row >= after_failures:
            return f"{self.failures_in_row} batches in a row failed: {self.last_error}"
        if self.retries is not None and self.retries.dead_lettered:
            return (
                f"{self.retries.dead_lettered} event(s) dead-lettered after handler errors, "
                f"last: {self.retries.last_error}"
            )
        return None


def drain_released_holds(consumer: Drains, every: float = 2.0) -> asyncio.Task[None]:
    """Drain, now and then, the holds a purge released: an idle topic releases them too."""

    async def tick() -> None:
        while True:
            try:
                await consumer.drain_released()
            except Exception as error:  # retried at the next tick; never ends silently
                log.warning(
                    "draining released holds failed",
                    group=consumer.consumer_group,
                    error=repr(error),
                )
            await asyncio.sleep(every)

    return asyncio.create_task(tick(), name=f"drain {consumer.consumer_group}")


def subscribe(
    broker: KafkaBroker,
    processor: BatchProcessor,
    topics: Sequence[str],
    *,
    max_records: int = 1000,
    batch_timeout_ms: int = 100,
    gate: Gate | None = None,
) -> ConsumerHealth:
    """Consume ``topics`` in batches with the processor's consumer group.

    Offsets are committed when ``process`` returned, that is after its writes were
    acknowledged; if it raises, the batch's partitions are rewound and redelivered.
    A ``gate`` is waited on before each batch (a rebuild swapping the view pauses it).
    """
    health = ConsumerHealth(processor.consumer_group, retries=getattr(processor, "retries", None))

    @broker.subscriber(
        *topics,
        group_id=processor.consumer_group,
        batch=True,
        max_records=max_records,
        batch_timeout_ms=batch_timeout_ms,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        parser=_records_unread,
        decoder=_keep_raw,
    )
    async def apply_batch(_: Any, message: KafkaMessage) -> None:
        raw = message.raw_message
        records: tuple[Record, ...] = tuple(raw) if isinstance(raw, tuple | list) else (raw,)
        try:
            if gate is not None:
                await gate.wait_if_paused()
            await processor.process(records)
        except Exception as error:
            health.failures_in_row += 1
            health.last_error = repr(error)
            BATCHES_FAILED.labels(processor.consumer_group).inc()
            raise
        health.failures_in_row = 0
        health.last_batch_at = time.time()
        consumer = getattr(message, "consumer", None)
        highwater = getattr(consumer, "highwater", None)
        if callable(highwater):
            _observe_lag(health, records, lambda t, p: highwater(TopicPartition(t, p)))

    return health


def _observe_lag(
    health: ConsumerHealth, records: Sequence[Record], highwater: Callable[[str, int], int | None]
) -> None:
    """Lag per partition from the last record of each partition in the batch."""
    last: dict[tuple[str, int], int] = {}
    for record in records:
        last[(record.topic, record.partition)] = record.offset
    for (topic, partition), offset in last.items():
        end = highwater(topic, partition)
        if end is not None:
            lag = max(end - offset - 1, 0)
            health.lag[(topic, partition)] = lag
            CONSUMER_LAG.labels(health.group, topic, str(partition)).set(lag)
