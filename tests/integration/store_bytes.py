"""The bytes of the stores the CRM owns, compacted first, and searched for a person's strings.

Each reader compacts what its server can compact, then reads what is on disk or raw:
SQLite files (``VACUUM``, the WAL checkpointed and truncated, then every file of the
database: main, ``-wal``, ``-shm``, ``-journal``); PostgreSQL tables (``VACUUM FULL``, then
``COPY ... TO STDOUT (FORMAT binary)``: every live tuple, every column, as stored);
Kafka's log segments of the deployment's CRM topics (every ``.log`` file of each
partition's folder in the broker's ``log.dirs``, where the records are: the topics
``<prefix>crm.*``, events, dead letters and audit; ``<prefix>bank.*`` belong to the bank
and are not read; the offset and time indexes hold no record); MongoDB collections
(``compact``, then every document as raw BSON).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from bson.raw_bson import RawBSONDocument
from crm_backbone.topic_names import TopicNames
from local_infra.infra import PROFILES, Infra
from psycopg import sql
from pymongo import MongoClient

CRM_TOPICS = "crm."
"""The CRM's own topics (its events, dead letters and audit) start with this."""


@dataclass
class StoreBytes:
    """What one store holds, as the bytes read from it."""

    store: str
    chunks: list[bytes] = field(default_factory=list)

    @property
    def size(self) -> int:
        return sum(len(chunk) for chunk in self.chunks)

    def found(self, needles: Iterable[bytes]) -> list[bytes]:
        """The needles (case-insensitive for ASCII letters) some chunk holds."""
        lowered = [chunk.lower() for chunk in self.chunks]
        return [n for n in needles if any(n.lower() in chunk for chunk in lowered)]


def forms(text: str) -> list[bytes]:
    """How ``text`` can sit in a store: UTF-8 (BSON, SQL text, JSON written as is) and,
    when not ASCII, JSON's escapes (``\\u4e2d``: ``json.dumps``' default)."""
    written = [text.encode()]
    escaped = json.dumps(text)[1:-1].encode()
    return written if escaped == written[0] else [*written, escaped]


def sqlite_files(data_dir: Path, pattern: str, store: str) -> StoreBytes:
    """The SQLite databases under ``data_dir`` named ``pattern``, vacuumed and their WAL
    truncated, every file of each read."""
    read = StoreBytes(store)
    for database in sorted(data_dir.rglob(pattern)):
        conn = sqlite3.connect(database, timeout=30, isolation_level=None)
        try:
            conn.execute("VACUUM")
            # A service's open reader keeps its frames: waited for briefly, as the WAL
            # file is read too, and what it keeps counts as found.
            conn.execute("PRAGMA busy_timeout = 1000")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.close()
        read.chunks += [f.read_bytes() for f in sorted(database.parent.glob(f"{database.name}*"))]
    assert read.chunks, f"no SQLite database {pattern} under {data_dir}"
    return read


def postgres_tables(server_dsn: str, database: str, store: str) -> StoreBytes:
    """Every table of ``database`` (schema public), after ``VACUUM FULL``, read raw."""
    read = StoreBytes(store)
    dsn = psycopg.conninfo.make_conninfo(server_dsn, dbname=database)
    with psycopg.connect(dsn, autocommit=True) as conn:
        tables = [
            name
            for (name,) in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
            )
        ]
        assert tables, f"no table in {database}"
        for table in tables:
            name = sql.Identifier(table)
            conn.execute(sql.SQL("VACUUM FULL {}").format(name))
            with conn.cursor().copy(
                sql.SQL("COPY {} TO STDOUT (FORMAT binary)").format(name)
            ) as copy:
                read.chunks += [bytes(block) for block in copy]
    return read


def kafka_log_dir(bootstrap: str) -> Path | None:
    """The broker's data folder, when ``bootstrap`` is a broker of the project's launcher
    on this machine."""
    for profile in PROFILES.values():
        kafka = Infra(profile).kafka
        if kafka.address == bootstrap and kafka.data_dir.is_dir():
            return kafka.data_dir
    return None


def kafka_segments(log_dir: Path, topics: TopicNames) -> StoreBytes:
    """Every log segment of every partition of the deployment's CRM topics."""
    read = StoreBytes("Kafka log segments (crm.*)")
    own = topics(CRM_TOPICS)
    partitions = [p for p in sorted(log_dir.iterdir()) if p.is_dir() and p.name.startswith(own)]
    assert partitions, f"no partition of {own}* in {log_dir}"
    for partition in partitions:
        read.chunks += [segment.read_bytes() for segment in sorted(partition.glob("*.log"))]
    return read


def mongo_collections(mongo_uri: str, databases: Iterable[str]) -> StoreBytes:
    """Every document of every collection of ``databases``, compacted first (several
    collections at once: each waits for a checkpoint), as raw BSON."""
    read = StoreBytes("MongoDB collections (raw BSON)")
    client: MongoClient[Any] = MongoClient(mongo_uri, document_class=RawBSONDocument)
    try:
        collections = [
            client[name][collection]
            for name in databases
            for collection in client[name].list_collection_names()
        ]
        assert collections, "no MongoDB collection"
        with ThreadPoolExecutor(max_workers=16) as pool:
            # The test servers' replica set has one member, the primary: forced.
            compacting = [
                pool.submit(c.database.command, "compact", c.name, force=True) for c in collections
            ]
            for done in compacting:
                done.result()
        for collection in collections:
            read.chunks += [document.raw for document in collection.find()]
    finally:
        client.close()
    return read
