"""The simulated bank against the genuine Kafka: what it publishes reads back intact, it
keeps to its rate, and its CLI (the organisation first, then core banking's feed) stops
cleanly on Ctrl-C after flushing."""

from __future__ import annotations

import asyncio
import os
import shlex
import signal
import sys
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord
from crm_backbone.kafka_acls import OPS
from crm_backbone.topic_names import TopicNames
from crm_events import from_kafka
from crm_events.topics import Service, produced_by
from crm_simulator.cli import SIMULATED_SYSTEMS, SIMULATED_TOPICS
from crm_simulator.feed import FeedEvent, bank_feed, feed
from crm_simulator.population import population
from crm_simulator.publisher import UpstreamProducers, publish
from local_infra.pytest_plugin import Servers, kafka_login

pytestmark = pytest.mark.integration

Row = tuple[str, bytes | None, bytes, tuple[tuple[str, bytes], ...]]
START = datetime(2026, 1, 1, tzinfo=UTC)


CORE_TOPICS = [topic.name for topic in produced_by(Service.CORE_BANKING)]


@pytest.fixture
async def sandbox(crm_servers: Servers, topic_prefix: str) -> TopicNames:
    """This test's own HR and core-banking topics, as the contract makes them, under its
    prefix."""
    names = TopicNames(topic_prefix)
    await UpstreamProducers(crm_servers.kafka_bootstrap, SIMULATED_SYSTEMS, names).ensure_topics()
    return names


def _order(row: Row) -> tuple[str, bool, bytes, bytes, tuple[tuple[str, bytes], ...]]:
    topic, key, value, headers = row
    return topic, key is None, key or b"", value, headers  # a poison record may have no key


def expected_rows(events: Iterable[FeedEvent]) -> list[Row]:
    rows = [(e.topic, e.record.key, e.record.value, tuple(e.record.headers)) for e in events]
    return sorted(rows, key=_order)


def read_rows(records: Iterable[ConsumerRecord[bytes, bytes]]) -> list[Row]:
    return sorted(((r.topic, r.key, r.value, tuple(r.headers)) for r in records), key=_order)


async def read_all(
    bootstrap: str, topics: Iterable[str], expected: int
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record of ``topics``: at least ``expected``, and any that follow within 0.5 s."""
    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        **kafka_login(OPS),
    )
    await consumer.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    try:
        async with asyncio.timeout(60):
            while len(records) < expected:
                batch = await consumer.getmany(timeout_ms=1000)
                records += [r for rs in batch.values() for r in rs]
        extra = await consumer.getmany(timeout_ms=500)
        records += [r for rs in extra.values() for r in rs]
    finally:
        await consumer.stop()
    return records


async def test_published_feed_reads_back_intact_and_in_order(
    crm_servers: Servers, sandbox: TopicNames
) -> None:
    customers = population(seed=11, size=100)
    stream = feed(customers, seed=11, start=START, poison_rate=0.02, route=sandbox.of_event)
    events = list(islice(stream, 3000))
    producer = UpstreamProducers(crm_servers.kafka_bootstrap, SIMULATED_SYSTEMS, sandbox)
    await producer.start()
    try:
        progress = await publish(producer, events)
    finally:
        await producer.stop()
    poison = sum(event.poison is not None for event in events)
    assert (progress.sent, progress.delivered, progress.poison) == (len(events),) * 2 + (poison,)
    assert poison > 20

    records = await read_all(crm_servers.kafka_bootstrap, sandbox.of(CORE_TOPICS), len(events))
    assert read_rows(records) == expected_rows(events)

    def ids_by_key(
        rows: Iterable[tuple[bytes | None, Iterable[tuple[str, bytes]]]],
    ) -> dict[bytes | None, list[bytes]]:
        ids: dict[bytes | None, list[bytes]] = defaultdict(list)
        for key, headers in rows:
            if key is not None:  # keyless records are spread over partitions: no order
                ids[key].append(dict(headers)["ce_id"])
        return ids

    assert ids_by_key((r.key, r.headers) for r in records) == ids_by_key(
        (e.record.key, e.record.headers) for e in events
    )
    sent = {dict(event.record.headers)["ce_id"]: event for event in events}
    for record in records:
        event = sent[dict(record.headers)["ce_id"]]
        if event.poison is None:
            assert from_kafka(record.key, record.value, record.headers) == event.envelope
        else:
            with pytest.raises(event.poison.error):
                from_kafka(record.key, record.value, record.headers)


async def test_publish_keeps_to_its_rate_and_stops_when_told(
    crm_servers: Servers, sandbox: TopicNames
) -> None:
    stream = feed(population(seed=3, size=20), seed=3, start=START, route=sandbox.of_event)
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(1.5, stop.set)
    producer = UpstreamProducers(crm_servers.kafka_bootstrap, SIMULATED_SYSTEMS, sandbox)
    await producer.start()
    try:
        progress = await publish(producer, stream, rate=200, stop=stop)
    finally:
        await producer.stop()
    assert 200 <= progress.sent <= 1 + 200 * progress.elapsed
    assert progress.delivered == progress.sent

    records = await read_all(crm_servers.kafka_bootstrap, sandbox.of(CORE_TOPICS), progress.sent)
    again = feed(population(seed=3, size=20), seed=3, start=START, route=sandbox.of_event)
    assert read_rows(records) == expected_rows(islice(again, progress.sent))


async def test_cli_publishes_until_interrupted_then_flushes_and_exits_0(
    crm_servers: Servers, sandbox: TopicNames
) -> None:
    script = Path(sys.executable).with_name("crm-simulate")
    process = await asyncio.create_subprocess_exec(
        *[str(script), "feed", "--seed=5", "--customers=50", "--rate=300", "--poison-rate=0.05"],
        *[f"--topic-prefix={sandbox.prefix}", "--create-topics"],
        env=os.environ | {"CRM_KAFKA_BOOTSTRAP": crm_servers.kafka_bootstrap},
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    output: list[bytes] = []
    async with asyncio.timeout(60):
        while b"event=publishing" not in (line := await process.stderr.readline()):
            assert line, b"".join(output).decode()  # it ended before publishing
            output.append(line)
        await asyncio.sleep(1.5)
        process.send_signal(signal.SIGINT)
        output += (await process.stderr.read()).splitlines()
        assert await process.wait() == 0, b"\n".join(output).decode()

    assert b"event=topics created=none" in b"\n".join(output)
    summary = dict(field.split("=", 1) for field in shlex.split(output[-1].decode()))
    assert summary["event"] == "stopped"
    sent = int(summary["sent"])
    assert sent == int(summary["delivered"]) > 100

    records = await read_all(crm_servers.kafka_bootstrap, sandbox.of(SIMULATED_TOPICS), sent)
    again = bank_feed(
        population(seed=5, size=50), seed=5, start=START, poison_rate=0.05, route=sandbox.of_event
    )
    assert read_rows(records) == expected_rows(islice(again, sent))
