"""Records an outside producer may write, through the real subscriber, Kafka and MongoDB.

Every record is applied or dead-lettered with its reason, and its neighbours in the batch
are never lost, whatever bytes its key, headers and value hold.
"""

from __future__ import annotations

import json
import random
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from crm_backbone.kafka import KafkaDeadLetters
from crm_backbone.kafka_acls import ADMIN
from crm_backbone.projection import ProjectionEngine
from crm_backbone.testing import (
    CustomerCards,
    interleave,
)
from crm_events.envelope import HEADERS, REQUIRED_HEADERS, KafkaRecord
from crm_ops.deadletters import purge, read_all
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from local_infra.pytest_plugin import Servers, kafka_login
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from tests.integration.kafka_support import consume_all, history, produce

pytestmark = pytest.mark.integration

TopicFactory = Callable[..., Awaitable[str]]


async def test_a_header_that_is_not_utf8_is_dead_lettered_alone(
    crm_servers: Servers, kafka_topics: TopicFactory, database: AsyncDatabase[dict[str, Any]]
) -> None:
    bootstrap = crm_servers.kafka_bootstrap
    topic, dead = await kafka_topics("events", partitions=1), await kafka_topics("dlq", 1)
    first, second = history("C-1", 2), history("C-2", 2)
    broken = KafkaRecord(
        second[0].key,
        second[0].value,
        [(name, b"\xed\xa0\x80" if name == "ce_id" else raw) for name, raw in first[2].headers],
    )
    # All in one partition, fetched as one batch: the broken record sits among valid ones.
    await produce(bootstrap, topic, [first[0], first[1], broken, *second, first[2]], 0)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **kafka_login(ADMIN), acks="all")
    await producer.start()
    group = f"g-{uuid.uuid4()}.{CustomerCards.name}"  # as the services name groups
    engine = ProjectionEngine(CustomerCards(), database, KafkaDeadLetters(producer, dead), group)
    try:
        await consume_all(bootstrap, topic, engine)
    finally:
        await producer.stop()
    cards = {card["_id"]: card async for card in database.cards.find()}
    assert {key: card["changes"] for key, card in cards.items()} == {"C-1": 3, "C-2": 3}
    letters = [letter async for letter in read_all(bootstrap, dead)]
    assert [(letter.header("dlq_code"), letter.header("dlq_offset")) for letter in letters] == [
        ("malformed", "2")
    ]
    assert letters[0].header("dlq_reason") == "header ce_id is not UTF-8 text"


# --- Generated records: every one applied or dead-lettered, neighbours never lost ----------

CE_HEADERS = sorted(REQUIRED_HEADERS.values())
"""The headers a fault breaks: those every record carries (an optional one, ``ce_client``,
is absent from these records, so removing or spoiling it would change nothing)."""
VERSION_HEADER = HEADERS["aggregateversion"]


@dataclass(frozen=True)
class Fault:
    """How one record is broken, and what the contract says of it (not the engine's code)."""

    kind: str
    code: str
    header: str = ""
    value: bytes = b""
    instead: bool = False  # replaces its valid record (else a broken copy sent before it)

    @property
    def keeps_key(self) -> bool:
        return self.kind not in ("no_key", "wrong_key")

    @property
    def version_readable(self) -> bool:
        return not (self.header == VERSION_HEADER and self.kind in ("not_utf8", "missing"))

    def apply(self, record: KafkaRecord) -> tuple[bytes | None, bytes, list[tuple[str, bytes]]]:
        key: bytes | None = record.key
        value, headers = record.value, list(record.headers)
        if self.kind == "not_utf8":
            headers = [(n, b"\xff" + self.value if n == self.header else v) for n, v in headers]
        elif self.kind == "missing":
            headers = [(n, v) for n, v in headers if n != self.header]
        elif self.kind == "twice":
            headers += [(n, v) for n, v in headers if n == self.header]
        elif self.kind == "no_key":
            key = None
        elif self.kind == "wrong_key":
            key = b"W-" + self.value
        elif self.kind == "unknown_type":
            headers = [(n, b"crm.customer.teleported" if n == "ce_type" else v) for n, v in headers]
        elif self.kind == "unknown_version":
            headers = [(n, b"99" if n == "ce_schemaversion" else v) for n, v in headers]
        else:  # a body: empty, not an object, or large
            value = self.value
        return key, value, headers


LARGE_BODY = b'{"phone": "' + b"9" * 500_000 + b'"}'
faults = st.one_of(
    st.builds(
        Fault,
        st.just("not_utf8"),
        st.just("malformed"),
        st.sampled_from(CE_HEADERS),
        st.binary(max_size=8),
    ),
    st.builds(Fault, st.just("missing"), st.just("malformed"), st.sampled_from(CE_HEADERS)),
    st.builds(Fault, st.just("twice"), st.just("malformed"), st.sampled_from(CE_HEADERS)),
    st.builds(Fault, st.just("no_key"), st.just("invalid_key")),
    st.builds(Fault, st.just("wrong_key"), st.just("invalid_key"), value=st.binary(max_size=6)),
    st.builds(Fault, st.just("unknown_type"), st.just("unknown_type")),
    st.builds(Fault, st.just("unknown_version"), st.just("unknown_version")),
    st.builds(Fault, st.just("body"), st.just("malformed"), value=st.just(b"")),
    st.builds(
        Fault,
        st.just("body"),
        st.just("invalid_body"),
        value=st.sampled_from([b"[]", b"null", b"42", b'"text"', LARGE_BODY]),
    ),
)


@dataclass
class Sent:
    aggregate: str
    version: int
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]
    partition: int
    fault: Fault | None = None
    offset: int = -1


@st.composite
def scenarios(draw: st.DrawFn) -> list[Sent]:
    """Histories of up to 4 customers, some records broken, interleaved on 2 partitions."""
    streams = []
    for n in range(draw(st.integers(1, 4))):
        customer = f"C-{n}"
        stream: list[Sent] = []
        for version, record in enumerate(history(customer, draw(st.integers(0, 4))), start=1):
            sent = Sent(customer, version, record.key, record.value, record.headers, n % 2)
            fault = draw(st.none() | faults)
            if fault is not None:
                fault = replace(fault, instead=fault.keeps_key and draw(st.booleans()))
                key, value, headers = fault.apply(record)
                stream.append(replace(sent, key=key, value=value, headers=headers, fault=fault))
            if fault is None or not fault.instead:
                stream.append(sent)
        streams.append(stream)
    return interleave(streams, random.Random(draw(st.integers(0, 2**32))))


@dataclass
class Expected:
    """What the contract says becomes of each record, computed from the plan alone."""

    applied: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    parked: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    dead: dict[int, tuple[str, int, int]] = field(default_factory=dict)  # by dead-letter order

    @classmethod
    def of(cls, sent: list[Sent]) -> Expected:
        expected = cls()
        missing: dict[str, list[int | None]] = defaultdict(list)
        for record in sent:
            aggregate, version = record.aggregate, record.version
            if record.fault is not None:
                expected.dead[len(expected.dead)] = (
                    record.fault.code,
                    record.partition,
                    record.offset,
                )
                if record.fault.keeps_key:
                    missing[aggregate].append(version if record.fault.version_readable else None)
                continue
            letters = missing[aggregate] = [v for v in missing[aggregate] if v != version]
            held = any(v is None or version > v for v in letters)
            if held or (expected.parked[aggregate] and version not in expected.parked[aggregate]):
                expected.parked[aggregate].append(version)
            else:
                expected.applied[aggregate].append(version)
        return expected


@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(sent=scenarios())
async def test_generated_records_are_applied_or_dead_lettered_and_nothing_else_is_lost(
    crm_servers: Servers,
    kafka_topics: TopicFactory,
    mongo_database: str,
    sent: list[Sent],
) -> None:
    bootstrap = crm_servers.kafka_bootstrap
    example = uuid.uuid4().hex[:6]  # topics of each example's own
    topic = await kafka_topics(f"events{example}", partitions=2)
    dead = await kafka_topics(f"dlq{example}", partitions=1)
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, **kafka_login(ADMIN), acks="all", max_request_size=2**21
    )
    await producer.start()
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(crm_servers.mongo_uri)
    database = mongo[f"{mongo_database[:40]}_{uuid.uuid4().hex[:8]}"]
    group = f"g-{uuid.uuid4()}.{CustomerCards.name}"  # as the services name groups
    engine = ProjectionEngine(CustomerCards(), database, KafkaDeadLetters(producer, dead), group)
    await engine.setup()
    try:
        for record in sent:
            metadata = await producer.send_and_wait(
                topic,
                record.value,
                key=record.key,
                headers=record.headers,
                partition=record.partition,
            )
            record.offset = metadata.offset
        expected = Expected.of(sent)
        await consume_all(bootstrap, topic, engine, max_records=7, within=120)

        letters = [letter async for letter in read_all(bootstrap, dead)]
        assert sorted(
            (
                letter.header("dlq_code"),
                int(letter.header("dlq_partition")),
                int(letter.header("dlq_offset")),
            )
            for letter in letters
        ) == sorted(expected.dead.values())
        assert {letter.header("dlq_consumer") for letter in letters} <= {group}
        await assert_view(database, sent, expected.applied)
        for aggregate in {record.aggregate for record in sent}:
            parked = await engine.parking.parked(f"{topic} {aggregate.encode().hex()}")
            versions = [int(dict(p.headers)[VERSION_HEADER]) for p in parked]
            assert versions == expected.parked.get(aggregate, [])

        # Purge every dead letter: what they held back applies, nothing is left waiting.
        await purge(mongo, letters)
        await engine.drain_released()
        everything = {
            aggregate: sorted(expected.applied[aggregate] + expected.parked[aggregate])
            for aggregate in {record.aggregate for record in sent}
        }
        await assert_view(database, sent, everything)
        assert await engine.parking.collection.count_documents({}) == 0
        assert await engine.holds.collection.count_documents({}) == 0
    finally:
        await producer.stop()
        await mongo.drop_database(database.name)
        await mongo.close()


async def assert_view(
    database: AsyncDatabase[dict[str, Any]], sent: list[Sent], applied: Mapping[str, list[int]]
) -> None:
    """Each card counts its applied events once, and shows the last applied phone."""
    phones = {
        (record.aggregate, record.version): json.loads(record.value).get("phone")
        for record in sent
        if record.fault is None
    }
    cards = {card["_id"]: card async for card in database.cards.find()}
    for aggregate, versions in applied.items():
        if not versions:
            assert aggregate not in cards
            continue
        card = cards[aggregate]
        assert card["changes"] == len(versions), aggregate
        assert card.get("phone") == phones[(aggregate, max(versions))]
