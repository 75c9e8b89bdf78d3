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

Personal data: a parked record may hold a person's data in clear (an upstream ``bank.*``
record for a customer not registered yet). Given the service's sealer, the lot stores its
value and headers (but the CloudEvents attributes) sealed as dead letters are
(:mod:`crm_backbone.dead_letter_sealing`): under the key of the record's data subject, or
of its month's parked records (``parked:<yyyy-mm>``) when no subject can be told; the
release opens them. An erasure destroys the subject's key, and with it every record of
theirs parked anywhere, whoever parked it (no lot needs to be searched): the release then
drops such a record, as it drops a record about an erased subject before parking it,
counting each in ``crm_erased_subject_records_dropped_total``. Without a sealer records
are stored as they came.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import structlog
from crm_events.envelope import HEADERS
from crm_events.personal import FieldSealer, KeyDestroyed
from pymongo import ASCENDING, IndexModel, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError, OperationFailure

from crm_backbone.dead_letter_sealing import (
    month_subject,
    open_record,
    record_subject,
    seal_record,
)
from crm_backbone.metrics import ERASED_SUBJECT_RECORDS, PARKED_RECORDS
from crm_backbone.records import Document, Record

log = structlog.get_logger(__name__)

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
PARKED_SUBJECT_PREFIX = "parked:"
"""The month key of parked records whose data subject cannot be told."""
SEALED_FOR = "sealed_for"
"""The field naming the subject whose key sealed a parked record (an id)."""


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
    ``sealer`` seals what is parked (see the module's documentation); None: kept clear.
    """

    def __init__(
        self,
        collection: AsyncCollection[Document],
        owner: str,
        *,
        lease_seconds: float = 30.0,
        poll_seconds: float = 0.05,
        expire_after_seconds: int | None = None,
        sealer: FieldSealer | None = None,
    ) -> None:
        self.collection = collection
        self.sealer = sealer
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
        """Keep ``record`` under ``hold``; parking the same record again changes nothing.
        A record about an erased subject is dropped instead (with a sealer)."""
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
        if self.sealer is not None:
            try:
                fields |= await asyncio.to_thread(self._sealed, record)
            except KeyDestroyed:
                self._dropped(record)
                return
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
            record = await self._opened(doc)
            if record is None:
                self._dropped(ParkedRecord.from_document(doc))
            else:
                await apply(record)
                applied += 1
            await self.collection.delete_one({"_id": doc["_id"]})
        return applied

    # Sealing ------------------------------------------------------------------------------

    def _sealed(self, record: Record) -> Document:
        """The fields of ``record`` that may hold personal data, sealed, and whose key
        sealed them; raises ``KeyDestroyed`` if the record is about an erased subject."""
        assert self.sealer is not None
        subject = record_subject(
            record.topic, record.key, record.value, record.headers
        ) or month_subject(datetime.now(UTC), PARKED_SUBJECT_PREFIX)
        sealed = seal_record(subject, record.value, record.headers, self.sealer)
        return {
            "value": sealed.value,
            "headers": [[name, value] for name, value in sealed.headers],
            SEALED_FOR: subject,
        }

    async def _opened(self, doc: Document) -> ParkedRecord | None:
        """The parked record as it came; None if its subject was erased since (dropped)."""
        record = ParkedRecord.from_document(doc)
        subject = doc.get(SEALED_FOR)
        if subject is None:
            return record
        if self.sealer is None:
            raise RuntimeError(f"{self.owner}: parked records are sealed, and no sealer given")
        opened = await asyncio.to_thread(
            open_record, subject, record.value, record.headers, self.sealer
        )
        if opened.erased:
            return None
        return replace(record, value=opened.value, headers=opened.headers)

    def _dropped(self, record: Record) -> None:
        """Count and log (by its place and type only) a record about an erased subject."""
        types = [value for name, value in record.headers if name == HEADERS["type"]]
        event_type = types[0].decode(errors="replace") if types else ""
        ERASED_SUBJECT_RECORDS.labels(event_type).inc()
        log.info(
            "erased_subject_record_dropped",
            owner=self.owner,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
        )

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
        """The hold's records, in arrival order, opened (for tests); an erased subject's
        are left out."""
        cursor = self.collection.find({"owner": self.owner, "hold": hold}).sort(ORDER)
        opened = [await self._opened(doc) async for doc in cursor]
        return [record for record in opened if record is not None]

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
