"""Records an outside producer may write, through the real subscriber, Kafka and MongoDB.

Every record is applied or dead-lettered with its reason, and its neighbours in the batch
are never lost, whatever bytes its key, headers and value hold.
"""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import pytest
from aiokafka import AIOKafkaProducer
from crm_backbone.kafka import BatchProcessor, ConsumerHealth, KafkaDeadLetters, subscribe
from crm_backbone.metrics import HANDLER_ERRORS, PARKED_RECORDS
from crm_backbone.policy import Policy, PolicyConsumer, PolicyHandler
from crm_backbone.projection import HandlerRetries, ProjectionEngine
from crm_backbone.testing import (
    POISON_PHONE,
    SOURCE,
    CustomerCards,
    FixedCards,
    InMemoryRecord,
    customer_history,
    interleave,
)
from crm_events.customer import CustomerProfileUpdated
from crm_events.envelope import HEADERS, Envelope, KafkaRecord, to_kafka
from crm_events.registry import EventPayload
from crm_ops.deadletters import holding, purge, read_all, redrive
from crm_ops.kafka_state import group_lag
from faststream.kafka import KafkaBroker
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from local_infra.pytest_plugin import Servers
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import ServerSelectionTimeoutError

pytestmark = pytest.mark.integration

TopicFactory = Callable[..., Awaitable[str]]


def history(customer: str, changes: int) -> list[KafkaRecord]:
    """The records of one customer: registered, then ``changes`` phone changes."""
    return [to_kafka(envelope) for envelope in customer_history(customer, changes)]


async def produce(bootstrap: str, topic: str, records: list[KafkaRecord], partition: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for record in records:
            await producer.send_and_wait(
                topic, value=record.value, key=record.key, headers=record.headers,
                partition=partition,
            )  # fmt: skip
    finally:
        await producer.stop()


async def committed_past_all(bootstrap: str, group: str, topic: str) -> bool:
    """Whether ``group`` committed offsets up to the end of every partition of ``topic``."""
    rows = [row for row in await group_lag(bootstrap, group) if row.topic == topic]
    return bool(rows) and all(row.committed == row.end for row in rows)


async def consume_all(
    bootstrap: str,
    topic: str,
    processor: BatchProcessor,
    *,
    max_records: int = 1000,
    within: float = 60,
) -> ConsumerHealth:
    """Run ``processor`` through the real subscriber until its group has committed past
    every record now in ``topic``; its consumer's health."""
    broker = KafkaBroker(bootstrap, logger=None)
    health = subscribe(broker, processor, [topic], max_records=max_records)
    async with broker:
        await broker.start()
        async with asyncio.timeout(within):
            while not await committed_past_all(bootstrap, processor.consumer_group, topic):  # noqa: ASYNC110 - offsets live in Kafka
                await asyncio.sleep(0.2)
    return health


async def test_a_header_that_is_not_utf8_is_dead_lettered_alone(
    crm_servers: Servers, kafka_topics: TopicFactory, database: AsyncDatabase[dict[str, Any]]
) -> None:
    bootstrap = crm_servers.kafka_bootstrap
    topic, dead = await kafka_topics("events", partitions=1), await kafka_topics("dlq", 1)
    first, second = history("C-1", 2), history("C-2", 2)
    broken = KafkaRecord(
        second[0].key, second[0].value,
        [(name, b"\xed\xa0\x80" if name == "ce_id" else raw) for name, raw in first[2].headers],
    )  # fmt: skip
    # All in one partition, fetched as one batch: the broken record sits among valid ones.
    await produce(bootstrap, topic, [first[0], first[1], broken, *second, first[2]], 0)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
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

CE_HEADERS = sorted(HEADERS.values())
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
    st.builds(Fault, st.just("not_utf8"), st.just("malformed"), st.sampled_from(CE_HEADERS),
              st.binary(max_size=8)),
    st.builds(Fault, st.just("missing"), st.just("malformed"), st.sampled_from(CE_HEADERS)),
    st.builds(Fault, st.just("twice"), st.just("malformed"), st.sampled_from(CE_HEADERS)),
    st.builds(Fault, st.just("no_key"), st.just("invalid_key")),
    st.builds(Fault, st.just("wrong_key"), st.just("invalid_key"), value=st.binary(max_size=6)),
    st.builds(Fault, st.just("unknown_type"), st.just("unknown_type")),
    st.builds(Fault, st.just("unknown_version"), st.just("unknown_version")),
    st.builds(Fault, st.just("body"), st.just("malformed"), value=st.just(b"")),
    st.builds(Fault, st.just("body"), st.just("invalid_body"),
              value=st.sampled_from([b"[]", b"null", b"42", b'"text"', LARGE_BODY])),
)  # fmt: skip


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
                    record.fault.code, record.partition, record.offset
                )  # fmt: skip
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
    max_examples=25, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                           HealthCheck.data_too_large],
)  # fmt: skip
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
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", max_request_size=2**21)
    await producer.start()
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(crm_servers.mongo_uri)
    database = mongo[f"{mongo_database[:40]}_{uuid.uuid4().hex[:8]}"]
    group = f"g-{uuid.uuid4()}.{CustomerCards.name}"  # as the services name groups
    engine = ProjectionEngine(CustomerCards(), database, KafkaDeadLetters(producer, dead), group)
    await engine.setup()
    try:
        for record in sent:
            metadata = await producer.send_and_wait(
                topic, record.value, key=record.key, headers=record.headers,
                partition=record.partition,
            )  # fmt: skip
            record.offset = metadata.offset
        expected = Expected.of(sent)
        await consume_all(bootstrap, topic, engine, max_records=7, within=120)

        letters = [letter async for letter in read_all(bootstrap, dead)]
        assert sorted(
            (letter.header("dlq_code"), int(letter.header("dlq_partition")),
             int(letter.header("dlq_offset")))
            for letter in letters
        ) == sorted(expected.dead.values())  # fmt: skip
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


async def test_a_redriven_event_applies_before_the_later_ones_it_held_back_and_purge_releases(
    crm_servers: Servers, kafka_topics: TopicFactory, database: AsyncDatabase[dict[str, Any]]
) -> None:
    bootstrap = crm_servers.kafka_bootstrap
    topic, dead = await kafka_topics("events", partitions=1), await kafka_topics("dlq", 1)
    poisoned = history("C-1", 4)  # v2's handler raises (a code bug), v3..v5 come after it
    poisoned[1] = to_kafka(
        Envelope.new(CustomerProfileUpdated(phone=POISON_PHONE), "C-1", 2, actor="rm-1",
                     source=SOURCE)
    )  # fmt: skip
    undecodable = history("C-2", 3)  # v2's headers cannot be read: C-2 held until purged
    broken = KafkaRecord(
        undecodable[1].key, undecodable[1].value,
        [(n, b"\xed\xa0\x80" if n == VERSION_HEADER else v) for n, v in undecodable[1].headers],
    )  # fmt: skip
    await produce(bootstrap, topic, [*poisoned, undecodable[0], broken, *undecodable[2:]], 0)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    mongo = database.client
    group = f"g-{uuid.uuid4()}.{CustomerCards.name}"  # as the services name groups
    retries = HandlerRetries(attempts=3, first_backoff=0.01)
    engine = ProjectionEngine(
        CustomerCards(), database, KafkaDeadLetters(producer, dead), group, retries
    )
    await engine.setup()
    errors_before = HANDLER_ERRORS.labels(group)._value.get()
    try:
        health = await consume_all(bootstrap, topic, engine)
        # The handler was tried 3 times, then its event dead-lettered; readiness says so.
        assert HANDLER_ERRORS.labels(group)._value.get() - errors_before == 3
        assert health.stalled() == (
            "1 event(s) dead-lettered after handler errors, last: "
            "ValueError('this phone number cannot be projected')"
        )
        letters = {letter.header("dlq_code"): letter async for letter in read_all(bootstrap, dead)}
        assert sorted(letters) == ["handler_error", "malformed"]
        cards = {card["_id"]: card async for card in database.cards.find()}
        assert (cards["C-1"]["changes"], cards["C-2"]["changes"]) == (1, 1)
        assert len(await engine.parking.parked(f"{topic} {b'C-1'.hex()}")) == 3
        assert len(await engine.parking.parked(f"{topic} {b'C-2'.hex()}")) == 2
        # What crm-ops dlq list and crm-ops projections show, and the metric.
        held = await holding(mongo)
        assert held.held_by(letters["handler_error"]) == 3
        assert held.held_by(letters["malformed"]) == 2
        assert held.parked_for(group) == 5
        assert PARKED_RECORDS.labels(CustomerCards.name)._value.get() == 5

        # After the fix, v2 of C-1 is redriven: it applies, then v3..v5 in order.
        fixed = ProjectionEngine(FixedCards(), database, KafkaDeadLetters(producer, dead), group)
        await redrive(bootstrap, [letters["handler_error"]])
        # C-2's v2 cannot be read, whoever reads it: purged, what it held back applies.
        await purge(mongo, [letters["malformed"]])
        await consume_all(bootstrap, topic, fixed)
        await fixed.drain_released()  # the service's periodic tick
    finally:
        await producer.stop()

    # C-1 ends as if v2 had never been poisoned: the same view as applying its history.
    reference = database.client[f"{database.name}_ref"]
    clean = ProjectionEngine(FixedCards(), reference, KafkaDeadLetters(producer, dead), "ref")
    await clean.setup()
    await clean.process(
        [InMemoryRecord(topic, 0, n, r.key, r.value, r.headers) for n, r in enumerate(poisoned)]
    )
    card = await database.cards.find_one({"_id": "C-1"})
    assert card == await reference.cards.find_one({"_id": "C-1"})
    await database.client.drop_database(reference.name)
    c2 = await database.cards.find_one({"_id": "C-2"})
    assert c2 is not None
    assert (c2["changes"], c2["phone"]) == (3, "+86 100 0002")
    assert await fixed.parking.collection.count_documents({}) == 0
    assert await fixed.holds.collection.count_documents({}) == 0


class PhoneBook(Policy):
    """A policy noting each customer's phone changes, in the order it applies them."""

    name: ClassVar[str] = "phone_book"
    topics: ClassVar[tuple[str, ...]] = ()

    def __init__(self) -> None:
        self.applied: list[tuple[str, int]] = []

    def handlers(self) -> Mapping[str, PolicyHandler]:
        return {"crm.customer.profile_updated": self.updated}

    async def updated(self, envelope: Envelope[EventPayload]) -> None:
        self.applied.append((envelope.aggregateid, envelope.aggregateversion))


async def test_a_policy_dead_letter_holds_back_its_aggregate_until_purged(
    crm_servers: Servers, kafka_topics: TopicFactory, database: AsyncDatabase[dict[str, Any]]
) -> None:
    bootstrap = crm_servers.kafka_bootstrap
    topic, dead = await kafka_topics("events", partitions=1), await kafka_topics("dlq", 1)
    first, second = history("C-1", 3), history("C-2", 1)
    broken = KafkaRecord(first[2].key, b"[]", first[2].headers)  # v3 of C-1: invalid_body
    await produce(bootstrap, topic, [first[1], broken, second[1], first[3]], 0)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    policy = PhoneBook()
    group = f"g-{uuid.uuid4()}.{PhoneBook.name}"
    consumer = PolicyConsumer(policy, KafkaDeadLetters(producer, dead), group, database)
    await consumer.setup()
    try:
        await consume_all(bootstrap, topic, consumer)
    finally:
        await producer.stop()
    # C-2 goes on; C-1's v4 waits behind its dead v3.
    assert policy.applied == [("C-1", 2), ("C-2", 2)]
    letters = [letter async for letter in read_all(bootstrap, dead)]
    assert [letter.header("dlq_code") for letter in letters] == ["invalid_body"]
    assert (await holding(database.client)).held_by(letters[0]) == 1

    await purge(database.client, letters)
    assert await consumer.drain_released() == 1  # the service's periodic tick
    assert policy.applied == [("C-1", 2), ("C-2", 2), ("C-1", 4)]
    assert await consumer.parking.collection.count_documents({"owner": group}) == 0
    assert await consumer.holds.collection.count_documents({"_id.owner": group}) == 0


class FlakyPhoneBook(PhoneBook):
    """Its store is down for the first two calls (an outage, not a bug), then it answers."""

    name: ClassVar[str] = "flaky_phone_book"

    def __init__(self) -> None:
        super().__init__()
        self.outages = 2

    async def updated(self, envelope: Envelope[EventPayload]) -> None:
        if self.outages:
            self.outages -= 1
            raise ServerSelectionTimeoutError("no primary")
        await super().updated(envelope)


async def test_an_outage_in_a_policy_handler_redelivers_and_is_never_a_handler_error(
    crm_servers: Servers, kafka_topics: TopicFactory, database: AsyncDatabase[dict[str, Any]]
) -> None:
    bootstrap = crm_servers.kafka_bootstrap
    topic, dead = await kafka_topics("events", partitions=1), await kafka_topics("dlq", 1)
    await produce(bootstrap, topic, history("C-1", 2)[1:], 0)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    policy = FlakyPhoneBook()
    group = f"g-{uuid.uuid4()}.{policy.name}"
    retries = HandlerRetries(attempts=2, first_backoff=0.01)
    consumer = PolicyConsumer(policy, KafkaDeadLetters(producer, dead), group, database, retries)
    await consumer.setup()
    try:
        health = await consume_all(bootstrap, topic, consumer)
    finally:
        await producer.stop()
    assert policy.outages == 0  # it did fail twice
    assert policy.applied == [("C-1", 2), ("C-1", 3)]
    assert [letter async for letter in read_all(bootstrap, dead)] == []
    assert HANDLER_ERRORS.labels(group)._value.get() == 0
    assert health.stalled() is None
