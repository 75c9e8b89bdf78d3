"""A projection worker: the customer view and the ledger, consumed from the suite's topics.

``python -m faults.run_worker CONFIG``; CONFIG is JSON with ``kafka``, ``mongo``,
``database``, ``view_topics``, ``ledger_topics``, ``dead_letters`` (topic), ``prefix`` (of
the consumer groups), ``max_records``, ``keys`` and ``secrets`` (``child.key_sealer``: the
sealed personal data opened as a service's worker does) and optionally ``die`` =
``{"engine": NAME, "at": "positions" | "commit"}``: once armed (SIGUSR1), the engine's next
batch kills the worker after its view writes and before its positions write (``positions``),
or after the whole batch was written and before Kafka commits its offsets (``commit``); and
``bug`` = ``{"event": TYPE, "one_in": N}``: a code bug, the customer view's handler of TYPE
raises for the aggregates of one id in N (by CRC-32).

As in a service's worker, each consumer waits at its pause gate (a rebuild) before each
batch, and holds whose dead letters were settled are drained now and then.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from crm_backbone.kafka import (
    KafkaDeadLetters,
    drain_released_holds,
    kafka_broker,
    reliable_producer,
    subscribe,
)
from crm_backbone.pause import PauseGate
from crm_backbone.projection import (
    BatchResult,
    Document,
    Handler,
    ProjectionEngine,
    Record,
    ViewUpdate,
)
from crm_customer.views import CustomerViews
from crm_events.envelope import Envelope
from crm_events.registry import EventPayload
from pymongo import AsyncMongoClient

from faults.child import KillSwitch, configuration, kafka_login, key_sealer, run_until_stopped
from faults.ledger import Ledger


class _DyingPositions:
    """The engine's positions collection; its bulk write is a kill point."""

    def __init__(self, inner: Any, switch: KillSwitch) -> None:
        self._inner = inner
        self._switch = switch

    async def bulk_write(self, *args: Any, **kwargs: Any) -> Any:
        self._switch.point("positions write (view written, positions not)")
        return await self._inner.bulk_write(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _DyingBeforeCommit:
    """The engine, as the subscriber sees it; returning from a batch is a kill point."""

    def __init__(self, engine: ProjectionEngine, switch: KillSwitch) -> None:
        self.engine = engine
        self.consumer_group = engine.consumer_group
        self._switch = switch

    async def process(self, records: Sequence[Record]) -> BatchResult:
        result = await self.engine.process(records)
        self._switch.point("offset commit (batch written, offsets not committed)")
        return result


class _ViewsWithBug(CustomerViews):
    """The customer view, its handler of ``event`` raising for one aggregate id in ``one_in``."""

    def __init__(self, event: str, one_in: int) -> None:
        super().__init__()
        self.event = event
        self.one_in = one_in

    def handlers(self) -> Mapping[str, Handler]:
        handlers = dict(super().handlers())
        correct = handlers[self.event]

        def with_bug(envelope: Envelope[EventPayload]) -> Iterator[ViewUpdate]:
            if zlib.crc32(envelope.aggregateid.encode()) % self.one_in == 0:
                raise RuntimeError(f"bug injected by the fault suite into {self.event}")
            return iter(correct(envelope))

        handlers[self.event] = with_bug
        return handlers


async def main() -> None:
    config = configuration("fault-worker")
    switch = KillSwitch()
    die: dict[str, str] = config.get("die") or {}
    producer = reliable_producer(config["kafka"], **kafka_login(config))
    await producer.start()
    mongo: AsyncMongoClient[Document] = AsyncMongoClient(config["mongo"], tz_aware=True)
    database = mongo[config["database"]]
    sealer = key_sealer(config)
    dead_letters = KafkaDeadLetters(producer, config["dead_letters"], sealer)
    broker = kafka_broker(config["kafka"], kafka_login(config), logger=None)
    bug: dict[str, Any] | None = config.get("bug")
    views = _ViewsWithBug(bug["event"], bug["one_in"]) if bug else CustomerViews()
    engines: list[ProjectionEngine] = []
    for projection, topics in (
        (views, config["view_topics"]),
        (Ledger(), config["ledger_topics"]),
    ):
        group = f"{config['prefix']}.{projection.name}"
        engine = ProjectionEngine(projection, database, dead_letters, group, sealer=sealer)
        await engine.setup()
        processor: ProjectionEngine | _DyingBeforeCommit = engine
        if die.get("engine") == projection.name:
            if die["at"] == "positions":
                engine.positions = _DyingPositions(engine.positions, switch)  # type: ignore[assignment]
            else:
                processor = _DyingBeforeCommit(engine, switch)
        gate = PauseGate(database, engine.consumer_group)
        subscribe(broker, processor, topics, max_records=config["max_records"], gate=gate)
        engines.append(engine)
    await broker.start()
    draining = [drain_released_holds(engine, every=0.5) for engine in engines]
    try:
        await run_until_stopped()
    finally:
        for task in draining:
            task.cancel()
        await broker.stop()
        await producer.stop()
        await mongo.close()


if __name__ == "__main__":
    asyncio.run(main())
