"""Rebuilding a read model from the beginning of its streams, and replaying from a point.

**Rebuild** applies every record of the view's topics, from offset 0, into a database of
its own (``<database>__rebuild``) while the live view keeps serving and its consumer keeps
writing. Once the rebuild has nearly caught up with the live consumer group, it asks the
live consumer to pause (a :class:`PauseGate` document the consumer checks before each
batch), waits until the consumer says it is paused (an idle or stopped consumer never
answers: after ``pause_within`` seconds any batch it starts will wait at the gate),
applies what remains up to the streams' current ends, swaps each collection in with
MongoDB's ``renameCollection`` (``dropTarget``: readers see the old collection or the new
one, never neither; the old one can be kept as ``<name>__before_rebuild``) and lets the
consumer go on. The consumer then continues from
its committed offsets on the rebuilt collections (re-reading, and skipping, what the rebuild
applied past them): nothing is missed, and nothing is written to the new view ahead of
versions it lacks.

The pause is a lease (:mod:`crm_backbone.pause`): a rebuild that dies or hangs mid-pause
lets the consumer go on by itself once it expires, and stops unswapped when the pause is
no longer its own. ``abort_rebuild`` (``crm-ops rebuild VIEW --abort``) ends a pause at
once and drops the half-built view.

**Replay** applies the records of the view's topics from a time or an offset to their
current end into the live view: idempotency makes it safe, and it applies what the view
is missing (after a restore, say).

Rebuilding twice gives identical view documents: handlers are pure functions of the
events, whose times come from the events.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from crm_events.personal import FieldSealer
from pymongo.asynchronous.database import AsyncDatabase

from crm_backbone.pause import LEASE, PauseGate
from crm_backbone.projection import Document, Projection, ProjectionEngine, Record

BEFORE_REBUILD = "__before_rebuild"
SCRATCH = "__rebuild"
"""Suffix of the database a rebuild builds the view in."""

log = structlog.get_logger(__name__)


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


class CountOnly:
    """Dead letters of a rebuild: counted, not sent again (the live consumer sent them)."""

    def __init__(self) -> None:
        self.count = 0

    async def __call__(self, record: Record, code: str, reason: str, consumer: str) -> None:
        self.count += 1


async def _partitions(
    bootstrap: str, topics: Sequence[str], login: Mapping[str, Any]
) -> list[TopicPartition]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **login)
    await admin.start()
    try:
        described = await admin.describe_topics(list(topics))
    finally:
        await admin.close()
    return [TopicPartition(t["topic"], p["partition"]) for t in described for p in t["partitions"]]


async def committed_offsets(
    bootstrap: str, group: str, *, login: Mapping[str, Any]
) -> dict[TopicPartition, int]:
    """The live consumer group's committed offsets (nothing committed: absent); ``login``:
    the client's options (``ServiceSettings.kafka_client_options``)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **login)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return {tp: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}


class StreamReader:
    """Reads assigned partitions from given offsets, in batches, without a consumer group."""

    def __init__(
        self, bootstrap: str, partitions: Sequence[TopicPartition], login: Mapping[str, Any]
    ) -> None:
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, enable_auto_commit=False, max_poll_records=2000, **login
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
        self,
        engine: ProjectionEngine,
        targets: Mapping[TopicPartition, int],
        progress: Progress,
        report: Report,
    ) -> None:
        """Apply records until every partition's position reaches its target offset. A
        fetch may bring records past a target (written meanwhile): they are applied too,
        since the position has moved past them (dropped, the next call would never read
        them again: a gap in the view)."""
        behind = {tp for tp, end in targets.items() if await self.position(tp) < end}
        while behind:
            batches = await self.consumer.getmany(*behind, timeout_ms=500, max_records=2000)
            records = [record for fetched in batches.values() for record in fetched]
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
    login: Mapping[str, Any],
    live_group: str,
    topics: Sequence[str] | None = None,
    keep_old: bool = False,
    report: Report = lambda _: None,
    pause_within: float = 5.0,
    lease: float = LEASE,
    sealer: FieldSealer | None = None,
) -> Progress:
    """Rebuild ``projection`` beside ``live`` and swap it in once caught up; ``sealer``
    opens the personal data of the records, as the live consumer's does (an erased
    subject's reads as erased).

    The live consumer is paused for a ``lease`` of seconds, renewed while the rebuild
    works: if the rebuild dies, the consumer goes on once the lease expires. Raises
    ``LeaseLost`` (nothing swapped) if the pause ended under it.
    """
    topics = list(topics or projection.topics)
    client = live.client
    scratch: AsyncDatabase[Document] = client[f"{live.name}{SCRATCH}"]
    await client.drop_database(scratch.name)
    set_aside = CountOnly()
    engine = ProjectionEngine(
        projection, scratch, set_aside, f"{live_group}.rebuild", sealer=sealer
    )
    await engine.setup()
    reader = StreamReader(bootstrap, await _partitions(bootstrap, topics, login), login)
    await reader.start({})
    try:
        ends = await reader.end_offsets()
        progress = Progress(total=sum(ends.values()))
        await reader.apply_until(engine, ends, progress, report)
        # Catch up with the live consumer, which kept going meanwhile.
        while True:
            live_offsets = await committed_offsets(bootstrap, live_group, login=login)
            targets = {tp: max(live_offsets.get(tp, 0), ends[tp]) for tp in reader.partitions}
            behind = sum([t - await reader.position(tp) for tp, t in targets.items()])
            progress.total = progress.done + behind
            await reader.apply_until(engine, targets, progress, report)
            if behind < 1000:
                break
        gate = PauseGate(live, live_group, lease=lease)
        async with gate.paused(within=pause_within):
            # Up to the streams' ends as they are now, not to the group's committed offsets:
            # a consumer that did not answer in time may be busy with a batch it fetched
            # before the pause and has not committed yet. Its records lie below these ends,
            # so the rebuilt view holds them; the consumer then re-reads them from its
            # commit, and the version guard skips what is already applied.
            targets = await reader.end_offsets()
            progress.total = progress.done + sum(
                [t - await reader.position(tp) for tp, t in targets.items()]
            )
            await reader.apply_until(engine, targets, progress, report)
            await _swap(scratch, live, keep_old, gate)
    finally:
        await reader.stop()
        await client.drop_database(scratch.name)
    progress.set_aside = set_aside.count
    return progress


async def _swap(
    scratch: AsyncDatabase[Document], live: AsyncDatabase[Document], keep: bool, gate: PauseGate
) -> None:
    """Rename each rebuilt collection over the live one, each only while the pause holds."""
    admin = live.client.admin
    for name in await scratch.list_collection_names():
        if keep and name in await live.list_collection_names():
            await (await live[name].aggregate([{"$out": f"{name}{BEFORE_REBUILD}"}])).to_list()
        await gate.renew()
        await admin.command(
            "renameCollection", f"{scratch.name}.{name}", to=f"{live.name}.{name}", dropTarget=True
        )


async def replay(
    projection: Projection,
    live: AsyncDatabase[Document],
    *,
    bootstrap: str,
    login: Mapping[str, Any],
    consumer_group: str,
    since_ms: int | None = None,
    from_offset: int | None = None,
    topics: Sequence[str] | None = None,
    report: Report = lambda _: None,
    sealer: FieldSealer | None = None,
) -> Progress:
    """Reapply the view's topics into ``live`` from a time (ms) or an offset to their end
    (``sealer``: as :func:`rebuild`'s)."""
    if (since_ms is None) == (from_offset is None):
        raise ValueError("give exactly one of since_ms and from_offset")
    topics = list(topics or projection.topics)
    partitions = await _partitions(bootstrap, topics, login)
    reader = StreamReader(bootstrap, partitions, login)
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
        engine = ProjectionEngine(
            projection, live, set_aside, f"{consumer_group}.replay", sealer=sealer
        )
        await reader.apply_until(engine, ends, progress, report)
        progress.set_aside = set_aside.count
        return progress
    finally:
        await reader.stop()


@dataclass(frozen=True)
class Aborted:
    """What ``abort_rebuild`` found: a pause it ended, a half-built view it dropped."""

    pause_ended: bool
    scratch_dropped: bool


async def abort_rebuild(live: AsyncDatabase[Document], live_group: str) -> Aborted:
    """Undo what a killed rebuild left: the live consumer resumes at once, and the view it
    was building beside the live one is dropped. A rebuild still running stops, unswapped,
    at its next lease renewal."""
    pause_ended = await PauseGate(live, live_group).abort()
    scratch = f"{live.name}{SCRATCH}"
    existed = scratch in await live.client.list_database_names()
    await live.client.drop_database(scratch)
    return Aborted(pause_ended=pause_ended, scratch_dropped=existed)
