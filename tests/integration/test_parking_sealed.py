"""The parking lot seals what it holds back (``crm_backbone.parking``), against the genuine
MongoDB: a bank record in clear, parked for a customer not registered yet, is stored
under the customer's key and released as it came; once the customer is erased (the key
destroyed) it is dropped, never applied, and so is any record of theirs parked later."""

from __future__ import annotations

from typing import Any, ClassVar

import bson
import pytest
from crm_backbone.keys import KeySealer
from crm_backbone.keys.memory import InMemoryKeys
from crm_backbone.metrics import ERASED_SUBJECT_RECORDS
from crm_backbone.parking import ParkedRecord, ParkingLot
from crm_backbone.policy import NotYet, Policy, PolicyConsumer, PolicyHandler
from crm_backbone.records import Record
from crm_backbone.testing import InMemoryRecord
from crm_events.common import CustomerName
from crm_events.core_banking import CustomerDataChanged
from crm_events.envelope import Envelope
from crm_events.registry import EventPayload
from crm_events.topics import COREBANKING_CUSTOMERS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymongo.asynchronous.database import AsyncDatabase

pytestmark = pytest.mark.integration

Database = AsyncDatabase[dict[str, Any]]
CUSTOMER = "C-PARK-1"
PHONE = "+86 137 2468 1357"
distinctive = st.text(alphabet=st.characters(categories=("Lu", "Ll", "Lo")), max_size=20).map(
    "Qiao Wanting {}".format
)


def bank_record(full_name: str, offset: int, customer: str = CUSTOMER) -> InMemoryRecord:
    """Core banking's data change in clear (the bank seals nothing), with a note header."""
    payload: EventPayload = CustomerDataChanged(name=CustomerName(full_name=full_name), phone=PHONE)
    envelope = Envelope.new(payload, customer, offset + 1, "core-banking", "/bank/core-banking")
    record = InMemoryRecord.of(envelope, offset)
    headers = [*record.headers, ("bank_operator_note", full_name.encode())]
    return InMemoryRecord(record.topic, 0, offset, record.key, record.value, headers)


def traces(full_name: str) -> list[bytes]:
    return [full_name.encode(), PHONE.encode(), PHONE.replace(" ", "").encode()]


async def stored_bytes(database: Database, collection: str) -> bytes:
    """Every document of ``collection`` as BSON, as MongoDB holds it."""
    return b"".join([bson.encode(doc) async for doc in database[collection].find()])


def dropped(event_type: str = CustomerDataChanged.event_type) -> float:
    return float(ERASED_SUBJECT_RECORDS.labels(event_type)._value.get())


class Released:
    def __init__(self) -> None:
        self.records: list[ParkedRecord] = []

    async def __call__(self, parked: ParkedRecord) -> None:
        self.records.append(parked)


@settings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(full_name=distinctive)
async def test_a_parked_bank_record_is_sealed_and_released_as_it_came(
    database: Database, full_name: str
) -> None:
    lot = ParkingLot(database["parked_records"], "policies", sealer=KeySealer(InMemoryKeys()))
    await lot.setup()
    original = bank_record(full_name, 0)
    await lot.park(CUSTOMER, original, "customer not registered yet")

    stored = await stored_bytes(database, "parked_records")
    assert not [trace for trace in traces(full_name) if trace in stored]
    released = Released()
    assert await lot.release(CUSTOMER, released) == 1
    (record,) = released.records
    assert (record.key, record.value, record.headers) == (
        original.key,
        original.value,
        tuple(original.headers),
    )


async def test_an_erased_customers_parked_records_are_dropped_not_applied(
    database: Database,
) -> None:
    keys = InMemoryKeys()
    sealer = KeySealer(keys)
    lot = ParkingLot(database["orders__parked"], "orders", sealer=sealer)
    await lot.setup()
    await lot.park(CUSTOMER, bank_record("Qiao Wanting", 0), "behind a dead letter")
    await lot.park("C-OTHER", bank_record("Someone Else", 1, "C-OTHER"), "behind a dead letter")
    before = dropped()

    keys.destroy(CUSTOMER)  # the erasure
    sealer.forget(CUSTOMER)
    assert await lot.parked(CUSTOMER) == []
    await lot.park(CUSTOMER, bank_record("Qiao Wanting", 2), "behind a dead letter")
    released = Released()
    assert await lot.release(CUSTOMER, released) == 0

    assert released.records == []
    assert dropped() - before == 2  # the one parked before the erasure, the one after
    assert await lot.held([CUSTOMER, "C-OTHER"]) == {"C-OTHER"}
    assert [r.offset for r in await lot.parked("C-OTHER")] == [1]


class Registrations(Policy):
    """A policy that reads no personal data and parks bank records until registration."""

    name: ClassVar[str] = "registrations"
    topics: ClassVar[tuple[str, ...]] = (COREBANKING_CUSTOMERS.name,)
    reads_personal_data: ClassVar[bool] = False

    def handlers(self) -> dict[str, PolicyHandler]:
        return {CustomerDataChanged.event_type: self.changed}

    def hold_of(self, envelope: Envelope[EventPayload]) -> str | None:
        return envelope.aggregateid

    async def changed(self, envelope: Envelope[EventPayload]) -> None:
        raise NotYet("customer not registered yet")


async def no_letters(record: Record, code: str, reason: str, consumer: str) -> None:
    raise AssertionError(f"dead-lettered: {code}")


async def test_a_policy_reading_no_personal_data_parks_sealed(database: Database) -> None:
    consumer = PolicyConsumer(
        Registrations(),
        no_letters,
        "crm.test.registrations",
        database,
        parking_sealer=KeySealer(InMemoryKeys()),
    )
    await consumer.setup()
    assert await consumer.process([bank_record("Qiao Wanting", 0)]) == 0

    assert await consumer.parking.held([CUSTOMER]) == {CUSTOMER}
    stored = await stored_bytes(database, "parked_records")
    assert not [trace for trace in traces("Qiao Wanting") if trace in stored]
