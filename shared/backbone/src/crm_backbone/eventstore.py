"""Where a service's event store lives: an SQLite file (default) or PostgreSQL."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit


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
