"""What the consumers read of a Kafka record, and MongoDB documents: shared by the engine,
the policies, the parking lot and the dead-letter holds."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Protocol

from crm_events.personal import TOKEN_PREFIX, FieldSealer

from crm_backbone.keys.sealer import KeySealer

Document = dict[str, Any]


class Record(Protocol):
    """The parts of a Kafka consumer record the engine reads."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> Sequence[tuple[str, bytes]]: ...


async def prefetch_keys(sealer: FieldSealer | None, records: Sequence[Record]) -> None:
    """Before opening a batch: the keys of its sealed records' subjects (their aggregate
    ids, the records' keys) read in one query, in a thread, rather than one query per
    subject on the event loop as each record is opened. (A payload naming another subject
    reads that subject's key as it is opened.)"""
    if not isinstance(sealer, KeySealer):
        return
    token = TOKEN_PREFIX.encode()
    subjects = {r.key.decode() for r in records if r.key and r.value and token in r.value}
    if subjects:
        await asyncio.to_thread(sealer.prefetch, subjects)
