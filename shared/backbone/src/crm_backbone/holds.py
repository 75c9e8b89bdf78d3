"""Dead-letter holds: a dead letter holds back its own aggregate, not its partition.

When a consumer dead-letters a record, the record's aggregate, named by its **(topic,
key)** bytes (so even a record whose headers cannot be read names it), is *held* for that
consumer: its later events are parked (:mod:`crm_backbone.parking`) instead of applied,
so none is applied before the event that is missing. A hold remembers its dead letters
(the original record's topic, partition and offset) and the aggregate version each was,
when its headers tell it:

- A dead letter of version N holds back versions above N only. It is **settled** when
  version N of the aggregate is in the consumer's hands: a valid record of version N
  arrives (the redriven letter, or a valid copy of the poisoned record), or N is already
  applied.
- A dead letter whose version cannot be read holds back every later record of the key,
  until its redriven record comes back (``crm-ops dlq redrive`` marks it with the
  :data:`REDRIVE_HEADER`) or it is purged.
- ``crm-ops dlq purge`` settles the letter in the consumer's database
  (:func:`settle_everywhere`): only the consumer has the handlers to apply what is parked.

Once letters are settled, the consumer applies the parked records no letter holds back
any more, in arrival order (after the batch that settled them, and on a periodic tick so
that a purge releases on an idle topic too); a hold with no letter and no parked record
left is deleted. A keyless record, or one whose key is not the aggregate id its headers
name, is dead-lettered without a hold: its key names no aggregate of its own.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Protocol

import structlog
from crm_events.envelope import HEADERS
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from crm_backbone.parking import ParkedRecord, ParkingLot, StillHeld
from crm_backbone.records import Document, Record

log = structlog.get_logger(__name__)

HOLDS_COLLECTION = "dead_letter_holds"
"""Where policies keep their holds (one collection per service database, every owner)."""
VIEW_HOLDS_SUFFIX, VIEW_PARKING_SUFFIX = "__holds", "__parked"
"""A view keeps its holds and parked records in collections of its own, beside its
documents and positions: a rebuild builds them too, and its swap carries them along."""
_VERSION_HEADER, _AGGREGATE_HEADER = HEADERS["aggregateversion"], HEADERS["aggregateid"]
REDRIVE_HEADER = "crm_redrive_of"
"""Added by ``crm-ops dlq redrive``: ``topic:partition:offset`` of the record it sends again."""


@dataclass(frozen=True)
class Letter:
    """One dead letter holding its aggregate back: where the record was, its version."""

    topic: str
    partition: int
    offset: int
    version: int | None  # None: unreadable, it holds back every later record

    @property
    def position(self) -> str:
        return f"{self.topic}:{self.partition}:{self.offset}"

    def as_document(self) -> Document:
        return {
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "version": self.version,
        }

    @classmethod
    def of(cls, record: Record, version: int | None) -> Letter:
        return cls(record.topic, record.partition, record.offset, version)


def hold_of(record: Record) -> str | None:
    """The hold of a record's aggregate: its topic and key bytes.

    None without a key, and for a key other than the aggregate id its headers name: such
    a key names no aggregate of this record's (a hold under it could never be settled).
    """
    if record.key is None:
        return None
    key = bytes(record.key)
    claimed = [value for name, value in record.headers if name == _AGGREGATE_HEADER]
    if len(claimed) == 1 and bytes(claimed[0]) != key:
        return None
    return f"{record.topic} {key.hex()}"


def redriven_position(record: Record) -> str | None:
    """``topic:partition:offset`` of the dead letter this record redrives, if it is one."""
    for name, value in record.headers:
        if name == REDRIVE_HEADER:
            return bytes(value).decode(errors="replace")
    return None


def header_version(headers: Sequence[tuple[str, bytes]]) -> int | None:
    """The aggregate version a record's headers claim, if they can be read."""
    try:
        return int(dict(headers)[_VERSION_HEADER].decode())
    except (TypeError, ValueError, KeyError, AttributeError):
        return None


def must_wait(letters: Iterable[Letter], version: int) -> bool:
    """Whether an event of ``version`` must wait behind these unsettled letters."""
    return any(letter.version is None or version > letter.version for letter in letters)


class DeadLetterHolds:
    """The holds of one consumer (``owner``), in its database: ``{_id, letters: [...]}``."""

    def __init__(
        self, database: AsyncDatabase[Document], owner: str, collection: str = HOLDS_COLLECTION
    ) -> None:
        self.collection = database[collection]
        self.owner = owner

    def _id(self, hold: str) -> Document:
        return {"owner": self.owner, "hold": hold}

    async def letters(self, holds: Iterable[str | None]) -> dict[str, list[Letter]]:
        """The unsettled letters of each of ``holds`` that exists (released ones: empty)."""
        wanted = sorted({hold for hold in holds if hold is not None})
        if not wanted:
            return {}
        cursor = self.collection.find({"_id": {"$in": [self._id(hold) for hold in wanted]}})
        return {
            doc["_id"]["hold"]: [Letter(**letter) for letter in doc["letters"]]
            async for doc in cursor
        }

    async def add(self, hold: str, letter: Letter) -> None:
        await self.collection.update_one(
            {"_id": self._id(hold)},
            {"$addToSet": {"letters": letter.as_document()}},
            upsert=True,
        )

    async def settle(self, settled: Mapping[str, Iterable[Letter]]) -> None:
        """Take settled letters off their holds (their records are in hand)."""
        for hold, letters in settled.items():
            documents = [letter.as_document() for letter in letters]
            if documents:
                await self.collection.update_one(
                    {"_id": self._id(hold)}, {"$pullAll": {"letters": documents}}
                )

    async def all(self) -> list[str]:
        """This consumer's holds (a purge may have settled letters of any of them)."""
        cursor = self.collection.find({"_id.owner": self.owner}, {"_id": 1})
        return [doc["_id"]["hold"] async for doc in cursor]

    async def close(self, hold: str) -> None:
        """Forget a released hold (a letter added meanwhile keeps it)."""
        await self.collection.delete_one({"_id": self._id(hold), "letters": {"$size": 0}})

    async def counts(self) -> dict[str, int]:
        """Holds of this consumer with unsettled letters, and letters in them."""
        cursor = self.collection.find({"_id.owner": self.owner})
        holds = [len(doc["letters"]) async for doc in cursor]
        return {"holds": sum(1 for n in holds if n), "letters": sum(holds)}


def is_holds_collection(name: str) -> bool:
    """The policies' shared holds collection, or a view's own (``<view>__holds``)."""
    return name == HOLDS_COLLECTION or name.endswith(VIEW_HOLDS_SUFFIX)


def owned_by(owner: str, consumer: str) -> bool:
    """Whether a hold's owner is this consumer group: the group itself (a policy), or the
    view the group ends with (a view's holds belong to the view, so that a rebuild's
    swap brings them along with the view)."""
    return owner == consumer or consumer.endswith(f".{owner}")


async def settle_everywhere(
    client: AsyncMongoClient[Document], consumer: str, topic: str, partition: int, offset: int
) -> list[str]:
    """Settle one consumer's letter wherever its holds live; the databases touched.

    For ``crm-ops dlq purge``: the consumer then drains the released hold itself.
    """
    touched = []
    letter = {"topic": topic, "partition": partition, "offset": offset}
    for name in await client.list_database_names():
        database = client[name]
        for collection in filter(is_holds_collection, await database.list_collection_names()):
            owners = await database[collection].distinct("_id.owner")
            result = await database[collection].update_many(
                {"_id.owner": {"$in": [o for o in owners if owned_by(o, consumer)]}},
                {"$pull": {"letters": letter}},
            )
            if result.modified_count:
                touched.append(name)
    return touched


class Drains(Protocol):
    """A consumer that drains what its settled dead letters no longer hold back."""

    consumer_group: str

    async def drain_released(self, holds: Iterable[str] | None = None) -> int: ...


async def drain_after_batch(consumer: Drains, holds: Iterable[str]) -> None:
    """Drain right after the batch that settled ``holds``; a failure is only logged, the
    batch being written: the periodic drain tries again."""
    try:
        await consumer.drain_released(holds)
    except Exception as error:
        log.warning(
            "draining released holds failed", group=consumer.consumer_group, error=repr(error)
        )


async def release_unheld(
    holds: DeadLetterHolds,
    parking: ParkingLot,
    hold_ids: Iterable[str],
    apply: Callable[[ParkedRecord, str], Awaitable[object]],
) -> int:
    """Apply (``apply(record, hold)``), in arrival order, the records parked under
    ``hold_ids`` that no unsettled dead letter holds back any more, and close each hold
    left with nothing parked; how many were applied."""

    async def unless_held(hold: str, parked: ParkedRecord) -> None:
        version = header_version(parked.headers)
        if version is None or must_wait((await holds.letters([hold])).get(hold, []), version):
            raise StillHeld("a dead letter of its aggregate still holds it back")
        await apply(parked, hold)

    released = 0
    for hold in hold_ids:
        released += await parking.release(hold, partial(unless_held, hold))
        if not await parking.held([hold]):
            await holds.close(hold)
    return released


class HoldsPass:
    """The holds of one pass over records (a batch, or one parked record being released):
    which records wait, which letters are added and settled; written by the caller once
    every handler of the pass returned (:meth:`write_letters`, then :meth:`write_settled`).
    """

    def __init__(self, holds: DeadLetterHolds, parking: ParkingLot) -> None:
        self.holds = holds
        self.parking = parking
        self.letters: dict[str, list[Letter]] = {}
        self.behind: set[str] = set()  # holds with records parked
        self.added: list[tuple[str, Letter]] = []
        self.settled: dict[str, list[Letter]] = defaultdict(list)
        self._went_ahead: set[str] = set()
        self._missing: set[str] = set()  # holds whose missing event the current record is

    async def load(self, records: Iterable[Record], releasing: str | None = None) -> None:
        """Read the holds of ``records``' aggregates and which have records parked."""
        keys = {hold for hold in map(hold_of, records) if hold is not None}
        self.letters = await self.holds.letters(keys)
        # Asked of the parking lot even for holds without letters: another instance may
        # have closed the hold while this one parked under it, and what came later must
        # still queue behind. The hold being released is not "behind" itself.
        if keys:
            self.behind = await self.parking.held(keys) - {releasing}

    def dead_lettered(self, record: Record, version: int | None, applied: int = 0) -> None:
        """``record`` is dead-lettered: hold its aggregate back, unless its version is applied."""
        hold = hold_of(record)
        self._missing.discard(hold or "")
        if hold is None or (version is not None and version <= applied):
            return
        letter = Letter.of(record, version)
        self.letters.setdefault(hold, []).append(letter)
        self.added.append((hold, letter))

    def redriven(self, record: Record) -> None:
        """Settle the letter ``record`` redrives, if it holds here (call before decoding)."""
        hold = hold_of(record)
        if hold is not None and self.letters.get(hold):
            position = redriven_position(record)
            self._settle(hold, [ltr for ltr in self.letters[hold] if ltr.position == position])

    def waits(self, record: Record, version: int, applied: int = 0) -> str | None:
        """The hold a valid record of ``version`` must be parked under, or None: apply it.

        Letters of this version are settled (it is in hand), and so are those of versions
        already applied. The first missing event of a pass goes ahead of what is parked
        (all later versions); anything else of a hold with parked records queues behind.
        """
        hold = hold_of(record)
        if hold is None:
            return None
        held = self.letters.get(hold, [])
        if held:
            self._settle(hold, [letter for letter in held if letter.version == version])
            self._settle(
                hold,
                [letter for letter in held if (letter.version or applied + 1) <= applied],
                missing=False,
            )
        missing = hold in self._missing
        self._missing.discard(hold)
        ahead = missing and hold not in self._went_ahead
        if must_wait(held, version) or (hold in self.behind and not ahead):
            self.behind.add(hold)
            return hold
        if ahead:
            self._went_ahead.add(hold)
        return None

    def _settle(self, hold: str, done: list[Letter], *, missing: bool = True) -> None:
        """Take ``done`` off the hold; ``missing``: the current record is their event."""
        held = self.letters[hold]
        for letter in done:
            held.remove(letter)
            self.settled[hold].append(letter)
        if done and missing:
            self._missing.add(hold)

    async def write_letters(self) -> None:
        """Record the holds of this pass's dead letters (after sending them)."""
        for hold, letter in self.added:
            await self.holds.add(hold, letter)

    async def write_settled(self) -> set[str]:
        """Take the settled letters off their holds; the holds to drain now."""
        await self.holds.settle(self.settled)
        return {hold for hold, letters in self.settled.items() if letters}
