"""Where a service's event store lives (an SQLite file, by default, or PostgreSQL), and
which of its snapshots an aggregate is restored from."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import EventStore, StoredEvent
from eventsourcing.utils import get_topic

from crm_backbone.aggregate import TracedAggregate
from crm_backbone.sealing import ErasedSnapshot

RESTORABLE_SNAPSHOT_TOPIC = get_topic(TracedAggregate.Snapshot)


@dataclass(frozen=True)
class EventStoreConfig:
    """An SQLite file path, or a PostgreSQL DSN (``postgresql://user:pw@host:port/db``)."""

    sqlite_path: Path | None = None
    postgres_dsn: str | None = None

    def __post_init__(self) -> None:
        if (self.sqlite_path is None) == (self.postgres_dsn is None):
            raise ValueError("give exactly one of sqlite_path and postgres_dsn")

    @property
    def is_postgres(self) -> bool:
        return self.postgres_dsn is not None

    def environment(self) -> dict[str, str]:
        """The ``eventsourcing`` settings selecting and configuring this store."""
        if self.sqlite_path is not None:
            self.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
            return {
                "PERSISTENCE_MODULE": "eventsourcing.sqlite",
                "SQLITE_DBNAME": str(self.sqlite_path),
                "SQLITE_LOCK_TIMEOUT": "10",
            }
        url = urlsplit(self.postgres_dsn or "")
        return {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": url.path.lstrip("/") or "postgres",
            "POSTGRES_HOST": url.hostname or "127.0.0.1",
            "POSTGRES_PORT": str(url.port or 5432),
            "POSTGRES_USER": unquote(url.username or "postgres"),
            "POSTGRES_PASSWORD": unquote(url.password or ""),
            "POSTGRES_POOL_SIZE": "5",
        }


class SnapshotStore(EventStore[uuid.UUID]):
    """The snapshots an aggregate is restored from: those of ``TracedAggregate.Snapshot``.

    Snapshots written before it (``eventsourcing``'s own ``Snapshot``) lost their values'
    types: they are passed over, so such an aggregate is replayed from its events until
    its next snapshot is taken. So is a sealed snapshot whose subject is erased
    (``crm_backbone.sealing``): its events give the erased aggregate.
    """

    def get(
        self,
        originator_id: uuid.UUID,
        *,
        gt: int | None = None,
        lte: int | None = None,
        desc: bool = False,
        limit: int | None = None,
    ) -> Iterator[DomainEventProtocol[uuid.UUID]]:
        stored = self._restorable(originator_id, gt=gt, lte=lte, desc=desc, limit=limit)
        return (snapshot for s in stored if (snapshot := self._opened(s)) is not None)

    def _opened(self, stored: StoredEvent) -> DomainEventProtocol[uuid.UUID] | None:
        try:
            return self.mapper.to_domain_event(stored)
        except ErasedSnapshot:
            return None

    def _restorable(
        self,
        originator_id: uuid.UUID,
        *,
        gt: int | None,
        lte: int | None,
        desc: bool,
        limit: int | None,
    ) -> list[StoredEvent]:
        restorable: list[StoredEvent] = []
        while True:
            page = self.recorder.select_events(
                originator_id=originator_id, gt=gt, lte=lte, desc=desc, limit=limit
            )
            restorable += [s for s in page if s.topic == RESTORABLE_SNAPSHOT_TOPIC]
            if limit is None or len(page) < limit:
                return restorable
            if len(restorable) >= limit:
                return restorable[:limit]
            if desc:
                lte = page[-1].originator_version - 1
            else:
                gt = page[-1].originator_version
