"""When a consumer's handler fails: outages redeliver the batch, bugs are retried, then
the event is dead-lettered.

Used alike by the projection engine (:mod:`crm_backbone.projection`) and the policy
consumer (:mod:`crm_backbone.policy`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from aiokafka.errors import KafkaError
from eventsourcing.persistence import PersistenceError
from pymongo.errors import PyMongoError

from crm_backbone.metrics import HANDLER_ERRORS
from crm_backbone.records import Record

T = TypeVar("T")


class DeadLetters(Protocol):
    """Where a consumer sends the records it gives up on, with a code and the reason."""

    async def __call__(self, record: Record, code: str, reason: str, consumer: str) -> None: ...


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
