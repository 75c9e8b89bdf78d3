"""The key database: one table of wrapped data keys, on SQLite or PostgreSQL.

``subject_keys`` has one row per data subject: the data key wrapped by a master key
(``master.py``), that key's id, when the key was made and, once destroyed, when. Destroying
removes the wrapped key and keeps the row as a tombstone, so no later write makes the
subject a new key. Rows are written with ``INSERT ... ON CONFLICT``, so processes making the
same subject's key at once agree on one.

What lingers after a destroy: SQLite overwrites deleted content (``secure_delete``);
PostgreSQL keeps the old row version until VACUUM, and its WAL for a while, but wrapped
by the master key of the time: rotating the master key (``rewrap``, then removing the old
key) turns such remains into bytes nobody can open.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import psycopg

from crm_backbone.keys.cipher import new_data_key
from crm_backbone.keys.master import KeyWrapper
from crm_backbone.keys.subject_keys import SubjectErased

TABLE = "subject_keys"
REWRAP_BATCH = 500
READ_BATCH = 500
"""Subjects read in one query by ``keys_for_reading``."""

Row = tuple[Any, ...]


def table_ddl(*, postgres: bool) -> list[str]:
    """The statements creating the table (the key store's, or the provisioning's)."""
    blob, time = ("bytea", "timestamptz") if postgres else ("BLOB", "TEXT")
    columns = [
        "subject text PRIMARY KEY",
        f"wrapped_key {blob}",
        "master_key_id text",
        f"created_at {time} NOT NULL",
        f"destroyed_at {time}",
        "CHECK ((wrapped_key IS NULL) = (destroyed_at IS NOT NULL))",
    ]
    return [
        f"CREATE TABLE IF NOT EXISTS {TABLE} ({', '.join(columns)})",
        f"CREATE INDEX IF NOT EXISTS {TABLE}_master_key ON {TABLE} (master_key_id)",
    ]


class KeyDatabase(Protocol):
    """The SQL the key store runs, in ``%s`` parameter style, each statement on its own."""

    def query(self, statement: str, params: Sequence[Any] = ()) -> list[Row]: ...

    def execute(self, statement: str, params: Sequence[Any] = ()) -> int:
        """Run ``statement``; the number of rows it changed."""
        ...

    def close(self) -> None: ...


class SqliteKeyDatabase:
    """A file several processes share (SQLite's locking; a writer waits up to 30 s)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(
            path, timeout=30, isolation_level=None, check_same_thread=False
        )
        self._conn.execute("PRAGMA secure_delete = ON")
        self._lock = threading.Lock()
        for statement in table_ddl(postgres=False):
            self.execute(statement)

    def query(self, statement: str, params: Sequence[Any] = ()) -> list[Row]:
        with self._lock:
            return self._conn.execute(*self._sqlite(statement, params)).fetchall()

    def execute(self, statement: str, params: Sequence[Any] = ()) -> int:
        with self._lock:
            return self._conn.execute(*self._sqlite(statement, params)).rowcount

    def close(self) -> None:
        self._conn.close()

    @staticmethod
    def _sqlite(statement: str, params: Sequence[Any]) -> tuple[str, list[Any]]:
        values = [v.isoformat() if isinstance(v, datetime) else v for v in params]
        return statement.replace("%s", "?"), values


class PostgresKeyDatabase:
    """The key store's own PostgreSQL database (``<namespace>_keys``). The table is the
    provisioning's where roles are provisioned (a service's role may not create one); a
    database without it (a local server without roles) gets it here."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._conn: psycopg.Connection[Row] | None = None
        self._lock = threading.Lock()
        if not self.query("SELECT to_regclass(%s) IS NOT NULL", (TABLE,))[0][0]:
            for statement in table_ddl(postgres=True):
                self.execute(statement)

    def query(self, statement: str, params: Sequence[Any] = ()) -> list[Row]:
        with self._connection() as conn:
            return conn.execute(statement.encode(), params).fetchall()

    def execute(self, statement: str, params: Sequence[Any] = ()) -> int:
        with self._connection() as conn:
            return conn.execute(statement.encode(), params).rowcount

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Row]]:
        """The one connection, made again after it broke (the statement is not retried)."""
        with self._lock:
            if self._conn is None or self._conn.closed or self._conn.broken:
                self._conn = psycopg.connect(self._dsn, autocommit=True)
            yield self._conn


class DatabaseKeyStore:
    """``SubjectKeys`` in a key database, each data key wrapped by ``wrapper``."""

    def __init__(self, database: KeyDatabase, wrapper: KeyWrapper) -> None:
        self.database = database
        self.wrapper = wrapper

    def key_for_writing(self, subject: str) -> bytes:
        row = self._row(subject)
        if row is None:
            wrapped, master_key_id = self.wrapper.wrap(subject, new_data_key())
            self.database.execute(
                f"INSERT INTO {TABLE} (subject, wrapped_key, master_key_id, created_at) "
                "VALUES (%s, %s, %s, %s) ON CONFLICT (subject) DO NOTHING",
                (subject, wrapped, master_key_id, _now()),
            )
            row = self._row(subject)  # ours, or the one another process made first
        key = self._unwrapped(subject, row)
        if key is None:
            raise SubjectErased(subject)
        return key

    def key_for_reading(self, subject: str) -> bytes | None:
        return self._unwrapped(subject, self._row(subject))

    def keys_for_reading(self, subjects: Collection[str]) -> dict[str, bytes | None]:
        found: dict[str, bytes | None] = dict.fromkeys(subjects)
        ordered = sorted(found)
        for start in range(0, len(ordered), READ_BATCH):
            chunk = ordered[start : start + READ_BATCH]
            rows = self.database.query(
                f"SELECT subject, wrapped_key, master_key_id FROM {TABLE} "
                f"WHERE subject IN ({', '.join(['%s'] * len(chunk))})",
                chunk,
            )
            for subject, *row in rows:
                found[subject] = self._unwrapped(subject, tuple(row))
        return found

    def destroy(self, subject: str) -> None:
        now = _now()
        self.database.execute(
            f"INSERT INTO {TABLE} (subject, created_at, destroyed_at) VALUES (%s, %s, %s) "
            "ON CONFLICT (subject) DO UPDATE SET wrapped_key = NULL, master_key_id = NULL, "
            f"destroyed_at = COALESCE({TABLE}.destroyed_at, excluded.destroyed_at)",
            (subject, now, now),
        )

    def rewrap(self) -> int:
        """Wrap every live data key under the current master key (keys already under it
        are left alone); how many were rewrapped. Safe while the services run: a row
        changed meanwhile (destroyed, rewrapped by another pass) is left as it is."""
        rewrapped = 0
        while True:
            current = self.wrapper.current_id()  # a rotation during the pass moves it on
            rows = self.database.query(
                f"SELECT subject, wrapped_key, master_key_id FROM {TABLE} "
                "WHERE wrapped_key IS NOT NULL AND master_key_id <> %s "
                "ORDER BY subject LIMIT %s",
                (current, REWRAP_BATCH),
            )
            if not rows:
                return rewrapped
            for subject, wrapped, master_key_id in rows:
                key = self.wrapper.unwrap(subject, bytes(wrapped), master_key_id)
                new_wrapped, new_id = self.wrapper.wrap(subject, key)
                rewrapped += self.database.execute(
                    f"UPDATE {TABLE} SET wrapped_key = %s, master_key_id = %s "
                    "WHERE subject = %s AND master_key_id = %s AND wrapped_key IS NOT NULL",
                    (new_wrapped, new_id, subject, master_key_id),
                )

    def close(self) -> None:
        self.database.close()

    def _row(self, subject: str) -> Row | None:
        rows = self.database.query(
            f"SELECT wrapped_key, master_key_id FROM {TABLE} WHERE subject = %s", (subject,)
        )
        return rows[0] if rows else None

    def _unwrapped(self, subject: str, row: Row | None) -> bytes | None:
        if row is None or row[0] is None:
            return None
        wrapped, master_key_id = row
        return self.wrapper.unwrap(subject, bytes(wrapped), master_key_id)


def _now() -> datetime:
    return datetime.now(UTC)
