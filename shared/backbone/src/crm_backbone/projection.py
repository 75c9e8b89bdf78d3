"""The projection engine: Kafka batches into MongoDB read models, exactly once in effect.

A :class:`Projection` maps event types to handlers; a handler turns one event into
:class:`ViewUpdate` s (MongoDB update operators on one document each). For each batch the
:class:`ProjectionEngine`:

1. reads its positions collection, which remembers the last version applied per
   aggregate, for the aggregates named in the records' headers;
2. decodes the records one by one (no decoded batch piles up for the garbage collector);
   a record that breaks the contract, or whose handler raises, goes to the dead-letter
   topic with the reason and its original key, value and headers. It skips events whose
   aggregate version is already applied, and reports version gaps;
3. writes the updates as unordered bulk writes, each guarded by the document's own record
   of the last version applied from that aggregate (``_applied.<guard key>``), so a
   redelivered batch changes nothing even when the positions write was lost in a crash;
   :mod:`crm_backbone.merging` folds each document's updates into as few such writes as
   have the same effect, and says why that is safe;
4. records the new positions; only then does the caller commit the Kafka offsets.

A record behind an unsettled dead letter of its aggregate is parked instead
(:mod:`crm_backbone.holds`), and applied once the letter is settled.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import ClassVar

import structlog
from crm_events.envelope import HEADERS, Envelope, from_kafka
from crm_events.errors import ContractError
from crm_events.personal import FieldSealer
from crm_events.registry import EventPayload
from pymongo import UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from crm_backbone.holds import (
    VIEW_HOLDS_SUFFIX,
    VIEW_PARKING_SUFFIX,
    DeadLetterHolds,
    HoldsPass,
    drain_after_batch,
    header_version,
    release_unheld,
)
from crm_backbone.merging import Folding, Group, Write, guard_values
from crm_backbone.metrics import (
    DEAD_LETTERS,
    PROJECTION_BATCH_SIZE,
    PROJECTION_EVENTS,
    PROJECTION_GAPS,
)
from crm_backbone.parking import ParkedRecord, ParkingLot
from crm_backbone.readmodel import APPLIED, guard_key
from crm_backbone.records import Document as Document  # re-exported
from crm_backbone.records import Record as Record  # re-exported
from crm_backbone.records import prefetch_keys
from crm_backbone.retries import OUTAGES, DeadLetters, HandlerGaveUp, HandlerRetries

log = structlog.get_logger(__name__)

DUPLICATE_KEY = 11000


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


@dataclass
class BatchResult:
    applied: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    parked: int = 0
    settled: set[str] = field(default_factory=set)
    """Holds with letters settled by this batch: what they hold back may apply now."""
    gaps: int = 0
    positions: dict[str, int] = field(default_factory=dict)


async def _updates(handler: Handler, envelope: Envelope[EventPayload]) -> list[ViewUpdate]:
    return list(handler(envelope))


@dataclass
class _Pass:
    """One pass over records: what it decided, written once its handlers all returned."""

    holds: HoldsPass
    known: dict[str, int]
    """The last version applied of each aggregate met so far (guard key → version)."""
    result: BatchResult = field(default_factory=BatchResult)
    letters: list[tuple[Record, str, str]] = field(default_factory=list)
    parks: list[tuple[str, Record, str]] = field(default_factory=list)
    folding: Folding = field(default_factory=Folding)

    def dead_letter(
        self, record: Record, code: str, reason: str, version: int | None, last: int
    ) -> None:
        self.letters.append((record, code, reason))
        self.holds.dead_lettered(record, version, last)

    def fold(self, key: str, version: int, updates: Sequence[ViewUpdate]) -> None:
        """Take an event's updates, guarded by its aggregate's guard key and its version."""
        guard = f"{APPLIED}.{key}"
        documents = [(update.collection, update.document_id) for update in updates]
        for update, value in zip(updates, guard_values(documents, version), strict=True):
            self.folding.add(update.collection, update.document_id, guard, update.update, value)
        self.known[key] = version
        self.result.positions[key] = version
        self.result.applied += 1


def _upsert(write: Write) -> UpdateOne:
    return UpdateOne(write[0], write[1], upsert=True)


_SOURCE_HEADER, _AGGREGATE_HEADER = HEADERS["source"], HEADERS["aggregateid"]


def _header_key(headers: Sequence[tuple[str, bytes]]) -> str | None:
    """The guard key of a record, read from its headers as :func:`from_kafka` reads them."""
    try:
        attributes = dict(headers)  # the last of a repeated header wins, as there
        source, aggregate = attributes[_SOURCE_HEADER], attributes[_AGGREGATE_HEADER]
        return guard_key(source.decode(), aggregate.decode())
    except (TypeError, ValueError, KeyError, AttributeError):  # from_kafka will say why
        return None


class ProjectionEngine:
    """Applies batches of Kafka records to one projection's MongoDB collections."""

    def __init__(
        self,
        projection: Projection,
        database: AsyncDatabase[Document],
        dead_letters: DeadLetters,
        consumer_group: str,
        retries: HandlerRetries | None = None,
        sealer: FieldSealer | None = None,
    ) -> None:
        self.projection = projection
        self.sealer = sealer
        """Opens the personal data of the records (none: their erased forms)."""
        self.database = database
        self.dead_letters = dead_letters
        self.consumer_group = consumer_group
        self.retries = retries or HandlerRetries()
        self.positions = database[f"{projection.name}__positions"]
        name = projection.name  # the view owns them, whichever group fills it (see holds)
        self.holds = DeadLetterHolds(database, name, f"{name}{VIEW_HOLDS_SUFFIX}")
        self.parking = ParkingLot(database[f"{name}{VIEW_PARKING_SUFFIX}"], name, sealer=sealer)
        self._handlers = projection.handlers()
        self._draining = asyncio.Lock()

    async def setup(self) -> None:
        await self.projection.setup(self.database)
        await self.parking.setup()

    async def process(self, records: Sequence[Record]) -> BatchResult:
        """Apply one batch, then what released holds parked; raises (so the batch is
        redelivered) if MongoDB fails or a handler raised and is to be retried."""
        PROJECTION_BATCH_SIZE.labels(self.projection.name).observe(len(records))
        result = await self._apply(records)
        if result.settled:
            await drain_after_batch(self, result.settled)
        elif result.parked:
            await self.parking.observe()
        return result

    async def drain_released(self, holds: Iterable[str] | None = None) -> int:
        """Apply, in arrival order, the parked records of ``holds`` (default: all of this
        consumer's, and any record parked under a hold already closed) that no unsettled
        dead letter holds back any more."""
        async with self._draining:
            if holds is None:
                holds = set(await self.holds.all()) | await self.parking.holds()
            return await self._drain(holds)

    async def _drain(self, holds: Iterable[str]) -> int:
        drained = await release_unheld(self.holds, self.parking, holds, self._apply_released)
        await self.parking.observe()
        return drained

    async def _apply_released(self, parked: ParkedRecord, hold: str) -> None:
        await self._apply([parked], releasing=hold)

    async def _apply(self, records: Sequence[Record], releasing: str | None = None) -> BatchResult:
        # Positions first, from the headers: each envelope then lives for one iteration only
        # (far less garbage-collector work than holding a decoded batch).
        known = await self._known_positions({_header_key(r.headers) for r in records})
        await prefetch_keys(self.sealer, records)
        batch = _Pass(HoldsPass(self.holds, self.parking), known)
        await batch.holds.load(records, releasing)
        for record in records:
            batch.holds.redriven(record)
            await self._take(batch, record)
        await self._write_pass(batch)
        return batch.result

    async def _take(self, batch: _Pass, record: Record) -> None:
        """Decide what becomes of one record: dead letter, parked, duplicate or applied."""
        try:
            envelope = from_kafka(record.key, record.value or b"", record.headers, self.sealer)
        except ContractError as error:
            applied = batch.known.get(_header_key(record.headers) or "", 0)
            version = header_version(record.headers)
            batch.dead_letter(record, error.code, error.reason, version, applied)
            return
        key = guard_key(envelope.source, envelope.aggregateid)
        version = envelope.aggregateversion
        last = await self._last_applied(batch.known, key)
        if (hold := batch.holds.waits(record, version, last)) is not None:
            batch.parks.append((hold, record, "behind a dead letter of its aggregate"))
            batch.result.parked += 1
            return
        if version <= last:
            batch.result.duplicates += 1
            return
        if version > last + 1 and last:
            self._gap(batch.result, record, envelope, last)
        try:
            updates = await self._handle(envelope)
        except HandlerGaveUp as gave_up:
            batch.dead_letter(record, "handler_error", gave_up.reason, version, last)
            return
        batch.fold(key, version, updates)

    async def _last_applied(self, known: dict[str, int], key: str) -> int:
        if key not in known:  # not read from the headers: only a new aggregate is absent
            known.update(await self._known_positions({key}))
            known.setdefault(key, 0)
        return known[key]

    def _gap(
        self, result: BatchResult, record: Record, envelope: Envelope[EventPayload], last: int
    ) -> None:
        name = self.projection.name
        result.gaps += 1
        PROJECTION_GAPS.labels(name).inc()
        log.warning(
            "aggregate version gap",
            projection=name,
            aggregate=envelope.aggregateid,
            expected=last + 1,
            got=envelope.aggregateversion,
            topic=record.topic,
            offset=record.offset,
        )

    async def _handle(self, envelope: Envelope[EventPayload]) -> list[ViewUpdate]:
        """The handler's updates; :class:`HandlerGaveUp` if it kept raising."""
        handler = self._handlers.get(envelope.type)
        if handler is None:
            return []
        try:
            return list(handler(envelope))
        except OUTAGES:
            raise
        except Exception as error:  # a code bug, not bad input: retry before giving up
            call = partial(_updates, handler, envelope)
            return await self.retries.recover(self.consumer_group, error, call)

    async def _write_pass(self, batch: _Pass) -> None:
        """Write what a pass decided, the view before the positions, and settle letters
        last (a crash before re-derives it from the redelivery)."""
        name, result = self.projection.name, batch.result
        for record, code, reason in batch.letters:
            await self._dead_letter(record, code, reason, result)
        await batch.holds.write_letters()
        for hold, record, reason in batch.parks:
            await self.parking.park(hold, record, reason)
        for wave in batch.folding.waves():
            await self._write_wave(wave)
        await self._record_positions(result.positions)
        result.settled = await batch.holds.write_settled()
        PROJECTION_EVENTS.labels(name, "applied").inc(result.applied)
        PROJECTION_EVENTS.labels(name, "duplicate").inc(result.duplicates)
        PROJECTION_EVENTS.labels(name, "parked").inc(result.parked)

    async def _dead_letter(
        self, record: Record, code: str, reason: str, result: BatchResult
    ) -> None:
        await self.dead_letters(record, code, reason, self.consumer_group)
        result.dead_lettered += 1
        DEAD_LETTERS.labels(self.projection.name, code).inc()
        PROJECTION_EVENTS.labels(self.projection.name, "dead_lettered").inc()
        log.warning(
            "event dead-lettered",
            projection=self.projection.name,
            code=code,
            reason=reason,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
        )

    async def _known_positions(self, keys: Iterable[str | None]) -> dict[str, int]:
        """The last version applied of each aggregate; 0 for those never seen."""
        wanted = [key for key in keys if key is not None]
        if not wanted:
            return {}
        known = dict.fromkeys(wanted, 0)
        cursor = self.positions.find({"_id": {"$in": wanted}}, {"version": 1})
        async for doc in cursor:
            known[doc["_id"]] = doc["version"]
        return known

    async def _write_wave(self, wave: Sequence[tuple[str, Group]]) -> None:
        """Write one group per slot; replay the groups a document refused, update by update."""
        by_collection: dict[str, list[Group]] = defaultdict(list)
        for collection, group in wave:
            by_collection[collection].append(group)
        refused_indexes = await self._write_all(
            {
                collection: [_upsert(group.write()) for group in groups]
                for collection, groups in by_collection.items()
            }
        )
        refused = [
            (collection, by_collection[collection][index])
            for collection, indexes in refused_indexes.items()
            for index in indexes
        ]
        if not refused:
            return
        replays = [(collection, group.replay()) for collection, group in refused]
        for n in range(max(len(operations) for _, operations in replays)):
            step: dict[str, list[UpdateOne]] = defaultdict(list)
            for collection, operations in replays:
                if n < len(operations):
                    step[collection].append(_upsert(operations[n]))
            await self._write_all(step)  # refusals now mean "already applied"

    async def _write_all(self, operations: Mapping[str, list[UpdateOne]]) -> dict[str, list[int]]:
        """Bulk-write each collection's operations (concurrently); the refused ones' indexes."""
        if len(operations) == 1:
            ((collection, ops),) = operations.items()
            return {collection: await self._write(collection, ops)}
        outcomes = await asyncio.gather(
            *(self._write(collection, ops) for collection, ops in operations.items()),
            return_exceptions=True,
        )
        refused: dict[str, list[int]] = {}
        for collection, outcome in zip(operations, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                raise outcome
            refused[collection] = outcome
        return refused

    async def _write(self, collection: str, operations: list[UpdateOne]) -> list[int]:
        try:
            await self.database[collection].bulk_write(operations, ordered=False)
        except BulkWriteError as error:
            # A duplicate key means the guard refused the upsert: see the module docstring.
            errors = error.details["writeErrors"]
            if any(e["code"] != DUPLICATE_KEY for e in errors):
                raise
            return [e["index"] for e in errors]
        return []

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
