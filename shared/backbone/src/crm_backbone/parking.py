"""The parking lot: records held back, durably, until what they wait for has happened.

Every part of the system that cannot apply a record *yet* parks it here, under a **hold
key** saying what it waits for (a customer not registered yet, a campaign not started, an
aggregate with a dead letter pending), and releases the hold when that is settled. One
MongoDB collection can serve every owner (a consumer group or a policy): each record is
stored with its owner, its hold key, why it was parked, and its original topic,
partition, offset, key, value and headers, so a released record goes back through the
same decoding path as when it first came.

How to use it::

    lot = ParkingLot(database["parked_records"], owner="crm.customer.customer_policies")
    await lot.setup()

    # A record that must wait (its condition does not hold, or its hold already has
    # records parked: it goes behind them, so the hold's records keep their order).
    await lot.park_until(hold, record, "customer not registered", ready=ready, apply=apply)

    # Whoever makes the condition true writes that fact first, then releases the hold.
    await lot.release(hold, apply)

Several instances may park and release the same hold at once; nothing stays parked and
nothing applies twice concurrently:

- ``release`` drains a hold under a **lease** (a MongoDB document per owner and hold,
  expiring on the server's clock), so two releasers never apply one hold's records at
  the same time. A releaser finding the lease taken waits until the holder is done (or
  its lease expired: a crashed holder). After giving the lease back it looks again, and
  drains anything parked meanwhile. The lease is renewed before each record; an
  ``apply`` outlasting it may see another releaser take over. An ``apply`` must not
  release its own hold (it would wait for its own lease).
- The race rule for "park until a condition holds" (:meth:`ParkingLot.park_until`): the
  waiting side parks first and checks the condition *after*; the side that makes the
  condition true writes its fact first and releases *after*. Whichever runs last sees
  the other's write, so one of them releases the record.

A record is deleted only after ``apply`` returned, so a crash mid-release applies it
again later: ``apply`` must be idempotent (every policy command is). An ``apply`` that
raises :class:`StillHeld` leaves that record and those after it parked (the condition
does not hold after all); any other exception does too, and propagates.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from pymongo import ASCENDING, IndexModel, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError, OperationFailure

from crm_backbone.metrics import PARKED_RECORDS
from crm_backbone.records import Document, Record

PARKING_COLLECTION = "parked_records"
"""The collection a service's consumers park in (one per service database, every owner)."""
ORDER = [
    ("parked_at", ASCENDING),
    ("topic", ASCENDING),
    ("partition", ASCENDING),
    ("offset", ASCENDING),
]
"""Arrival order: the server's clock when parked, then the record's place in its partition."""
EPOCH = datetime.fromtimestamp(0, UTC)
INDEX_OPTIONS_CONFLICT = 85


class StillHeld(Exception):
    """Raised by a release's ``apply``: this record cannot apply yet; it stays parked."""


@dataclass(frozen=True)
class ParkedRecord:
    """A parked record: a :class:`~crm_backbone.projection.Record`, plus why and since when."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    hold: str
    reason: str
    parked_at: datetime

    @classmethod
    def from_document(cls, doc: Document) -> ParkedRecord:
        return cls(
            topic=doc["topic"],
            partition=doc["partition"],
            offset=doc["offset"],
            key=doc["key"],
            value=doc["value"],
            headers=tuple((name, bytes(value)) for name, value in doc["headers"]),
            hold=doc["hold"],
            reason=doc["reason"],
            parked_at=doc["parked_at"],
        )


Apply = Callable[[ParkedRecord], Awaitable[None]]
Condition = Callable[[], Awaitable[bool]]


class ParkingLot:
    """Records held back per hold key until released, in arrival order; safe with several instances.

    ``collection`` may be shared by several owners (the lease documents live in
    ``<collection>.leases``); ``owner`` is the consumer group or policy parking here.
    ``lease_seconds`` bounds how long a crashed releaser keeps others waiting;
    ``expire_after_seconds`` drops this owner's records parked longer than that (for what
    can no longer come, e.g. beyond its topic's retention), None keeps them until released.
    """

    def __init__(
        self,
        collection: AsyncCollection[Document],
        owner: str,
        *,
        lease_seconds: float = 30.0,
        poll_seconds: float = 0.05,
        expire_after_seconds: int | None = None,
    ) -> None:
        self.collection = collection
        self.leases: AsyncCollection[Document] = collection.database[f"{collection.name}.leases"]
        self.owner = owner
        self.lease_ms = int(lease_seconds * 1000)
        self.poll_seconds = poll_seconds
        self.expire_after_seconds = expire_after_seconds

    async def setup(self) -> None:
        """Create the indexes (idempotent); a changed expiry replaces the former one."""
        await self.collection.create_indexes(
            [IndexModel([("owner", ASCENDING), ("hold", ASCENDING), *ORDER])]
        )
        if self.expire_after_seconds is None:
            return
        expiry = IndexModel(
            [("parked_at", ASCENDING)],
            name=f"expire {self.owner}",
            expireAfterSeconds=self.expire_after_seconds,
            partialFilterExpression={"owner": self.owner},
        )
        try:
            await self.collection.create_indexes([expiry])
        except OperationFailure as error:
            if error.code != INDEX_OPTIONS_CONFLICT:
                raise
            await self.collection.database.command(
                "collMod",
                self.collection.name,
                index={
                    "name": expiry.document["name"],
                    "expireAfterSeconds": self.expire_after_seconds,
                },
            )

    # Parking ------------------------------------------------------------------------------

    async def park(self, hold: str, record: Record, reason: str) -> None:
        """Keep ``record`` under ``hold``; parking the same record again changes nothing."""
        fields: Document = {
            "owner": self.owner,
            "hold": hold,
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "key": record.key,
            "value": record.value,
            "headers": [[name, value] for name, value in record.headers],
            "reason": reason,
        }
        # A pipeline update, for the server's clock; $literal keeps "$..." values literal.
        first = {name: {"$ifNull": [f"${name}", {"$literal": v}]} for name, v in fields.items()}
        await self.collection.update_one(
            {"_id": self._id(hold, record)},
            [{"$set": first | {"parked_at": {"$ifNull": ["$parked_at", "$$NOW"]}}}],
            upsert=True,
        )

    async def park_until(
        self, hold: str, record: Record, reason: str, *, ready: Condition, apply: Apply
    ) -> None:
        """Park ``record`` until ``ready()``; if it holds once parked, release the hold now.

        The condition is checked after the write: the side making it true writes its fact
        before releasing, so one of the two sees the other and nothing stays parked.
        """
        await self.park(hold, record, reason)
        if await ready():
            await self.release(hold, apply)

    async def held(self, holds: Iterable[str]) -> set[str]:
        """Which of ``holds`` have records parked (one query)."""
        wanted = sorted(set(holds))
        if not wanted:
            return set()
        found = await self.collection.distinct(
            "hold", {"owner": self.owner, "hold": {"$in": wanted}}
        )
        return set(found)

    # Releasing ----------------------------------------------------------------------------

    async def release(self, hold: str, apply: Apply) -> int:
        """Apply the hold's records in arrival order, each deleted once applied; how many.

        Stops, leaving the rest parked, at a record whose ``apply`` raises (re-raised,
        but for :class:`StillHeld`).
        """
        applied = 0
        while await self.held([hold]):
            token = uuid.uuid4().hex
            if not await self._take_lease(hold, token):
                await asyncio.sleep(self.poll_seconds)  # another releaser: it will finish
                continue
            try:
                applied += await self._drain(hold, token, apply)
            except StillHeld:
                return applied
            finally:
                await self.leases.delete_one({"_id": self._lease_id(hold), "token": token})
        return applied

    async def _drain(self, hold: str, token: str, apply: Apply) -> int:
        applied = 0
        parked = self.collection.find({"owner": self.owner, "hold": hold}).sort(ORDER)
        async for doc in parked:
            if not await self._take_lease(hold, token):
                return applied  # the lease expired and someone else took it over
            await apply(ParkedRecord.from_document(doc))
            await self.collection.delete_one({"_id": doc["_id"]})
            applied += 1
        return applied

    async def _take_lease(self, hold: str, token: str) -> bool:
        """Take or renew the hold's lease; False while another releaser holds it."""
        mine = {"$eq": ["$token", {"$literal": token}]}
        expired = {"$lt": [{"$ifNull": ["$expires_at", EPOCH]}, "$$NOW"]}
        free = {"$or": [mine, expired]}
        try:
            lease = await self.leases.find_one_and_update(
                {"_id": self._lease_id(hold)},
                [
                    {
                        "$set": {
                            "token": {"$cond": [free, {"$literal": token}, "$token"]},
                            "expires_at": {
                                "$cond": [free, {"$add": ["$$NOW", self.lease_ms]}, "$expires_at"]
                            },
                        }
                    }
                ],
                upsert=True,
                return_document=ReturnDocument.AFTER,
            )
        except DuplicateKeyError:  # another releaser created it at the same moment
            return False
        return lease is not None and lease["token"] == token

    # Observing ----------------------------------------------------------------------------

    async def counts(self) -> dict[str, int]:
        """Records parked per owner, every owner of the collection."""
        groups = await self.collection.aggregate(
            [{"$group": {"_id": "$owner", "records": {"$sum": 1}}}]
        )
        return {group["_id"]: group["records"] async for group in groups}

    async def observe(self) -> int:
        """Refresh this owner's ``crm_parked_records`` gauge; the number parked."""
        parked = await self.collection.count_documents({"owner": self.owner})
        PARKED_RECORDS.labels(self.owner).set(parked)
        return parked

    async def holds(self) -> set[str]:
        """This owner's holds that have records parked (one query)."""
        return set(await self.collection.distinct("hold", {"owner": self.owner}))

    async def parked(self, hold: str) -> list[ParkedRecord]:
        """The hold's records, in arrival order (for tests and operators)."""
        cursor = self.collection.find({"owner": self.owner, "hold": hold}).sort(ORDER)
        return [ParkedRecord.from_document(doc) async for doc in cursor]

    def _id(self, hold: str, record: Record) -> Document:
        return {
            "owner": self.owner,
            "hold": hold,
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
        }

    def _lease_id(self, hold: str) -> Document:
        return {"owner": self.owner, "hold": hold}
