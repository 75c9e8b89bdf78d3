"""Backbone benchmark: relay and projection rates against the limits measured in the same run.

Reads server addresses from the environment or var/infra/infra.env (``make infra-up``).
Prints one table and writes it as JSON to var/bench/backbone.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from aiokafka import AIOKafkaProducer
from crm_backbone.context import command_context
from crm_backbone.eventstore import EventStoreConfig
from crm_backbone.kafka import KafkaDeadLetters, ensure_topics
from crm_backbone.projection import ProjectionEngine
from crm_backbone.relay import OutboxRelay, integration_envelope
from crm_backbone.testing import SOURCE, Customer, CustomerCards, Customers, translate
from crm_events.envelope import to_kafka
from crm_events.topics import TopicSpec
from local_infra.infra import ENV_KAFKA, ENV_MONGO, ENV_POSTGRES, PROFILES, read_env_file
from pymongo import AsyncMongoClient, UpdateOne

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class FakeRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


def servers() -> dict[str, str]:
    found = {k: os.environ[k] for k in (ENV_KAFKA, ENV_MONGO, ENV_POSTGRES) if k in os.environ}
    if len(found) == 3:
        return found
    env_file = PROFILES["run"].state_dir / "infra.env"
    if not env_file.exists():
        raise SystemExit("no servers: run `make infra-up` or set the CRM_* addresses")
    return read_env_file(env_file)


def history(app: Customers, customers: int, changes: int) -> None:
    with command_context(actor="bench"):
        for n in range(customers):
            customer = Customer(full_name=f"Customer {n}", branch_id="BR-001")
            for round_ in range(changes):
                customer.change_phone(f"+86 {round_:03d} {n:06d}")
            app.save(customer)


async def relay_rate(store: EventStoreConfig, bootstrap: str, topic: str, events: int) -> float:
    app = Customers(env=store.environment())
    history(app, customers=events // 10, changes=9)
    relay = OutboxRelay(
        app, translate, source=SOURCE, bootstrap_servers=bootstrap,
        postgres_dsn=store.postgres_dsn, route=lambda _: topic,
    )  # fmt: skip
    await relay.start()
    began = time.perf_counter()
    sent = await relay.publish_pending()
    elapsed = time.perf_counter() - began
    await relay.stop()
    app.close()
    return sent / elapsed


def sample_records(events: int) -> list[FakeRecord]:
    app = Customers()
    history(app, customers=events // 10, changes=9)
    records = []
    for offset, notification in enumerate(app.recorder.select_notifications(None, events + 1)):
        domain_event = app.mapper.to_domain_event(notification)
        payload = translate(domain_event)
        assert payload is not None
        k = to_kafka(integration_envelope(domain_event, payload, SOURCE))  # type: ignore[arg-type]
        records.append(FakeRecord("bench", 0, offset, k.key, k.value, k.headers))
    return records


async def raw_upsert_rate(db: Any, records: list[FakeRecord], batch: int) -> float:
    began = time.perf_counter()
    for start in range(0, len(records), batch):
        await db.raw.bulk_write(
            [
                UpdateOne({"_id": r.key}, {"$set": {"v": r.offset}, "$inc": {"n": 1}}, upsert=True)
                for r in records[start : start + batch]
            ],
            ordered=False,
        )
    return len(records) / (time.perf_counter() - began)


async def projection_rate(engine: ProjectionEngine, records: list[FakeRecord], batch: int) -> float:
    began = time.perf_counter()
    for start in range(0, len(records), batch):
        await engine.process(records[start : start + batch])
    return len(records) / (time.perf_counter() - began)


async def per_event_baseline(db: Any, records: list[FakeRecord]) -> float:
    """The usual approach: one find-and-update round trip per event."""
    began = time.perf_counter()
    for r in records:
        await db.baseline.find_one_and_update(
            {"_id": r.key}, {"$set": {"v": r.offset}, "$inc": {"n": 1}}, upsert=True
        )
    return len(records) / (time.perf_counter() - began)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()
    addresses = servers()
    bootstrap = addresses[ENV_KAFKA]
    run = uuid.uuid4().hex[:8]
    topic = f"bench.relay.{run}"
    dlq = f"bench.dlq.{run}"
    await ensure_topics(bootstrap, [TopicSpec(topic, 6, 1, {}), TopicSpec(dlq, 1, 1, {})])

    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = EventStoreConfig(sqlite_path=Path(tmp) / "bench.sqlite")
        figures["relay_sqlite_events_per_s"] = await relay_rate(
            sqlite, bootstrap, topic, args.events
        )
    pg_db = f"bench_{run}"
    with psycopg.connect(addresses[ENV_POSTGRES], autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{pg_db}"')
    try:
        dsn = addresses[ENV_POSTGRES].rsplit("/", 1)[0] + f"/{pg_db}"
        postgres = EventStoreConfig(postgres_dsn=dsn)
        figures["relay_postgres_events_per_s"] = await relay_rate(
            postgres, bootstrap, topic, args.events
        )
    finally:
        with psycopg.connect(addresses[ENV_POSTGRES], autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{pg_db}" WITH (FORCE)')

    records = sample_records(args.events)
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(addresses[ENV_MONGO])
    db = client[f"bench_{run}"]
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        figures["mongo_raw_bulk_upsert_per_s"] = await raw_upsert_rate(db, records, args.batch)
        engine = ProjectionEngine(CustomerCards(), db, KafkaDeadLetters(producer, dlq), "bench")
        figures["projection_events_per_s"] = await projection_rate(engine, records, args.batch)
        sample = records[: min(len(records), 5000)]
        figures["baseline_per_event_events_per_s"] = await per_event_baseline(db, sample)
    finally:
        await producer.stop()
        await client.drop_database(db.name)
        await client.close()

    figures["projection_vs_raw_upsert"] = (
        figures["projection_events_per_s"] / figures["mongo_raw_bulk_upsert_per_s"]
    )
    figures["projection_vs_baseline"] = (
        figures["projection_events_per_s"] / figures["baseline_per_event_events_per_s"]
    )
    print(f"backbone benchmark: {args.events} events, batches of {args.batch}, "
          f"{platform.machine()} {os.cpu_count()} cores")  # fmt: skip
    for name, value in figures.items():
        print(f"  {name:36} {value:>12,.2f}")
    out = ROOT / "var" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    (out / "backbone.json").write_text(json.dumps({"events": args.events, **figures}, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
