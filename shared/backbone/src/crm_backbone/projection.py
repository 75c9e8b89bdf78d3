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
4. records the new positions; only then does the caller commit the Kafka offsets.

Write strategy
--------------
Updates of one document from one aggregate must apply in version order. Within a batch,
the consecutive updates of each (collection, document, aggregate) *slot* are folded into
*groups*: runs of updates whose operators compose into a single update with the same
effect. A later ``$set`` of a path replaces what came before on it, and so does a later
``$unset`` of a top-level field (of a dotted path, only another ``$unset``); integer
``$inc`` s add up; ``$max``/``$min`` keep the extreme value; ``$push`` (without ``$sort`` or
``$position``, with the same ``$slice``) and ``$addToSet`` concatenate their ``$each``; a
``$set`` or ``$unset`` followed by ``$inc``/``$max``/``$min``/``$push`` becomes a ``$set``
of the result; operators on paths that neither equal nor contain one another just sit side
by side. Anything else (``a`` and ``a.b`` in different updates, other operator pairs on one
path, ``$rename``, unknown operators, ``$setOnInsert`` after the first update, an update
whose own paths conflict) ends the group, and the next update starts a new one. The batch
is written in waves of groups: wave *n* holds the *n*-th group of every slot, one unordered
bulk write per collection (the collections concurrently). Usually every slot is one group,
so a batch costs one view write, one positions read and one positions write, however many
events each aggregate has in it.

Why it is safe
--------------
Every update has a *guard value*: its event's aggregate version; when one event updates
the same document k times, its j-th update (from 0) but the last gets
``version - 1 + (j + 1) / k``, so the updates of a slot have strictly increasing guard
values. A group whose updates carry guard values ``first .. last`` is one upsert filtered
on ``_applied.<key>`` not ≥ ``first``, which sets it to ``last``: it matches only a
document holding none of the group's updates, and then applies them all at once (a single
document update is atomic). A document holding some of them already (the view was
written but the positions were lost in a crash, and the events came back, perhaps cut
into other batches) does not match, and the upsert fails with a duplicate key. Refused
groups are replayed one update per wave, each guarded by its own guard value, in order:
the updates the document already holds are refused again, the others applied once. A
duplicate key during that replay is final, since the first refusal proved the document
exists; so the replay also settles two writers inserting the same new document at once.

Merging is exact on the documents' values (but for the clock ``$currentDate`` reads). It
may differ in what no value comparison sees: the order of fields first created by
different updates of a group (MongoDB creates the fields of one update in name order), the
BSON width of integers (int32 or int64), and the last bit of a double field when it
receives merged integer ``$inc`` s (double ``$inc`` operands are never merged). And an
update MongoDB would refuse for the value it finds (an ``$inc`` of a text field) is not
refused if a later ``$set`` of that path absorbed it.
"""

from __future__ import annotations

import asyncio
import math
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any, ClassVar, Protocol, TypeVar

import structlog
from aiokafka.errors import KafkaError
from crm_events.envelope import HEADERS, Envelope, from_kafka
from crm_events.errors import ContractError
from crm_events.registry import EventPayload
from eventsourcing.persistence import PersistenceError
from pymongo import UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, PyMongoError

from crm_backbone.holds import (
    VIEW_HOLDS_SUFFIX,
    VIEW_PARKING_SUFFIX,
    DeadLetterHolds,
    HoldsPass,
    drain_after_batch,
    header_version,
    release_unheld,
)
from crm_backbone.metrics import (
    DEAD_LETTERS,
    HANDLER_ERRORS,
    PROJECTION_BATCH_SIZE,
    PROJECTION_EVENTS,
    PROJECTION_GAPS,
)
from crm_backbone.parking import ParkedRecord, ParkingLot
from crm_backbone.readmodel import APPLIED, guard_key
from crm_backbone.records import Document as Document  # re-exported
from crm_backbone.records import Record as Record  # re-exported

log = structlog.get_logger(__name__)

DUPLICATE_KEY = 11000
T = TypeVar("T")


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


class DeadLetters(Protocol):
    async def __call__(self, record: Record, code: str, reason: str, consumer: str) -> None: ...


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


class HandlerGaveUp(Exception):
    """A handler kept raising through its retries: dead-letter its event (``handler_error``)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


OUTAGES: tuple[type[Exception], ...] = (PersistenceError, PyMongoError, KafkaError, OSError)
"""Errors of the servers a handler talks to (event store, MongoDB, Kafka, the network):
the batch is redelivered until they answer, never dead-lettered nor counted as a bug."""


@dataclass
class HandlerRetries:
    """A handler that raises (a code bug, not bad input) is called again after a growing
    backoff, ``attempts`` calls in all, before its event is dead-lettered as
    ``handler_error``; the batch's offsets stay uncommitted meanwhile. Exceptions in
    ``passing`` (outages by default) propagate at once: the batch is redelivered."""

    attempts: int = 4
    first_backoff: float = 0.2
    max_backoff: float = 5.0
    dead_lettered: int = 0
    last_error: str | None = None

    async def run(
        self,
        consumer: str,
        call: Callable[[], Awaitable[T]],
        passing: tuple[type[Exception], ...] = OUTAGES,
    ) -> T:
        """``call()``, retried as above; :class:`HandlerGaveUp` once attempts are spent."""
        try:
            return await call()
        except passing:
            raise
        except Exception as error:
            return await self.recover(consumer, error, call, passing)

    async def recover(
        self,
        consumer: str,
        error: Exception,
        call: Callable[[], Awaitable[T]],
        passing: tuple[type[Exception], ...] = OUTAGES,
    ) -> T:
        """After the first call failed with ``error``: the remaining attempts."""
        for attempt in range(1, self.attempts):
            self._count(consumer, error)
            await asyncio.sleep(min(self.first_backoff * 2 ** (attempt - 1), self.max_backoff))
            try:
                return await call()
            except passing:
                raise
            except Exception as again:
                error = again
        self._count(consumer, error)
        self.dead_lettered += 1
        raise HandlerGaveUp(repr(error)) from error

    def _count(self, consumer: str, error: Exception) -> None:
        HANDLER_ERRORS.labels(consumer).inc()
        self.last_error = repr(error)


async def _updates(handler: Handler, envelope: Envelope[EventPayload]) -> list[ViewUpdate]:
    return list(handler(envelope))


@dataclass
class _Outcome:
    """What one pass over records decided, written once its handlers all returned."""

    letters: list[tuple[Record, str, str]] = field(default_factory=list)
    parks: list[tuple[str, Record, str]] = field(default_factory=list)


# --- Composing updates -------------------------------------------------------------------

_Effect = tuple[str, Any]
"""What one update does to one path: its operator and operand."""

_COMPOSABLE = frozenset(
    {"$set", "$unset", "$inc", "$max", "$min", "$push", "$addToSet", "$setOnInsert"}
)
"""Operators that may be merged with others (:func:`_then` says when on the same path)."""
_SIDE_BY_SIDE = frozenset({"$mul", "$pull", "$pullAll", "$pop", "$bit", "$currentDate"})
"""Operators merged only with operators on other paths (or replaced by a later ``$set``)."""
_MERGEABLE = _COMPOSABLE | _SIDE_BY_SIDE


def _ancestors(path: str) -> list[str]:
    """``"a.b.c"`` → ``["a", "a.b"]``: the paths that contain ``path``."""
    if "." not in path:
        return []
    parts = path.split(".")
    return [".".join(parts[:end]) for end in range(1, len(parts))]


def _effects(update: Mapping[str, Any]) -> dict[str, _Effect] | None:
    """Path → effect of one update; None if it cannot take part in a merge.

    That is when it uses an operator outside :data:`_COMPOSABLE` and :data:`_SIDE_BY_SIDE`
    (``$rename`` touches two paths), a positional path (``a.$``), or paths that conflict
    with one another (MongoDB rejects such an update, and must go on rejecting it).
    """
    effects: dict[str, _Effect] = {}
    dotted = False
    for operator, fields in update.items():
        if operator not in _MERGEABLE:
            return None
        if type(fields) is not dict and not isinstance(fields, Mapping):
            return None
        for path, operand in fields.items():
            if type(path) is not str or not path or "$" in path or path in effects:
                return None
            if "." in path:
                dotted = True
            effects[path] = (operator, operand)
    if dotted and len(effects) > 1:
        ancestors = {ancestor for path in effects for ancestor in _ancestors(path)}
        if not ancestors.isdisjoint(effects):
            return None
    return effects


def _is_int(value: Any) -> bool:
    return type(value) is int or (isinstance(value, int) and not isinstance(value, bool))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _ordered(a: Any, b: Any) -> bool:
    """Whether Python orders ``a`` and ``b`` as MongoDB does (numbers, or like datetimes)."""
    if _is_number(a) and _is_number(b):
        return not (math.isnan(a) or math.isnan(b))
    if isinstance(a, datetime) and isinstance(b, datetime):
        return (a.tzinfo is None) == (b.tzinfo is None)
    return False


def _each(operand: Any, modifiers: frozenset[str]) -> tuple[list[Any], dict[str, Any]] | None:
    """A ``$push``/``$addToSet`` operand as (items, modifiers); None with other modifiers."""
    if isinstance(operand, Mapping) and any(str(name).startswith("$") for name in operand):
        items = operand.get("$each")
        rest = {name: value for name, value in operand.items() if name != "$each"}
        if not isinstance(items, list) or not modifiers.issuperset(rest):
            return None
        return items, rest
    return [operand], {}


_NO_MODIFIERS: frozenset[str] = frozenset()
_SLICE: frozenset[str] = frozenset({"$slice"})


def _then(path: str, first: _Effect, second: _Effect) -> _Effect | None:
    """The effect of ``first`` then ``second`` on ``path``, if one operator has it."""
    operator, value = first
    then, operand = second
    if then == "$set":
        return second
    if then == "$unset":
        # Unless it is an $unset too, the first may have created the path's parents: an
        # $unset of ``a.b`` would leave ``a: {}`` behind, where an $unset alone leaves nothing.
        return second if operator == "$unset" or "." not in path else None
    if operator == "$unset":  # the path is absent: these create it...
        if "." in path and any(part.isdigit() for part in path.split(".")):
            return None  # ... unless it is an array element, which $unset sets to null
        if (then == "$inc" and _is_number(operand)) or then in ("$max", "$min"):
            return ("$set", operand)
        if then == "$push" and (plain := _each(operand, _NO_MODIFIERS)) is not None:
            return ("$set", plain[0])
        return None
    if operator == "$set":
        if then == "$inc" and _is_int(value) and _is_int(operand):
            return ("$set", value + operand)
        if then in ("$max", "$min") and _ordered(value, operand):
            wins = operand > value if then == "$max" else operand < value
            return ("$set", operand if wins else value)
        if (
            then == "$push"
            and isinstance(value, list)
            and (plain := _each(operand, _NO_MODIFIERS)) is not None
        ):
            return ("$set", [*value, *plain[0]])
        return None
    if operator != then:
        return None
    if then == "$inc" and _is_int(value) and _is_int(operand):
        return ("$inc", value + operand)
    if then in ("$max", "$min") and _ordered(value, operand):
        wins = operand > value if then == "$max" else operand < value
        return (then, operand if wins else value)
    if then in ("$push", "$addToSet"):
        allowed = _SLICE if then == "$push" else _NO_MODIFIERS
        before, after = _each(value, allowed), _each(operand, allowed)
        if before is not None and after is not None and before[1] == after[1]:
            return (then, {"$each": [*before[0], *after[0]], **before[1]})
    return None


def _update_of(effects: Mapping[str, _Effect]) -> Document:
    update: Document = {}
    for path, (operator, operand) in effects.items():
        update.setdefault(operator, {})[path] = operand
    return update


def _compose(first: Mapping[str, Any], second: Mapping[str, Any]) -> Document | None:
    """One update with the effect of ``first`` then ``second``; None if they do not compose."""
    effects = _effects(first)
    if effects is None:
        return None
    group = _Merge(effects)
    return _update_of(group.effects) if group.absorb(second) else None


class _Merge:
    """The effects of a run of updates on one document, growing while updates compose."""

    __slots__ = ("ancestors", "effects")

    def __init__(self, effects: dict[str, _Effect]) -> None:
        self.effects = effects
        self.ancestors = {ancestor for path in effects for ancestor in _ancestors(path)}

    def absorb(self, update: Mapping[str, Any]) -> bool:
        """Fold ``update`` in after the others; False (and unchanged) if it does not compose."""
        new = _effects(update)
        if new is None:
            return False
        effects = self.effects
        for path, effect in new.items():  # ``new`` becomes the changes to make
            current = effects.get(path)
            if current is None:
                if effect[0] == "$setOnInsert" or path in self.ancestors:
                    return False
                if "." in path and any(a in effects for a in _ancestors(path)):
                    return False
            elif (combined := _then(path, current, effect)) is not None:
                new[path] = combined
            else:
                return False
        for path in new:
            if "." in path and path not in effects:
                self.ancestors.update(_ancestors(path))
        effects.update(new)
        return True


def _guards(updates: Sequence[ViewUpdate], version: int) -> list[float]:
    """The guard value of each update of one event (see the module docstring)."""
    if len(updates) < 2:
        return [version] * len(updates)
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for update in updates:
        counts[(update.collection, update.document_id)] += 1
    if len(counts) == len(updates):
        return [version] * len(updates)
    seen: dict[tuple[str, str], int] = defaultdict(int)
    guards: list[float] = []
    for update in updates:
        document = (update.collection, update.document_id)
        count, index = counts[document], seen[document]
        seen[document] += 1
        guards.append(version if index == count - 1 else version - 1 + (index + 1) / count)
    return guards


_Write = tuple[Document, Document]
"""The filter and update of one guarded upsert."""


def _guarded(document_id: str, guard: str, first: float, last: float, update: Document) -> _Write:
    """An upsert of ``update`` that applies only if the document has nothing from ``first`` on."""
    update.setdefault("$set", {})[guard] = last
    return {"_id": document_id, guard: {"$not": {"$gte": first}}}, update


class _Group:
    """Consecutive updates of one slot, written as one guarded upsert when they compose."""

    __slots__ = ("document_id", "guard", "merge", "steps")

    def __init__(self, document_id: str, guard: str, update: Document, value: float) -> None:
        self.document_id = document_id
        self.guard = guard  # the guard field, _applied.<key>
        self.steps: list[tuple[Document, float]] = [(update, value)]  # (update, guard value)
        effects = _effects(update)
        self.merge = _Merge(effects) if effects is not None else None

    def absorb(self, update: Document, value: float) -> bool:
        """Take ``update`` (guard value ``value``) if it composes with the group's updates."""
        if self.merge is None or not self.merge.absorb(update):
            return False
        self.steps.append((update, value))
        return True

    def write(self) -> _Write:
        """All the group's updates as one upsert, guarded from the first to the last."""
        first, last = self.steps[0][1], self.steps[-1][1]
        if self.merge is None:
            update = {operator: dict(fields) for operator, fields in self.steps[0][0].items()}
        else:
            update = _update_of(self.merge.effects)
        return _guarded(self.document_id, self.guard, first, last, update)

    def replay(self) -> list[_Write]:
        """The updates one by one, each guarded by its own value: the refusal fallback."""
        return [
            _guarded(
                self.document_id,
                self.guard,
                value,
                value,
                {operator: dict(fields) for operator, fields in update.items()},
            )
            for update, value in self.steps
        ]


def _upsert(write: _Write) -> UpdateOne:
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


# --- The engine --------------------------------------------------------------------------


class ProjectionEngine:
    """Applies batches of Kafka records to one projection's MongoDB collections."""

    def __init__(
        self,
        projection: Projection,
        database: AsyncDatabase[Document],
        dead_letters: DeadLetters,
        consumer_group: str,
        retries: HandlerRetries | None = None,
    ) -> None:
        self.projection = projection
        self.database = database
        self.dead_letters = dead_letters
        self.consumer_group = consumer_group
        self.retries = retries or HandlerRetries()
        self.positions = database[f"{projection.name}__positions"]
        name = projection.name  # the view owns them, whichever group fills it (see holds)
        self.holds = DeadLetterHolds(database, name, f"{name}{VIEW_HOLDS_SUFFIX}")
        self.parking = ParkingLot(database[f"{name}{VIEW_PARKING_SUFFIX}"], name)
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
        name = self.projection.name
        result = BatchResult()
        outcome = _Outcome()
        # Positions first, from the headers: each envelope then lives for one iteration only
        # (far less garbage-collector work than holding a decoded batch).
        known = await self._known_positions({_header_key(r.headers) for r in records})
        holds = HoldsPass(self.holds, self.parking)
        await holds.load(records, releasing)
        slots: dict[tuple[str, str, str], list[_Group]] = {}
        for record in records:
            holds.redriven(record)
            try:
                envelope = from_kafka(record.key, record.value or b"", record.headers)
            except ContractError as error:
                outcome.letters.append((record, error.code, error.reason))
                applied = known.get(_header_key(record.headers) or "", 0)
                holds.dead_lettered(record, header_version(record.headers), applied)
                continue
            key = guard_key(envelope.source, envelope.aggregateid)
            version = envelope.aggregateversion
            if key not in known:  # not read from the headers: only a new aggregate is absent
                known.update(await self._known_positions({key}))
                known.setdefault(key, 0)
            last = known.get(key, 0)
            if (hold := holds.waits(record, version, last)) is not None:
                outcome.parks.append((hold, record, "behind a dead letter of its aggregate"))
                result.parked += 1
                continue
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
            except OUTAGES:
                raise
            except Exception as error:  # a code bug, not bad input: retry before giving up
                assert handler is not None  # only a handler raises here
                try:
                    updates = await self.retries.recover(
                        self.consumer_group, error, partial(_updates, handler, envelope)
                    )
                except HandlerGaveUp as gave_up:
                    outcome.letters.append((record, "handler_error", gave_up.reason))
                    holds.dead_lettered(record, version, last)
                    continue
            guard = f"{APPLIED}.{key}"
            for update, value in zip(updates, _guards(updates, version), strict=True):
                slot = (update.collection, update.document_id, key)
                groups = slots.get(slot)
                if groups is None:
                    slots[slot] = [_Group(update.document_id, guard, update.update, value)]
                elif not groups[-1].absorb(update.update, value):
                    groups.append(_Group(update.document_id, guard, update.update, value))
            known[key] = version
            result.positions[key] = version
            result.applied += 1

        # Every handler returned: write what was decided, the view before the positions,
        # and settle letters last (a crash before re-derives it from the redelivery).
        for record, code, reason in outcome.letters:
            await self._dead_letter(record, code, reason, result)
        await holds.write_letters()
        for hold, record, reason in outcome.parks:
            await self.parking.park(hold, record, reason)
        depth = max((len(groups) for groups in slots.values()), default=0)
        for n in range(depth):
            await self._write_wave(
                [(slot[0], groups[n]) for slot, groups in slots.items() if len(groups) > n]
            )
        await self._record_positions(result.positions)
        result.settled = await holds.write_settled()
        PROJECTION_EVENTS.labels(name, "applied").inc(result.applied)
        PROJECTION_EVENTS.labels(name, "duplicate").inc(result.duplicates)
        PROJECTION_EVENTS.labels(name, "parked").inc(result.parked)
        return result

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

    async def _write_wave(self, wave: Sequence[tuple[str, _Group]]) -> None:
        """Write one group per slot; replay the groups a document refused, update by update."""
        by_collection: dict[str, list[_Group]] = defaultdict(list)
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
