"""A projection worker: the customer view and the ledger, consumed from the suite's topics.

``python -m faults.run_worker CONFIG``; CONFIG is JSON with ``kafka``, ``mongo``,
``database``, ``view_topics``, ``ledger_topics``, ``dead_letters`` (topic), ``prefix`` (of
the consumer groups), ``max_records`` and optionally ``die`` = ``{"engine": NAME, "at":
"positions" | "commit"}``: once armed (SIGUSR1), the engine's next batch kills the worker
after its view writes and before its positions write (``positions``), or after the whole
batch was written and before Kafka commits its offsets (``commit``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from crm_backbone.kafka import KafkaDeadLetters, reliable_producer, subscribe
from crm_backbone.projection import BatchResult, Document, ProjectionEngine, Record
from crm_customer.views import CustomerViews
from faststream.kafka import KafkaBroker
from pymongo import AsyncMongoClient

from faults.child import KillSwitch, configuration, run_until_stopped
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


async def main() -> None:
    config = configuration("fault-worker")
    switch = KillSwitch()
    die: dict[str, str] = config.get("die") or {}
    producer = reliable_producer(config["kafka"])
    await producer.start()
    mongo: AsyncMongoClient[Document] = AsyncMongoClient(config["mongo"], tz_aware=True)
    database = mongo[config["database"]]
    dead_letters = KafkaDeadLetters(producer, config["dead_letters"])
    broker = KafkaBroker(config["kafka"], logger=None)
    for projection, topics in (
        (CustomerViews(), config["view_topics"]),
        (Ledger(), config["ledger_topics"]),
    ):
        engine = ProjectionEngine(
            projection, database, dead_letters, f"{config['prefix']}.{projection.name}"
        )
        await engine.setup()
        processor: ProjectionEngine | _DyingBeforeCommit = engine
        if die.get("engine") == projection.name:
            if die["at"] == "positions":
                engine.positions = _DyingPositions(engine.positions, switch)  # type: ignore[assignment]
            else:
                processor = _DyingBeforeCommit(engine, switch)
        subscribe(broker, processor, topics, max_records=config["max_records"])
    await broker.start()
    try:
        await run_until_stopped()
    finally:
        await broker.stop()
        await producer.stop()
        await mongo.close()


if __name__ == "__main__":
    asyncio.run(main())
