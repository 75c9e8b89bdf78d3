"""Bounded waits, and retries through outages, as every part of the suite uses them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
from aiokafka.errors import KafkaError
from eventsourcing.persistence import PersistenceError

RETRY_FOR = 240.0
"""Seconds a command or a send keeps being retried through an outage before failing."""
TRANSIENT = (PersistenceError, psycopg.Error, OSError, KafkaError, TimeoutError)
"""What an outage raises in the suite's own clients: retried, not failed."""


async def until(
    condition: Callable[[], Awaitable[bool]], *, within: float, what: str, every: float = 0.2
) -> float:
    """Wait (bounded) until ``condition`` holds; seconds waited. TimeoutError says what."""
    started = time.monotonic()
    while not await condition():
        if time.monotonic() - started > within:
            raise TimeoutError(f"{what}: not within {within:.0f}s")
        await asyncio.sleep(every)
    return time.monotonic() - started


async def retry(action: Callable[[], Awaitable[Any]], *, what: str) -> Any:
    """Run ``action`` until it succeeds; transient errors (an outage) are retried for at
    most :data:`RETRY_FOR` seconds."""
    deadline = time.monotonic() + RETRY_FOR
    while True:
        try:
            return await action()
        except TRANSIENT:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.3)
