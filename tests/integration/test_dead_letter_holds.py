"""Dead letters that hold back their aggregate, through the real subscriber, Kafka and
MongoDB: a projection's redriven after the fix applies before the later events it held
back, a purged one releases them; a policy's too; and an outage in a policy's handler is
redelivered, never dead-lettered as a handler error."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ClassVar

import pytest
from aiokafka import AIOKafkaProducer
from crm_backbone.kafka import KafkaDeadLetters
from crm_backbone.kafka_acls import ADMIN
from crm_backbone.metrics import HANDLER_ERRORS, PARKED_RECORDS
from crm_backbone.policy import Policy, PolicyConsumer, PolicyHandler
from crm_backbone.projection import ProjectionEngine
from crm_backbone.retries import HandlerRetries
from crm_backbone.testing import (
    POISON_PHONE,
    SOURCE,
    CustomerCards,
    FixedCards,
    InMemoryRecord,
)
from crm_events.customer import CustomerProfileUpdated
from crm_events.envelope import HEADERS, Envelope, KafkaRecord, to_kafka
from crm_events.registry import EventPayload
from crm_ops.deadletters import holding, purge, read_all, redrive
from local_infra.pytest_plugin import Servers, kafka_login
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import ServerSelectionTimeoutError

from tests.integration.kafka_support import consume_all, history, produce

pytestmark = pytest.mark.integration

TopicFactory = Callable[..., Awaitable[str]]
VERSION_HEADER = HEADERS["aggregateversion"]


async def test_a_redriven_event_applies_before_the_later_ones_it_held_back_and_purge_releases(
    crm_servers: Servers, kafka_topics: TopicFactory, database: AsyncDatabase[dict[str, Any]]
) -> None:
    bootstrap = crm_servers.kafka_bootstrap
    topic, dead = await kafka_topics("events", partitions=1), await kafka_topics("dlq", 1)
    poisoned = history("C-1", 4)  # v2's handler raises (a code bug), v3..v5 come after it
    poisoned[1] = to_kafka(
        Envelope.new(
            CustomerProfileUpdated(phone=POISON_PHONE), "C-1", 2, actor="rm-1", source=SOURCE
        )
    )
    undecodable = history("C-2", 3)  # v2's headers cannot be read: C-2 held until purged
    broken = KafkaRecord(
        undecodable[1].key,
        undecodable[1].value,
        [(n, b"\xed\xa0\x80" if n == VERSION_HEADER else v) for n, v in undecodable[1].headers],
    )
    await produce(bootstrap, topic, [*poisoned, undecodable[0], broken, *undecodable[2:]], 0)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **kafka_login(ADMIN), acks="all")
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
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **kafka_login(ADMIN), acks="all")
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
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **kafka_login(ADMIN), acks="all")
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
