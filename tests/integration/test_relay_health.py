"""The relay's health against genuine Kafka, PostgreSQL and SQLite: stuck on an event it
cannot translate (readiness red, nothing after it published, nothing skipped, resumed by a
fixed translator); the broker unreachable then back; a store failing then back."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord
from crm_backbone.context import command_context
from crm_backbone.eventstore import EventStoreConfig
from crm_backbone.http import ops_router
from crm_backbone.kafka_acls import ADMIN, principal_of
from crm_backbone.relay import OutboxRelay, Translate
from crm_backbone.runtime import ServiceComponents, ServiceRuntime
from crm_backbone.testing import SOURCE, Customer, Customers, translate
from crm_events.registry import EventPayload
from crm_events.topics import Service
from crm_ops.cli import app as crm_ops
from eventsourcing.persistence import Notification
from fastapi import FastAPI
from local_infra.harness import serving
from local_infra.pytest_plugin import Servers, kafka_login
from pymongo import AsyncMongoClient
from typer.testing import CliRunner

pytestmark = pytest.mark.integration

TopicFactory = Callable[..., Awaitable[str]]
POISON = "+00 0000 0000"
"""A phone number the broken translator below cannot translate."""


def broken_translate(domain_event: Any) -> EventPayload | None:
    """The translator with a bug: it raises on one phone number."""
    phone_changed = Customer.PhoneChanged  # type: ignore[attr-defined]
    if isinstance(domain_event, phone_changed) and domain_event.phone == POISON:
        raise ValueError("a phone number this translator cannot map")
    return translate(domain_event)


async def read_topic(bootstrap: str, topic: str) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record now in ``topic``."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        **kafka_login(ADMIN),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        partitions = consumer.assignment()
        while not partitions:
            await consumer.getmany(timeout_ms=100)
            partitions = consumer.assignment()
        ends = await consumer.end_offsets(list(partitions))
        records: list[ConsumerRecord[bytes, bytes]] = []
        while any([await consumer.position(tp) < end for tp, end in ends.items()]):
            batch = await consumer.getmany(timeout_ms=500)
            records += [r for rs in batch.values() for r in rs]
        return records
    finally:
        await consumer.stop()


async def until(condition: Callable[[], bool], what: str, within: float = 60) -> None:
    """Wait for ``condition`` (a bound against hanging, not a timing assertion)."""
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110 - the relay's state has no event to await
            await asyncio.sleep(0.05)
    assert condition(), what


def caught_up(relay: OutboxRelay) -> bool:
    """The relay has published everything the store holds *and taken note of it* (its
    tracking row is written a moment before its own state: wait for the latter)."""
    return relay.published_through == relay.head()


def relay_for(
    app: Customers, store: EventStoreConfig, bootstrap: str, topic: str, translator: Translate
) -> OutboxRelay:
    return OutboxRelay(
        app,
        translator,
        source=SOURCE,
        bootstrap_servers=bootstrap,
        kafka_login=kafka_login(ADMIN),
        postgres_dsn=store.postgres_dsn,
        route=lambda _: topic,
        batch_size=7,
        backoff=(0.05, 0.5),
    )


@contextlib.asynccontextmanager
async def relaying(relay: OutboxRelay) -> AsyncIterator[None]:
    """``relay`` running in the background for the block, cancelled after it."""
    running = asyncio.create_task(relay.run())
    try:
        yield
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running


@contextlib.asynccontextmanager
async def worker(
    crm_servers: Servers, database: str, app: Customers, relay: OutboxRelay
) -> AsyncIterator[str]:
    """A worker process's HTTP endpoint over a runtime running ``relay``; its URL."""
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(crm_servers.mongo_uri)
    components = ServiceComponents(Service.CUSTOMER, app, relay.translate, mongo[database])
    runtime = ServiceRuntime(
        components,
        kafka_bootstrap=crm_servers.kafka_bootstrap,
        kafka_login=kafka_login(principal_of(Service.CUSTOMER)),
    )
    runtime.relay = relay
    http = FastAPI()
    http.include_router(ops_router(runtime.readiness_checks, {}))
    await runtime.start()
    try:
        async with serving(http) as url:
            yield url
    finally:
        await runtime.stop()
        await mongo.close()


def history(phones: list[str]) -> list[tuple[int, str]]:
    """Two customers, then ``phones`` alternately on each: (customer, phone) changes."""
    return [(n % 2, phone) for n, phone in enumerate(phones)]


def write(app: Customers, changes: list[tuple[int, str]]) -> None:
    with command_context(actor="rm-042"):
        ids = [app.register(f"Customer {n}") for n in range(2)]
        for customer, phone in changes:
            app.change_phone(ids[customer], phone)


@pytest.mark.parametrize("changes_before", [0, 9])
async def test_stuck_on_an_untranslatable_event_then_resumed_by_a_fixed_translator(
    crm_servers: Servers,
    store: EventStoreConfig,
    kafka_topics: TopicFactory,
    mongo_database: str,
    changes_before: int,
) -> None:
    """The poison in the middle of the first batch, or of the second."""
    topic = await kafka_topics("stuck")
    app = Customers(env=store.environment())
    before = [f"+86 138 0000 {n:04d}" for n in range(changes_before)]
    write(app, history([*before, POISON, "+86 139 0000 0001", "+86 139 0000 0002"]))
    poison = next(n for n in _notifications(app) if n.state and POISON.encode() in n.state)
    head = app.recorder.max_notification_id()
    bootstrap = crm_servers.kafka_bootstrap

    relay = relay_for(app, store, bootstrap, topic, broken_translate)
    async with worker(crm_servers, mongo_database, app, relay) as url:
        await until(lambda: relay.stopped_at is not None, "the relay stops at the poison")
        async with httpx.AsyncClient(base_url=url) as client:
            ready = await client.get("/readyz")
            metrics = (await client.get("/metrics")).text
        status = await asyncio.to_thread(
            CliRunner().invoke, crm_ops, ["relay", "status", "--service", f"customer={url}"]
        )
    assert ready.status_code == 503
    reason = ready.json()["checks"]["relay"]
    assert f"stored event {poison.id} ({poison.topic})" in reason
    assert POISON not in reason  # the values stay out of errors
    assert relay.position() == poison.id - 1
    assert f'crm_relay_stopped{{application="{relay.name}"}} 1.0' in metrics
    assert f'crm_relay_store_head{{application="{relay.name}"}} {float(head or 0)}' in metrics
    assert "crm_relay_last_success_timestamp_seconds" in metrics
    assert status.exit_code == 1, status.output
    assert f"stored event {poison.id}" in status.output.replace("\n", "")
    published = await read_topic(bootstrap, topic)
    # Exactly the events before the poison: nothing after it, nothing skipped.
    assert _versions(published) == _versions_in_store(app, below=poison.id)

    fixed = relay_for(app, store, bootstrap, topic, translate)
    async with worker(crm_servers, mongo_database, app, fixed) as url:
        await until(lambda: fixed.position() == head, "the fixed relay catches up")
        async with httpx.AsyncClient(base_url=url) as client:
            ready = await client.get("/readyz")
    assert ready.status_code == 200, ready.text
    published = await read_topic(bootstrap, topic)
    assert _versions(published) == _versions_in_store(app, below=(head or 0) + 1)
    app.close()


def _notifications(app: Customers) -> Sequence[Notification]:
    return app.recorder.select_notifications(start=None, limit=10_000)


def _versions(records: list[ConsumerRecord[bytes, bytes]]) -> list[tuple[str, int]]:
    """(aggregate, version) of each record, in publication order per aggregate, sorted."""
    headers = [dict(r.headers) for r in records]
    return sorted((h["ce_aggregateid"].decode(), int(h["ce_aggregateversion"])) for h in headers)


def _versions_in_store(app: Customers, below: int) -> list[tuple[str, int]]:
    return sorted(
        (str(n.originator_id), n.originator_version) for n in _notifications(app) if n.id < below
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def tcp_forwarder(port: int, target: str) -> AsyncIterator[None]:
    """Listen on ``port`` and forward every connection to ``target`` (host:port)."""
    host, target_port = target.rsplit(":", 1)

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(host, int(target_port))
        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))

    server = await asyncio.start_server(forward, "127.0.0.1", port)
    try:
        yield
    finally:
        server.close()


async def test_broker_unreachable_then_back_restarts_with_backoff_and_publishes(
    crm_servers: Servers, kafka_topics: TopicFactory, tmp_path: Path
) -> None:
    """The relay's bootstrap address answers nothing at first (connection refused), then
    leads to the genuine broker."""
    store = EventStoreConfig(sqlite_path=tmp_path / "customers.sqlite")
    topic = await kafka_topics("outage")
    app = Customers(env=store.environment())
    write(app, history(["+86 138 0000 0001", "+86 138 0000 0002"]))
    port = free_port()
    relay = relay_for(app, store, f"127.0.0.1:{port}", topic, translate)
    async with relaying(relay):
        await until(lambda: relay.failures_in_row >= 3, "the relay keeps restarting")
        assert relay.unready_reason() is not None
        assert relay.last_success_at is None
        assert relay.position() == 0
        async with tcp_forwarder(port, crm_servers.kafka_bootstrap):
            await until(lambda: caught_up(relay), "the relay publishes again")
            assert relay.last_success_at is not None
            assert relay.failures_in_row == 0
            assert relay.unready_reason() is None
            write(app, history(["+86 138 0000 0003"]))  # and it goes on
            await until(lambda: caught_up(relay), "the relay follows new events")
    published = await read_topic(crm_servers.kafka_bootstrap, topic)
    assert _versions(published) == _versions_in_store(app, below=relay.head() + 1)
    app.close()


async def test_a_store_failing_then_back_restarts_the_relay_which_catches_up(
    crm_servers: Servers, kafka_topics: TopicFactory, postgres_database: str
) -> None:
    """The store's reads fail for a while (as when PostgreSQL restarts), then answer."""
    store = EventStoreConfig(postgres_dsn=postgres_database)
    topic = await kafka_topics("store_outage")
    app = Customers(env=store.environment())
    write(app, history(["+86 139 0000 0001"]))
    relay = relay_for(app, store, crm_servers.kafka_bootstrap, topic, translate)
    select = app.recorder.select_notifications
    failing = True

    def select_or_fail(*args: Any, **kwargs: Any) -> Sequence[Notification]:
        if failing:
            raise ConnectionError("the event store does not answer")
        return select(*args, **kwargs)

    app.recorder.select_notifications = select_or_fail  # type: ignore[method-assign]
    async with relaying(relay):
        await until(lambda: relay.failures_in_row >= 2, "the relay fails and restarts")
        assert "the event store does not answer" in (relay.unready_reason() or "")
        failing = False
        await until(lambda: caught_up(relay), "the relay catches up")
        assert relay.unready_reason() is None
    published = await read_topic(crm_servers.kafka_bootstrap, topic)
    assert _versions(published) == _versions_in_store(app, below=relay.head() + 1)
    app.close()
