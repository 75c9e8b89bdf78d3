"""The projection engine: Kafka batches into MongoDB read models, exactly once in effect.

A :class:`Projection` maps event types to handlers; a handler turns one event into
:class:`ViewUpdate` s (MongoDB update operators on one document each). For each batch the
:class:`ProjectionEngine`:

1. decodes every record; a record that breaks the contract, or whose handler raises,
   goes to the dead-letter topic with the reason and its original key, value and headers;
2. skips events whose aggregate version it has already applied (its positions collection
   remembers the last version per aggregate), and reports version gaps;
3. writes the updates as unordered bulk writes, each guarded by the document's own record
   of the last version applied from that aggregate (``_applied``), so a redelivered
   batch changes nothing even when the positions write was lost in a crash;
4. records the new positions; only then does the caller commit the Kafka offsets.

Updates of one document from one aggregate must apply in version order, so a batch is
written in waves: wave *n* holds the *n*-th update of each (document, aggregate) pair.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Protocol

import structlog
from crm_events.envelope import Envelope, from_kafka
from crm_events.errors import ContractError
from crm_events.registry import EventPayload
from pymongo import UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from crm_backbone.metrics import (
    CONSUMER_LAG,
    DEAD_LETTERS,
    PROJECTION_BATCH_SIZE,
    PROJECTION_EVENTS,
    PROJECTION_GAPS,
)

log = structlog.get_logger(__name__)

DUPLICATE_KEY = 11000
Document = dict[str, Any]


@dataclass(frozen=True)
class ViewUpdate:
    """MongoDB update operators (``$set``, ``$inc``, ...) for one document of a view."""

    collection: str
    document_id: str
    update: Document


Handler = Callable[[Envelope[EventPayload]], Iterable[ViewUpdate]]


class Projection:
    """A read model: the event types it handles and how each changes the view."""

    name: ClassVar[str]
    topics: ClassVar[tuple[str, ...]]

    def handlers(self) -> Mapping[str, Handler]:
        """Event type → handler. Types without a handler are acknowledged and ignored."""
        raise NotImplementedError

    async def setup(self, database: AsyncDatabase[Document]) -> None:
        """Create the view's indexes (idempotent)."""


class Record(Protocol):
    """The parts of a Kafka consumer record the engine reads."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> Sequence[tuple[str, bytes]]: ...


class DeadLetters(Protocol):
    async def __call__(self, record: Record, code: str, reason: str, consumer: str) -> None: ...


@dataclass
class BatchResult:
    applied: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    gaps: int = 0
    positions: dict[str, int] = field(default_factory=dict)


def guard_key(source: str, aggregate_id: str) -> str:
    """A MongoDB-safe field name for one aggregate of one producer."""
    return f"{source}|{aggregate_id}".replace(".", "_").replace("$", "_")


class ProjectionEngine:
    """Applies batches of Kafka records to one projection's MongoDB collections."""

    def __init__(
        self,
        projection: Projection,
        database: AsyncDatabase[Document],
        dead_letters: DeadLetters,
        consumer_group: str,
    ) -> None:
        self.projection = projection
        self.database = database
        self.dead_letters = dead_letters
        self.consumer_group = consumer_group
        self.positions = database[f"{projection.name}__positions"]
        self._handlers = projection.handlers()

    async def setup(self) -> None:
        await self.projection.setup(self.database)

    async def process(self, records: Sequence[Record]) -> BatchResult:
        """Apply one batch; raises (so the batch is redelivered) only if MongoDB fails."""
        name = self.projection.name
        PROJECTION_BATCH_SIZE.labels(name).observe(len(records))
        result = BatchResult()
        decoded: list[tuple[Record, Envelope[EventPayload]]] = []
        for record in records:
            try:
                envelope = from_kafka(record.key, record.value or b"", record.headers)
            except ContractError as error:
                await self._dead_letter(record, error.code, error.reason, result)
                continue
            decoded.append((record, envelope))

        known = await self._known_positions(decoded)
        waves: list[list[tuple[ViewUpdate, str, int]]] = []
        depth: dict[tuple[str, str, str], int] = defaultdict(int)
        for record, envelope in decoded:
            key = guard_key(envelope.source, envelope.aggregateid)
            version = envelope.aggregateversion
            last = known.get(key, 0)
            if version <= last:
                result.duplicates += 1
                continue
            if version > last + 1 and last:
                result.gaps += 1
                PROJECTION_GAPS.labels(name).inc()
                log.warning(
                    "aggregate version gap",
                    projection=name, aggregate=envelope.aggregateid,
                    expected=last + 1, got=version, topic=record.topic, offset=record.offset,
                )  # fmt: skip
            handler = self._handlers.get(envelope.type)
            try:
                updates = list(handler(envelope)) if handler else []
            except Exception as error:  # a poison event: its handler cannot apply it
                await self._dead_letter(record, "handler_error", repr(error), result)
                continue
            for update in updates:
                slot = (update.collection, update.document_id, key)
                index = depth[slot]
                depth[slot] += 1
                if index == len(waves):
                    waves.append([])
                waves[index].append((update, key, version))
            known[key] = version
            result.positions[key] = version
            result.applied += 1

        for wave in waves:
            await self._write_wave(wave)
        await self._record_positions(result.positions)
        PROJECTION_EVENTS.labels(name, "applied").inc(result.applied)
        PROJECTION_EVENTS.labels(name, "duplicate").inc(result.duplicates)
        return result

    def observe_lag(
        self, records: Sequence[Record], highwater: Callable[[str, int], int | None]
    ) -> None:
        """Set the consumer-lag gauge from the last record of each partition in the batch."""
        last: dict[tuple[str, int], int] = {}
        for record in records:
            last[(record.topic, record.partition)] = record.offset
        for (topic, partition), offset in last.items():
            end = highwater(topic, partition)
            if end is not None:
                CONSUMER_LAG.labels(self.consumer_group, topic, str(partition)).set(
                    max(end - offset - 1, 0)
                )

    async def _dead_letter(
        self, record: Record, code: str, reason: str, result: BatchResult
    ) -> None:
        await self.dead_letters(record, code, reason, self.consumer_group)
        result.dead_lettered += 1
        DEAD_LETTERS.labels(self.projection.name, code).inc()
        PROJECTION_EVENTS.labels(self.projection.name, "dead_lettered").inc()
        log.warning(
            "event dead-lettered",
            projection=self.projection.name, code=code, reason=reason,
            topic=record.topic, partition=record.partition, offset=record.offset,
        )  # fmt: skip

    async def _known_positions(
        self, decoded: Sequence[tuple[Record, Envelope[EventPayload]]]
    ) -> dict[str, int]:
        keys = list({guard_key(e.source, e.aggregateid) for _, e in decoded})
        if not keys:
            return {}
        cursor = self.positions.find({"_id": {"$in": keys}}, {"version": 1})
        return {doc["_id"]: doc["version"] async for doc in cursor}

    async def _write_wave(self, wave: Sequence[tuple[ViewUpdate, str, int]]) -> None:
        by_collection: dict[str, list[UpdateOne]] = defaultdict(list)
        for update, key, version in wave:
            guarded = {op: dict(fields) for op, fields in update.update.items()}
            guarded.setdefault("$set", {})[f"_applied.{key}"] = version
            by_collection[update.collection].append(
                UpdateOne(
                    {"_id": update.document_id, f"_applied.{key}": {"$not": {"$gte": version}}},
                    guarded,
                    upsert=True,
                )
            )
        for collection, operations in by_collection.items():
            try:
                await self.database[collection].bulk_write(operations, ordered=False)
            except BulkWriteError as error:
                # A duplicate key means the guard refused an update already applied.
                fatal = [e for e in error.details["writeErrors"] if e["code"] != DUPLICATE_KEY]
                if fatal:
                    raise

    async def _record_positions(self, positions: Mapping[str, int]) -> None:
        if not positions:
            return
        now = datetime.now(UTC)
        await self.positions.bulk_write(
            [
                UpdateOne(
                    {"_id": key},
                    {"$max": {"version": version}, "$set": {"updated_at": now}},
                    upsert=True,
                )
                for key, version in positions.items()
            ],
            ordered=False,
        )
