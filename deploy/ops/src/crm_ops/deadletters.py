"""Dead letters: list them with their reasons, show one, redrive it after a fix, or purge it.

A dead letter is identified by its place in the dead-letter topic (``partition:offset``).
Kafka records are immutable, so what was done with each (redriven or purged, by whom,
when, why) is recorded in the ops database in MongoDB; ``list`` shows the pending ones
unless asked for all.

A letter's body is sealed under its data subject's key (``crm_backbone.dead_letter_sealing``):
``crm-ops`` opens it through the key store, as its own role, which may only read keys. A
letter whose key was destroyed (its subject erased) is erased: it is never sent again.

Redriving sends the original record (key, value, original headers, opened) back to the
topic it was read from, marked as the redrive of that dead letter: every consumer of that topic
sees it again, and those that applied it already skip it (they are idempotent), so only
the one that gave up on it applies it, then the events its dead letter held back
(:mod:`crm_backbone.holds`). Purging settles the dead letter in the consumer's database,
and the consumer applies what it held back.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from crm_backbone.dead_letter_sealing import OpenedLetter, is_sealed, open_letter
from crm_backbone.holds import (
    REDRIVE_HEADER,
    VIEW_PARKING_SUFFIX,
    is_holds_collection,
    owned_by,
    settle_everywhere,
)
from crm_backbone.kafka import reliable_producer
from crm_backbone.parking import PARKING_COLLECTION
from crm_backbone.records import Document
from crm_events.personal import FieldSealer
from crm_events.topics import DEAD_LETTER
from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection

from crm_ops.kafka_state import admin_client, ops_login

DLQ_PREFIX = "dlq_"


class SealedLetterError(RuntimeError):
    """A sealed dead letter, and no key store configured to open it."""


def original_headers(headers: tuple[tuple[str, bytes], ...]) -> list[tuple[str, bytes]]:
    """The headers the record had before it was dead-lettered (or redriven)."""
    return [
        (name, value)
        for name, value in headers
        if not name.startswith(DLQ_PREFIX) and name != REDRIVE_HEADER
    ]


@dataclass(frozen=True)
class DeadLetter:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]

    @property
    def id(self) -> str:
        return f"{self.partition}:{self.offset}"

    def header(self, name: str) -> str:
        for header, value in self.headers:
            if header == name:
                return value.decode(errors="replace")
        return ""

    @property
    def sealed(self) -> bool:
        return is_sealed(self.headers)

    def opened(self, sealer: FieldSealer | None) -> OpenedLetter:
        """The original value and headers; a sealed letter needs ``sealer``."""
        if not self.sealed:
            return OpenedLetter(self.value, self.headers, erased=False)
        if sealer is None:
            raise SealedLetterError(f"dead letter {self.id} is sealed: no key store to open it")
        return open_letter(self.value, self.headers, sealer)

    @property
    def origin(self) -> tuple[str, str, int, int]:
        """(consumer, topic, partition, offset) of the record that was dead-lettered."""
        return (
            self.header("dlq_consumer"),
            self.header("dlq_topic"),
            int(self.header("dlq_partition") or -1),
            int(self.header("dlq_offset") or -1),
        )


async def read_all(
    bootstrap: str, topic: str = DEAD_LETTER.name, login: Mapping[str, Any] | None = None
) -> AsyncIterator[DeadLetter]:
    """Every record of the dead-letter topic, from the beginning to its current end (read
    as ``login``, by default crm-ops)."""
    async with admin_client(bootstrap, login) as admin:
        (described,) = await admin.describe_topics([topic])
    partitions = [TopicPartition(topic, p["partition"]) for p in described["partitions"]]
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, **(login or ops_login())
    )
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        remaining = {tp for tp in partitions if ends[tp] > 0}
        while remaining:
            batches = await consumer.getmany(*remaining, timeout_ms=1000)
            for tp, records in batches.items():
                for r in records:
                    if r.offset < ends[tp]:
                        yield DeadLetter(tp.partition, r.offset, r.key, r.value, tuple(r.headers))
            remaining = {tp for tp in remaining if await consumer.position(tp) < ends[tp]}
    finally:
        await consumer.stop()


class DeadLetterLedger:
    """What was done with each dead letter: ``{_id, action, actor, reason, at, topic, code}``,
    no byte of the letter's body (no personal data). ``_id`` is the letter's id, behind its
    dead-letter topic's name for a deployment's own (prefixed) topic."""

    def __init__(
        self, actions: AsyncCollection[dict[str, Any]], dead_letters: str = DEAD_LETTER.name
    ) -> None:
        self.actions = actions
        self.scope = "" if dead_letters == DEAD_LETTER.name else f"{dead_letters}@"

    async def done(self) -> dict[str, dict[str, Any]]:
        """What was done, by letter id, for this ledger's dead-letter topic."""
        found = self.actions.find({"_id": {"$regex": f"^{re.escape(self.scope)}[0-9]+:[0-9]+$"}})
        return {doc["_id"].removeprefix(self.scope): doc async for doc in found}

    async def record(self, letter: DeadLetter, action: str, actor: str, reason: str) -> None:
        await self.actions.update_one(
            {"_id": self.scope + letter.id},
            {
                "$set": {
                    "action": action,
                    "actor": actor,
                    "reason": reason,
                    "at": datetime.now(UTC),
                    "topic": letter.header("dlq_topic"),
                    "code": letter.header("dlq_code"),
                }
            },
            upsert=True,
        )


async def redrive(
    bootstrap: str,
    letters: list[DeadLetter],
    sealer: FieldSealer | None = None,
    login: Mapping[str, Any] | None = None,
) -> int:
    """Send each letter's original record, opened, back to its topic (as ``login``, by
    default crm-ops); how many were sent. An erased letter is never sent (``dlq redrive``
    purges it instead)."""
    producer = reliable_producer(bootstrap, **(login or ops_login()))
    await producer.start()
    sent = 0
    try:
        for letter in letters:
            original = letter.opened(sealer)
            if original.erased:
                continue
            _, topic, partition, offset = letter.origin
            await producer.send_and_wait(
                topic,
                value=original.value,
                key=letter.key,
                headers=[
                    *original_headers(original.headers),
                    (REDRIVE_HEADER, f"{topic}:{partition}:{offset}".encode()),
                ],
            )
            sent += 1
    finally:
        await producer.stop()
    return sent


async def purge(client: AsyncMongoClient[Document], letters: list[DeadLetter]) -> None:
    """Settle each letter in its consumer's database: the consumer applies what it held."""
    for letter in letters:
        await settle_everywhere(client, *letter.origin)


@dataclass
class Holding:
    """What the dead letters hold back, read from every database's holds and parking lots."""

    behind: dict[tuple[str, str, int, int], int]
    """Records parked behind each holding letter: (owner, topic, partition, offset)."""
    parked: dict[str, int]
    """Records parked per owner (behind dead letters, or waiting for a policy)."""

    def held_by(self, letter: DeadLetter) -> int | None:
        """Records parked behind ``letter``; None if it holds nothing back."""
        consumer, topic, partition, offset = letter.origin
        counts = [
            count
            for (owner, *place), count in self.behind.items()
            if tuple(place) == (topic, partition, offset) and owned_by(owner, consumer)
        ]
        return sum(counts) if counts else None

    def parked_for(self, consumer: str) -> int:
        return sum(n for owner, n in self.parked.items() if owned_by(owner, consumer))


def _is_parking(name: str) -> bool:
    return name == PARKING_COLLECTION or name.endswith(VIEW_PARKING_SUFFIX)


async def holding(client: AsyncMongoClient[Document]) -> Holding:
    behind: dict[tuple[str, str, int, int], int] = {}
    parked: dict[str, int] = defaultdict(int)
    for name in await client.list_database_names():
        database = client[name]
        collections = await database.list_collection_names()
        counts: dict[tuple[str, str], int] = defaultdict(int)
        for collection in filter(_is_parking, collections):
            groups = await database[collection].aggregate(
                [{"$group": {"_id": {"owner": "$owner", "hold": "$hold"}, "records": {"$sum": 1}}}]
            )
            async for group in groups:
                counts[(group["_id"]["owner"], group["_id"]["hold"])] += group["records"]
                parked[group["_id"]["owner"]] += group["records"]
        for collection in filter(is_holds_collection, collections):
            async for hold in database[collection].find({}):
                owner = hold["_id"]["owner"]
                for letter in hold["letters"]:
                    origin = (owner, letter["topic"], letter["partition"], letter["offset"])
                    behind[origin] = counts.get((owner, hold["_id"]["hold"]), 0)
    return Holding(behind, dict(parked))
