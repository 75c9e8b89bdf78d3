"""Rebuilding a read model from the beginning of its streams, and replaying from a point.

**Rebuild** applies every record of the view's topics, from offset 0, into a database of
its own (``<database>__rebuild``) while the live view keeps serving and its consumer keeps
writing. Once the rebuild has nearly caught up with the live consumer group, it asks the
live consumer to pause (a :class:`PauseGate` document the consumer checks before each
batch), waits until the consumer says it is paused (an idle or stopped consumer never
answers: after ``pause_within`` seconds any batch it starts will wait at the gate),
applies what remains up to the group's committed offsets, swaps each collection in with
MongoDB's ``renameCollection`` (``dropTarget``: readers see the old collection or the new
one, never neither; the old one can be kept as ``<name>__before_rebuild``) and lets the
consumer go on. The consumer then continues from
its committed offsets on the rebuilt collections: nothing is missed, and nothing is
written to the new view ahead of versions it lacks.

**Replay** applies the records of the view's topics from a time or an offset to their
current end into the live view: idempotency makes it safe, and it applies what the view
is missing (after a restore, say).

Rebuilding twice gives identical view documents: handlers are pure functions of the
events, whose times come from the events.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from pymongo.asynchronous.database import AsyncDatabase

from crm_backbone.projection import Document, Projection, ProjectionEngine, Record

BEFORE_REBUILD = "__before_rebuild"


@dataclass
class Progress:
    """How far a rebuild or replay is: records applied of those known, rate, ETA."""

    total: int
    done: int = 0
    set_aside: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.done / elapsed if elapsed > 0 else 0.0

    @property
    def eta(self) -> float | None:
        return (
            (self.total - self.done) / self.rate if self.rate and self.total > self.done else None
        )


Report = Callable[[Progress], None]


CONTROL = "view_control"
"""Collection (in the view's database) of the pause requests of its consumer groups."""


class PauseGate:
    """Lets a rebuild pause a live consumer group between two batches.

    ``{_id: group, paused: bool, acknowledged: bool}``: the rebuild sets ``paused``; the
    consumer, before its next batch, sets ``acknowledged`` and waits until ``paused``
    is cleared. One indexed read per batch when nothing is asked.
    """

    def __init__(self, database: AsyncDatabase[Document], group: str) -> None:
        self.control = database[CONTROL]
        self.group = group

    async def wait_if_paused(self, poll: float = 0.1) -> None:
        """Called by the consumer before each batch."""
        doc = await self.control.find_one({"_id": self.group}, {"paused": 1})
        if not doc or not doc.get("paused"):
            return
        await self.control.update_one({"_id": self.group}, {"$set": {"acknowledged": True}})
        while True:
            if not (await self.control.find_one({"_id": self.group}) or {}).get("paused"):
                break
            await asyncio.sleep(poll)
        await self.control.update_one({"_id": self.group}, {"$set": {"acknowledged": False}})

    async def pause(self, within: float) -> bool:
        """Ask the consumer to pause; True once it said so, False if none answered."""
        await self.control.update_one(
            {"_id": self.group}, {"$set": {"paused": True, "acknowledged": False}}, upsert=True
        )
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            doc = await self.control.find_one({"_id": self.group}) or {}
            if doc.get("acknowledged"):
                return True
            await asyncio.sleep(0.1)
        return False

    async def resume(self) -> None:
        await self.control.update_one({"_id": self.group}, {"$set": {"paused": False}})


class CountOnly:
    """Dead letters of a rebuild: counted, not sent again (the live consumer sent them)."""

    def __init__(self) -> None:
        self.count = 0

    async def __call__(self, record: Record, code: str, reason: str, consumer: str) -> None:
        self.count += 1


async def _partitions(bootstrap: str, topics: Sequence[str]) -> list[TopicPartition]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics(list(topics))
    finally:
        await admin.close()
    return [TopicPartition(t["topic"], p["partition"]) for t in described for p in t["partitions"]]


async def committed_offsets(bootstrap: str, group: str) -> dict[TopicPartition, int]:
    """The live consumer group's committed offsets (nothing committed: absent)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return {tp: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}


class StreamReader:
    """Reads assigned partitions from given offsets, in batches, without a consumer group."""

    def __init__(self, bootstrap: str, partitions: Sequence[TopicPartition]) -> None:
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, enable_auto_commit=False, max_poll_records=2000
        )
        self.partitions = list(partitions)

    async def start(self, offsets: Mapping[TopicPartition, int]) -> None:
        await self.consumer.start()
        self.consumer.assign(self.partitions)
        for tp in self.partitions:
            self.consumer.seek(tp, offsets.get(tp, 0))

    async def stop(self) -> None:
        await self.consumer.stop()

    async def end_offsets(self) -> dict[TopicPartition, int]:
        ends: dict[TopicPartition, int] = await self.consumer.end_offsets(self.partitions)
        return ends

    async def position(self, tp: TopicPartition) -> int:
        return int(await self.consumer.position(tp))

    async def apply_until(
        self, engine: ProjectionEngine, targets: Mapping[TopicPartition, int], progress: Progress,
        report: Report,
    ) -> None:  # fmt: skip
        """Apply records until every partition's position reaches its target offset."""
        behind = {tp for tp, end in targets.items() if await self.position(tp) < end}
        while behind:
            batches = await self.consumer.getmany(*behind, timeout_ms=500, max_records=2000)
            records = [r for tp, rs in batches.items() for r in rs if r.offset < targets.get(tp, 0)]
            if records:
                await engine.process(records)
                progress.done += len(records)
                report(progress)
            behind = {tp for tp in behind if await self.position(tp) < targets[tp]}


async def rebuild(
    projection: Projection,
    live: AsyncDatabase[Document],
    *,
    bootstrap: str,
    live_group: str,
    topics: Sequence[str] | None = None,
    keep_old: bool = False,
    report: Report = lambda _: None,
    pause_within: float = 5.0,
) -> Progress:
    """Rebuild ``projection`` beside ``live`` and swap it in once caught up."""
    topics = list(topics or projection.topics)
    client = live.client
    scratch: AsyncDatabase[Document] = client[f"{live.name}__rebuild"]
    await client.drop_database(scratch.name)
    set_aside = CountOnly()
    engine = ProjectionEngine(projection, scratch, set_aside, f"{live_group}.rebuild")
    await engine.setup()
    reader = StreamReader(bootstrap, await _partitions(bootstrap, topics))
    await reader.start({})
    try:
        ends = await reader.end_offsets()
        progress = Progress(total=sum(ends.values()))
        await reader.apply_until(engine, ends, progress, report)
        # Catch up with the live consumer, which kept going meanwhile.
        while True:
            live_offsets = await committed_offsets(bootstrap, live_group)
            targets = {tp: max(live_offsets.get(tp, 0), ends[tp]) for tp in reader.partitions}
            behind = sum([t - await reader.position(tp) for tp, t in targets.items()])
            progress.total = progress.done + behind
            await reader.apply_until(engine, targets, progress, report)
            if behind < 1000:
                break
        gate = PauseGate(live, live_group)
        await gate.pause(within=pause_within)
        try:
            live_offsets = await committed_offsets(bootstrap, live_group)
            targets = {tp: max(live_offsets.get(tp, 0), ends[tp]) for tp in reader.partitions}
            await reader.apply_until(engine, targets, progress, report)
            await _swap(scratch, live, keep_old)
        finally:
            await gate.resume()
    finally:
        await reader.stop()
        await client.drop_database(scratch.name)
    progress.set_aside = set_aside.count
    return progress


async def _swap(
    scratch: AsyncDatabase[Document], live: AsyncDatabase[Document], keep: bool
) -> None:
    admin = live.client.admin
    for name in await scratch.list_collection_names():
        if keep and name in await live.list_collection_names():
            await (await live[name].aggregate([{"$out": f"{name}{BEFORE_REBUILD}"}])).to_list()
        await admin.command(
            "renameCollection", f"{scratch.name}.{name}", to=f"{live.name}.{name}", dropTarget=True
        )


async def replay(
    projection: Projection,
    live: AsyncDatabase[Document],
    *,
    bootstrap: str,
    consumer_group: str,
    since_ms: int | None = None,
    from_offset: int | None = None,
    topics: Sequence[str] | None = None,
    report: Report = lambda _: None,
) -> Progress:
    """Reapply the view's topics into ``live`` from a time (ms) or an offset to their end."""
    if (since_ms is None) == (from_offset is None):
        raise ValueError("give exactly one of since_ms and from_offset")
    topics = list(topics or projection.topics)
    partitions = await _partitions(bootstrap, topics)
    reader = StreamReader(bootstrap, partitions)
    starts: dict[TopicPartition, int] = {}
    await reader.start({})
    try:
        ends = await reader.end_offsets()
        if since_ms is not None:
            found: Mapping[TopicPartition, Any] = await reader.consumer.offsets_for_times(
                {tp: since_ms for tp in partitions}
            )
            starts = {tp: (found[tp].offset if found.get(tp) else ends[tp]) for tp in partitions}
        else:
            starts = {tp: min(from_offset or 0, ends[tp]) for tp in partitions}
        for tp, offset in starts.items():
            reader.consumer.seek(tp, offset)
        progress = Progress(total=sum(ends[tp] - starts[tp] for tp in partitions))
        set_aside = CountOnly()
        engine = ProjectionEngine(projection, live, set_aside, f"{consumer_group}.replay")
        await reader.apply_until(engine, ends, progress, report)
        progress.set_aside = set_aside.count
        return progress
    finally:
        await reader.stop()
