"""The parking lot (``crm_backbone.parking``) against the genuine MongoDB.

Records are in-memory Kafka records; "instances" are ParkingLot objects of their own on
one collection, as two processes of a service would have.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any, ClassVar

import pytest
from crm_backbone.metrics import PARKED_RECORDS
from crm_backbone.parking import ParkedRecord, ParkingLot, StillHeld
from crm_backbone.policy import NotYet, Policy, PolicyConsumer, PolicyHandler, Rejected
from crm_backbone.records import Record
from crm_backbone.testing import SOURCE, InMemoryRecord
from crm_events.common import CustomerName, CustomerType
from crm_events.customer import CustomerProfileUpdated, CustomerRegistered, CustomerStatus
from crm_events.envelope import Envelope
from crm_events.registry import EventPayload
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from local_infra.pytest_plugin import Servers
from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection

pytestmark = pytest.mark.integration

Collection = AsyncCollection[dict[str, Any]]


@pytest.fixture
async def collection(crm_servers: Servers, mongo_database: str) -> AsyncIterator[Collection]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(crm_servers.mongo_uri)
    yield client[mongo_database]["parked_records"]
    await client.close()


def record(offset: int, key: str = "C-1", partition: int = 0) -> InMemoryRecord:
    headers = [("ce_id", f"e-{offset}".encode()), ("ce_type", b"\xff\x00 raw bytes")]
    return InMemoryRecord("upstream", partition, offset, key.encode(), b"{}", headers)


class Applied:
    """An ``apply`` that remembers what it applied, by offset."""

    def __init__(self) -> None:
        self.offsets: list[int] = []

    async def __call__(self, parked: ParkedRecord) -> None:
        self.offsets.append(parked.offset)


async def test_released_in_arrival_order_with_their_bytes(collection: Collection) -> None:
    lot = ParkingLot(collection, "group-a")
    await lot.setup()
    for offset in (7, 3, 9):  # arrival order, not offset order
        await lot.park("C-1", record(offset), "customer not registered")
    await lot.park("C-2", record(4, "C-2"), "customer not registered")
    await lot.park("$where", record(5, "$where"), "$literal text stays text")

    assert await lot.held(["C-1", "C-2", "C-3", "$where"]) == {"C-1", "C-2", "$where"}
    (first, *_) = await lot.parked("C-1")
    original = record(7)
    assert (first.topic, first.partition, first.offset) == ("upstream", 0, 7)
    assert (first.key, first.value, first.headers) == (
        original.key,
        original.value,
        tuple(original.headers),
    )
    assert first.reason == "customer not registered"
    assert (await lot.parked("$where"))[0].reason == "$literal text stays text"

    applied = Applied()
    assert await lot.release("C-1", applied) == 3
    assert applied.offsets == [7, 3, 9]
    assert await lot.held(["C-1", "C-2"]) == {"C-2"}
    assert await lot.release("C-1", applied) == 0


async def test_parking_twice_keeps_one_record_and_its_place(collection: Collection) -> None:
    lot = ParkingLot(collection, "group-a")
    await lot.setup()
    await lot.park("C-1", record(1), "first reason")
    await lot.park("C-1", record(2), "first reason")
    await lot.park("C-1", record(1), "second reason")
    parked = await lot.parked("C-1")
    assert [(p.offset, p.reason) for p in parked] == [(1, "first reason"), (2, "first reason")]


async def test_owners_do_not_see_each_others_records(collection: Collection) -> None:
    views, policies = ParkingLot(collection, "views"), ParkingLot(collection, "policies")
    await views.setup()
    await views.park("C-1", record(1), "dead letter pending")
    await policies.park("C-1", record(1), "customer not registered")
    await policies.park("C-1", record(2), "customer not registered")

    assert await views.counts() == {"views": 1, "policies": 2}
    assert await policies.observe() == 2
    assert PARKED_RECORDS.labels("policies")._value.get() == 2
    assert await views.release("C-1", Applied()) == 1
    assert await policies.held(["C-1"]) == {"C-1"}
    assert await views.observe() == 0


async def test_a_failing_apply_keeps_the_record_and_those_after_it(collection: Collection) -> None:
    lot = ParkingLot(collection, "group-a")
    await lot.setup()
    for offset in range(4):
        await lot.park("C-1", record(offset), "waiting")
    applied: list[int] = []

    async def fails_at_two(parked: ParkedRecord) -> None:
        if parked.offset == 2:
            raise RuntimeError("store unavailable")
        applied.append(parked.offset)

    with pytest.raises(RuntimeError):
        await lot.release("C-1", fails_at_two)
    assert [p.offset for p in await lot.parked("C-1")] == [2, 3]

    async def not_yet(parked: ParkedRecord) -> None:
        raise StillHeld

    assert await lot.release("C-1", not_yet) == 0
    assert [p.offset for p in await lot.parked("C-1")] == [2, 3]
    assert await lot.release("C-1", Applied()) == 2
    assert applied == [0, 1]
    assert await lot.held(["C-1"]) == set()


async def test_one_releaser_at_a_time_and_the_last_drains_what_came_meanwhile(
    collection: Collection,
) -> None:
    a, b = ParkingLot(collection, "group-a"), ParkingLot(collection, "group-a")
    await a.setup()
    await a.park("C-1", record(1), "waiting")
    inside, go_on = asyncio.Event(), asyncio.Event()
    applied: list[tuple[str, int]] = []

    async def slow(parked: ParkedRecord) -> None:
        applied.append(("a", parked.offset))
        inside.set()
        await go_on.wait()

    async def fast(parked: ParkedRecord) -> None:
        applied.append(("b", parked.offset))

    releasing = asyncio.create_task(a.release("C-1", slow))
    await inside.wait()
    # While A holds the lease, B parks another record and tries to release: it waits.
    await b.park("C-1", record(2), "waiting")
    waiting = asyncio.create_task(b.release("C-1", fast))
    await asyncio.sleep(0.3)
    assert not waiting.done()
    go_on.set()
    released = await releasing + await waiting
    assert released == 2
    assert sorted(applied) == [("a", 1), ("a", 2)] or applied == [("a", 1), ("b", 2)]
    assert await a.held(["C-1"]) == set()


async def test_a_crashed_releasers_lease_expires(collection: Collection) -> None:
    crashed = ParkingLot(collection, "group-a", lease_seconds=0.5)
    survivor = ParkingLot(collection, "group-a", lease_seconds=0.5)
    await crashed.setup()
    await crashed.park("C-1", record(1), "waiting")
    assert await crashed._take_lease("C-1", "a token never given back")
    applied = Applied()
    assert await survivor.release("C-1", applied) == 1
    assert applied.offsets == [1]


# Two instances, interleaved by generated schedules -----------------------------------------


class Instance:
    """One service instance: parks until the customer is known, or registers it."""

    def __init__(self, lot: ParkingLot, known: set[str], applied: list[int]) -> None:
        self.lot, self.known, self.applied = lot, known, applied

    async def ready(self) -> bool:
        await asyncio.sleep(0)
        return "C-1" in self.known

    async def apply(self, parked: ParkedRecord) -> None:
        if "C-1" not in self.known:
            raise StillHeld
        await asyncio.sleep(0)
        self.applied.append(parked.offset)

    async def receive(self, offset: int) -> None:
        """The policy's rule: apply if possible and nothing is parked before; else park."""
        if await self.ready() and not await self.lot.held(["C-1"]):
            self.applied.append(offset)
            return
        await self.lot.park_until(
            "C-1", record(offset), "not registered", ready=self.ready, apply=self.apply
        )

    async def register(self) -> None:
        self.known.add("C-1")  # the fact first,
        await self.lot.release("C-1", self.apply)  # then the release


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    records=st.integers(min_value=1, max_value=6),
    registration_at=st.integers(min_value=0, max_value=6),
    instance_of=st.lists(st.booleans(), min_size=8, max_size=8),
    yields=st.lists(st.integers(min_value=0, max_value=4), min_size=8, max_size=8),
)
async def test_two_instances_leave_nothing_parked_and_apply_each_record_once(
    collection: Collection,
    records: int,
    registration_at: int,
    instance_of: list[bool],
    yields: list[int],
) -> None:
    """Records of one partition arrive at one instance or the other (a rebalance), in
    order; the registration is consumed by either, concurrently with them."""
    await collection.delete_many({})
    known: set[str] = set()
    applied: list[int] = []
    lots = [ParkingLot(collection, "group-a", poll_seconds=0.001) for _ in range(2)]
    await lots[0].setup()
    instances = [Instance(lot, known, applied) for lot in lots]

    async def partition() -> None:
        for offset in range(records):
            for _ in range(yields[offset]):
                await asyncio.sleep(0)
            await instances[instance_of[offset]].receive(offset)

    async def registration() -> None:
        for _ in range(registration_at):
            await asyncio.sleep(0)
        await instances[instance_of[-1]].register()

    await asyncio.gather(partition(), registration())
    assert await lots[0].held(["C-1"]) == set()
    assert applied == list(range(records))


# The policy consumer's rules, with a small policy ------------------------------------------


class Dossiers(Policy):
    """Profile changes wait for their customer's registration; a phone "+00 0000" is refused."""

    name: ClassVar[str] = "dossiers"
    topics: ClassVar[tuple[str, ...]] = ("crm.customer.events",)

    def __init__(self) -> None:
        self.known: set[str] = set()
        self.phones: list[str | None] = []

    def handlers(self) -> Mapping[str, PolicyHandler]:
        return {
            CustomerRegistered.event_type: self.registered,
            CustomerProfileUpdated.event_type: self.profile_updated,
        }

    def hold_of(self, envelope: Envelope[EventPayload]) -> str | None:
        return envelope.aggregateid if envelope.type != CustomerRegistered.event_type else None

    def releases(self, envelope: Envelope[EventPayload]) -> str | None:
        return envelope.aggregateid if envelope.type == CustomerRegistered.event_type else None

    async def ready(self, hold: str) -> bool:
        return hold in self.known

    async def registered(self, envelope: Envelope[EventPayload]) -> None:
        self.known.add(envelope.aggregateid)

    async def profile_updated(self, envelope: Envelope[EventPayload]) -> None:
        data = envelope.data
        assert isinstance(data, CustomerProfileUpdated)
        if envelope.aggregateid not in self.known:
            raise NotYet("customer not registered yet")
        if data.phone == "+00 0000":
            raise Rejected("this phone is refused")
        self.phones.append(data.phone)


class DeadLetterList:
    def __init__(self) -> None:
        self.letters: list[tuple[int, str]] = []

    async def __call__(self, record: Record, code: str, reason: str, consumer: str) -> None:
        self.letters.append((record.offset, code))


def customer_event(payload: EventPayload, version: int, offset: int) -> InMemoryRecord:
    envelope = Envelope.new(payload, "C-7", version, actor="rm-1", source=SOURCE)
    return InMemoryRecord.of(envelope, offset)


async def test_the_policy_consumer_parks_behind_releases_and_dead_letters(
    collection: Collection,
) -> None:
    policy, letters = Dossiers(), DeadLetterList()
    consumer = PolicyConsumer(policy, letters, "crm.test.dossiers", collection.database)
    await consumer.setup()
    registered = CustomerRegistered(
        customer_type=CustomerType.INDIVIDUAL,
        name=CustomerName(full_name="Li Na"),
        status=CustomerStatus.PROSPECT,
        branch_id="BR-001",
    )
    phone = [
        CustomerProfileUpdated(phone=p) for p in ("+86 1111", "+00 0000", "+86 3333", "+86 4444")
    ]

    # Two changes before the registration: parked in order, the second behind the first.
    assert (
        await consumer.process([customer_event(phone[0], 2, 0), customer_event(phone[1], 3, 1)])
        == 0
    )
    assert [(p.offset, p.reason) for p in await consumer.parking.parked("C-7")] == [
        (0, "customer not registered yet"),
        (1, "behind earlier events of the same hold"),
    ]
    assert PARKED_RECORDS.labels("crm.test.dossiers")._value.get() == 2

    # The registration releases them after its handler; the refused one is dead-lettered.
    assert await consumer.process([customer_event(registered, 1, 2)]) == 1
    assert policy.phones == ["+86 1111"]
    assert letters.letters == [(1, "rejected")]
    assert await consumer.parking.held(["C-7"]) == set()
    assert PARKED_RECORDS.labels("crm.test.dossiers")._value.get() == 0

    # A change of a key that still has parked records goes behind them.
    await consumer.parking.park("C-7", customer_event(phone[2], 4, 3), "held by an operator")
    assert await consumer.process([customer_event(phone[3], 5, 4)]) == 0
    assert policy.phones == ["+86 1111", "+86 3333", "+86 4444"]
    assert await consumer.parking.held(["C-7"]) == set()


async def test_each_owner_has_its_own_expiry_and_a_changed_one_replaces_it(
    collection: Collection,
) -> None:
    await ParkingLot(collection, "gateway", expire_after_seconds=3600).setup()
    await ParkingLot(collection, "views").setup()
    await ParkingLot(collection, "gateway", expire_after_seconds=7200).setup()
    expiries = {
        index["name"]: (index["expireAfterSeconds"], index["partialFilterExpression"])
        async for index in await collection.list_indexes()
        if "expireAfterSeconds" in index
    }
    assert expiries == {"expire gateway": (7200, {"owner": "gateway"})}
