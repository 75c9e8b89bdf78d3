"""A hold closed by one instance while another parked under it loses nothing, on MongoDB.

Two instances of a view's consumer share its holds and parked records. One may drain a
settled hold and close it just as the other, which read the hold a moment earlier, parks
a record under it. The record must still be applied, and before the aggregate's later
events, though no hold names it any more.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
from crm_backbone.holds import hold_of
from crm_backbone.projection import ProjectionEngine, Record
from crm_backbone.testing import SOURCE, CustomerCards, InMemoryRecord
from crm_events.common import CustomerName, CustomerType
from crm_events.customer import CustomerProfileUpdated, CustomerRegistered, CustomerStatus
from crm_events.envelope import Envelope
from crm_events.registry import EventPayload
from local_infra.pytest_plugin import Servers
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

pytestmark = pytest.mark.integration


class NoDeadLetters:
    async def __call__(self, record: Record, code: str, reason: str, consumer: str) -> None:
        raise AssertionError(f"nothing here is dead-lettered, yet {code}: {reason}")


def records(customer: str, versions: int) -> list[InMemoryRecord]:
    payloads: list[EventPayload] = [
        CustomerRegistered(
            customer_type=CustomerType.INDIVIDUAL,
            name=CustomerName(full_name="Test Customer"),
            status=CustomerStatus.PROSPECT,
            branch_id="BR-001",
        ),
        *(CustomerProfileUpdated(phone=f"+86 100 {n:04d}") for n in range(versions - 1)),
    ]
    return [
        InMemoryRecord.of(Envelope.new(payload, customer, version, "rm-1", SOURCE), version)
        for version, payload in enumerate(payloads, start=1)
    ]


@pytest.fixture
async def database(
    crm_servers: Servers, mongo_database: str
) -> AsyncIterator[AsyncDatabase[dict[str, Any]]]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(crm_servers.mongo_uri)
    yield client[mongo_database]
    await client.close()


async def test_a_record_parked_under_a_closed_hold_is_applied_in_order(
    database: AsyncDatabase[dict[str, Any]],
) -> None:
    engine = ProjectionEngine(CustomerCards(), database, NoDeadLetters(), "g.customer_cards")
    await engine.setup()
    history = records("C-1", 5)
    await engine.process(history[:3])
    # The other instance parked version 4 after this hold was drained and closed.
    hold = hold_of(history[3])
    assert hold is not None
    await engine.parking.park(hold, history[3], "behind a dead letter of its aggregate")

    result = await engine.process(history[4:])

    assert result.parked == 1  # version 5 queues behind version 4, not ahead of it
    card = await database.cards.find_one({"_id": "C-1"})
    assert card is not None
    assert card["changes"] == 3
    assert await engine.drain_released() == 2  # the periodic tick finds the orphaned hold
    card = await database.cards.find_one({"_id": "C-1"})
    assert card is not None
    assert card["changes"] == 5
    assert card["phone"] == "+86 100 0003"  # version 5's, applied last
    assert await engine.parking.holds() == set()


class DeadLetterCodes:
    def __init__(self) -> None:
        self.codes: list[str] = []

    async def __call__(self, record: Record, code: str, reason: str, consumer: str) -> None:
        self.codes.append(code)


async def test_a_record_under_another_key_holds_nothing_back(
    database: AsyncDatabase[dict[str, Any]],
) -> None:
    dead_letters = DeadLetterCodes()
    engine = ProjectionEngine(CustomerCards(), database, dead_letters, "g.customer_cards")
    await engine.setup()
    history = records("C-1", 3)
    stray = replace(history[1], key=b"W-1")  # version 2 of C-1, under another key

    await engine.process([history[0], stray, history[1], history[2]])

    assert dead_letters.codes == ["invalid_key"]
    assert await engine.holds.collection.count_documents({}) == 0
    card = await database.cards.find_one({"_id": "C-1"})
    assert card is not None
    assert card["changes"] == 3
