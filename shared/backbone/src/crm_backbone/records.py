"""What the consumers read of a Kafka record, and MongoDB documents: shared by the engine,
the policies, the parking lot and the dead-letter holds."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

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
