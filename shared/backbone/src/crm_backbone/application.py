"""The base of every service's ``eventsourcing`` application."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, NamedTuple

import structlog
from eventsourcing.application import Application
from eventsourcing.persistence import EventStore, Mapper, Recording

from crm_backbone.eventstore import SnapshotStore
from crm_backbone.sealing import EventSealing, SealingMapper

log = structlog.get_logger(__name__)

Clock = Callable[[], datetime]
"""Returns the current moment (timezone-aware); injected so tests control time."""

IdMaker = Callable[[str], str]
"""Makes a fresh id with the given prefix (``"OPP"`` -> ``"OPP-5F3A..."``)."""


class Created(NamedTuple):
    """What a use case that creates an aggregate returns: its id (the caller's, or one
    ``new_id`` made) and its version."""

    id: str
    version: int


def utc_now() -> datetime:
    return datetime.now(UTC)


def random_id(prefix: str) -> str:
    """``<prefix>-`` and 16 random hexadecimal digits: unique without coordination."""
    return f"{prefix}-{uuid.uuid4().hex[:16].upper()}"


class ServiceApplication(Application[uuid.UUID]):
    """The service layer: one method per use case, each loading, deciding and saving.

    Every service's application takes the same two collaborators, so that the API
    passes only what the caller said: ``clock`` for the moment of a command and
    ``new_id`` for the id of an aggregate the caller did not name. It calls
    ``on_saved`` after each save: the relay uses it to publish at once instead of
    waiting for its next poll. Given ``sealing``, the personal data of its stored events
    and snapshots is sealed (``crm_backbone.sealing``).
    """

    def __init__(
        self,
        env: dict[str, str] | None = None,
        *,
        clock: Clock = utc_now,
        new_id: IdMaker = random_id,
        sealing: EventSealing | None = None,
    ) -> None:
        self.sealing = sealing  # read by construct_mapper, during the library's __init__
        super().__init__(env)
        self.clock = clock
        self.new_id = new_id
        self.on_saved: Callable[[], None] = lambda: None

    def _notify(self, recordings: list[Recording[uuid.UUID]]) -> None:
        self.on_saved()

    def construct_mapper(self) -> Mapper[uuid.UUID]:
        if self.sealing is None:
            return super().construct_mapper()
        return SealingMapper(
            self.construct_transcoder(),
            self.sealing,
            compressor=self.factory.compressor(),
            cipher=self.factory.cipher(),
        )

    def construct_snapshot_store(self) -> EventStore[uuid.UUID]:
        return SnapshotStore(
            mapper=self.mapper, recorder=self.factory.aggregate_recorder(purpose="snapshots")
        )

    def take_snapshot(self, aggregate_id: uuid.UUID, *args: Any, **kwargs: Any) -> None:
        """Take a snapshot; one that fails is logged and skipped, never the command's failure.

        Snapshots are taken after the command's events are stored: a failure here must
        not tell the caller that a saved command failed. Without it the aggregate is
        replayed from its events, as before its first snapshot.
        """
        try:
            super().take_snapshot(aggregate_id, *args, **kwargs)
        except Exception:
            log.exception("snapshot_failed", aggregate_id=str(aggregate_id))

    def stored_version(self, aggregate_id: uuid.UUID) -> int:
        """The version of the aggregate's last stored event; 0 when it has none."""
        last = self.recorder.select_events(aggregate_id, desc=True, limit=1)
        return last[0].originator_version if last else 0


class StaleVersion(Exception):
    """A command sent with an ``expected_version`` the aggregate has moved past (HTTP 409)."""

    def __init__(self, what: str, expected: int, current: int) -> None:
        super().__init__(
            f"{what} is at version {current}, not the expected {expected}: read it again and retry"
        )
        self.expected = expected
        self.current = current
