"""Unit tests of the backbone: no servers (in-memory event store, TestKafkaBroker)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from crm_backbone.context import command_context, current_context
from crm_backbone.eventstore import EventStoreConfig
from crm_backbone.kafka import subscribe
from crm_backbone.projection import BatchResult, Record
from crm_backbone.readmodel import guard_key
from crm_backbone.relay import integration_envelope
from crm_backbone.testing import SOURCE, CustomerCards, Customers, translate
from crm_events.envelope import from_kafka, to_kafka
from faststream.kafka import KafkaBroker, TestKafkaBroker


def test_events_record_who_issued_the_command() -> None:
    app = Customers()
    with command_context(actor="rm-001", correlation_id="req-1"):
        customer_id = app.register("Li Na")
    with command_context(actor="rm-002", correlation_id="req-2", causation_id="evt-9"):
        app.change_phone(customer_id, "+86 1234 5678")
    events: list[Any] = list(app.events.get(customer_id))
    assert [(e.actor, e.correlation_id, e.causation_id) for e in events] == [
        ("rm-001", "req-1", None),
        ("rm-002", "req-2", "evt-9"),
    ]
    assert current_context().actor == "system"


def test_integration_envelope_is_deterministic_and_carries_the_context() -> None:
    app = Customers()
    with command_context(actor="rm-001", correlation_id="req-1"):
        customer_id = app.register("Li Na")
    (event,) = list[Any](app.events.get(customer_id))
    payload = translate(event)
    assert payload is not None
    first = integration_envelope(event, payload, SOURCE)
    again = integration_envelope(event, payload, SOURCE)
    assert first.id == again.id  # a republished event is recognisably the same event
    assert (first.actor, first.correlationid, first.aggregateversion) == ("rm-001", "req-1", 1)
    record = to_kafka(first)
    assert from_kafka(record.key, record.value, record.headers) == first


def test_event_store_settings(tmp_path: Path) -> None:
    sqlite = EventStoreConfig(sqlite_path=tmp_path / "s.sqlite").environment()
    assert sqlite["PERSISTENCE_MODULE"] == "eventsourcing.sqlite"
    postgres = EventStoreConfig(postgres_dsn="postgresql://crm:p%40ss@db:6543/customer")
    env = postgres.environment()
    assert (env["POSTGRES_HOST"], env["POSTGRES_PORT"], env["POSTGRES_DBNAME"]) == (
        "db",
        "6543",
        "customer",
    )
    assert (env["POSTGRES_USER"], env["POSTGRES_PASSWORD"]) == ("crm", "p@ss")


def test_guard_keys_are_safe_mongodb_field_names() -> None:
    key = guard_key("/bank/core-banking", "ACC.001$x")
    assert "." not in key
    assert "$" not in key


class RecordingEngine:
    """Stands in for the engine to show what the subscriber hands over."""

    def __init__(self) -> None:
        self.projection = CustomerCards()
        self.consumer_group = "unit"
        self.batches: list[tuple[Record, ...]] = []
        self.seen = asyncio.Event()

    async def process(self, records: Sequence[Record]) -> BatchResult:
        self.batches.append(tuple(records))
        self.seen.set()
        return BatchResult()


async def test_subscriber_hands_raw_records_to_the_engine_undecoded() -> None:
    broker = KafkaBroker()
    engine = RecordingEngine()
    subscribe(broker, engine, ["unit.topic"])
    async with TestKafkaBroker(broker) as test_broker:
        await test_broker.publish(
            b"{not json", "unit.topic", key=b"c-1", headers={"content-type": "application/json"}
        )
        await asyncio.wait_for(engine.seen.wait(), timeout=5)
    (record,) = engine.batches[0]
    assert (record.key, record.value) == (b"c-1", b"{not json")
