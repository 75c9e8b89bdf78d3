"""Plays a scenario's plan against its system: commands into the event store and upstream
records to Kafka, concurrently and paced, each retried through outages until it succeeds;
and, for the scenarios that ask, every valid upstream record sent again in another order."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from crm_backbone.kafka import reliable_producer
from crm_backbone.kafka_acls import ADMIN
from crm_backbone.topic_names import TopicNames

from faults.plan import Command, Plan, Upstream
from faults.plan import run_command as execute
from faults.system import System
from faults.waiting import retry, until


class Driver:
    """Plays a plan against a system: commands and upstream records, paced over
    ``duration`` seconds (until :meth:`hurry`), each retried through outages."""

    def __init__(
        self, system: System, plan: Plan, *, duration: float, duplicate_from: float | None = None
    ) -> None:
        self.system = system
        self.plan = plan
        self.duration = duration
        self.duplicate_from = duplicate_from
        self.done = 0
        self.total = len(plan.commands) + len(plan.upstream)
        self.duplicates = 0
        self.finished_at: float | None = None
        self._hurried = asyncio.Event()
        self._started = 0.0
        self._sent: list[Upstream] = []
        self._originals_done = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._started = time.monotonic()
        self._task = asyncio.create_task(self._run())

    def hurry(self) -> None:
        """Play the rest of the stream unpaced."""
        self._hurried.set()

    async def reached(self, fraction: float, within: float = 300) -> None:
        """Wait (bounded) until ``fraction`` of the stream is played."""

        async def far_enough() -> bool:
            self._raise_if_failed()
            return self.done >= fraction * self.total

        await until(far_enough, within=within, what=f"{fraction:.0%} of the stream", every=0.05)

    async def finished(self) -> float:
        """Wait for the whole stream; when it ended (monotonic)."""
        assert self._task is not None
        await self._task
        assert self.finished_at is not None
        return self.finished_at

    def _raise_if_failed(self) -> None:
        if self._task is not None and self._task.done():
            self._task.result()

    async def cancel(self) -> None:
        """Stop playing (a scenario that failed midway)."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        async with asyncio.TaskGroup() as group:  # one failing cancels the others
            group.create_task(self._commands())
            group.create_task(self._upstream())
            if self.duplicate_from is not None:
                group.create_task(self._duplicate(self.duplicate_from))
        self.finished_at = time.monotonic()

    async def _pace(self, index: int, count: int) -> None:
        """Sleep until item ``index`` of ``count`` is due (pacing, not a condition)."""
        delay = self._started + self.duration * index / max(count, 1) - time.monotonic()
        if delay > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._hurried.wait(), timeout=delay)

    async def _commands(self) -> None:
        assert self.system.app is not None
        app = self.system.app
        for index, command in enumerate(self.plan.commands):
            await self._pace(index, len(self.plan.commands))

            async def issue(command: Command = command) -> None:
                await asyncio.to_thread(execute, app, command)

            await retry(issue, what=str(command))
            self.done += 1

    async def _upstream(self) -> None:
        upstream = self.plan.upstream
        producer = Producer(
            self.system.infra.kafka.address,
            self.system.topic_names,
            self.system.infra.kafka.login(ADMIN),
        )
        try:
            index = 0
            while index < len(upstream):
                await self._pace(index, len(upstream))
                due = index + 1
                while due < len(upstream) and due - index < 100 and self._is_due(due, upstream):
                    due += 1
                chunk = upstream[index:due]
                await producer.send(chunk)
                self._sent += chunk
                self.done += len(chunk)
                index = due
        finally:
            self._originals_done = True
            await producer.close()

    def _is_due(self, index: int, items: Sequence[object]) -> bool:
        due = self._started + self.duration * index / len(items)
        return self._hurried.is_set() or time.monotonic() >= due

    async def _duplicate(self, start: float) -> None:
        """From ``start`` of the stream on, send every valid upstream record sent so far
        again, in another order across keys (each key's own order kept, so its partition
        sees the copies in order, after the originals)."""
        await self.reached(start)
        producer = Producer(
            self.system.infra.kafka.address,
            self.system.topic_names,
            self.system.infra.kafka.login(ADMIN),
        )
        rng = random.Random(self.system.name)
        copied = 0
        try:
            while True:
                finished = self._originals_done
                copied, sent = len(self._sent), self._sent[copied:]
                by_key: dict[str, list[Upstream]] = defaultdict(list)
                for item in sent:
                    if item.envelope is not None:  # valid: keyed by its aggregate id
                        by_key[item.envelope.aggregateid].append(item)
                queues = [by_key[key] for key in sorted(by_key)]
                rng.shuffle(queues)
                order: list[Upstream] = []
                while queues:
                    queue = rng.choice(queues)
                    order.append(queue.pop(0))
                    if not queue:
                        queues.remove(queue)
                for start_at in range(0, len(order), 100):
                    await producer.send(order[start_at : start_at + 100])
                self.duplicates += len(order)
                if finished and copied == len(self._sent):
                    return
                await asyncio.sleep(0.3)
        finally:
            await producer.close()


class Producer:
    """The upstream systems' producer: idempotent, ``acks=all``, keyed by aggregate id.

    A chunk that fails (the broker went away) is sent again whole with a new producer:
    what had been written then arrives twice, later in its partition, never out of order.
    """

    def __init__(self, bootstrap: str, topics: TopicNames, login: dict[str, Any]) -> None:
        self.bootstrap = bootstrap
        self.topic_names = topics
        self.login = login
        self._producer: Any = None

    async def send(self, chunk: Sequence[Upstream]) -> None:
        await retry(lambda: self._send(chunk), what="upstream records")

    async def _send(self, chunk: Sequence[Upstream]) -> None:
        try:
            if self._producer is None:
                self._producer = reliable_producer(
                    self.bootstrap, linger_ms=5, request_timeout_ms=15000, **self.login
                )
                await self._producer.start()
            async with asyncio.timeout(60):
                deliveries = [
                    await self._producer.send(
                        self.topic_names(item.topic),
                        value=item.record.value,
                        key=item.record.key,
                        headers=item.record.headers,
                    )
                    for item in chunk
                ]
                await asyncio.gather(*deliveries)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(20):
                    await producer.stop()
