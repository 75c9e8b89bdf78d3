"""A hold closed by one instance while another parked under it loses nothing, on MongoDB.

Two instances of a view's consumer share its holds and parked records. One may drain a
settled hold and close it just as the other, which read the hold a moment earlier, parks
a record under it. The record must still be applied, and before the aggregate's later
events, though no hold names it any more.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from crm_backbone.holds import hold_of
from crm_backbone.projection import ProjectionEngine, Record
from crm_backbone.testing import CustomerCards, InMemoryRecord, NoDeadLetters, customer_history
from pymongo.asynchronous.database import AsyncDatabase

pytestmark = pytest.mark.integration


def records(customer: str, versions: int) -> list[InMemoryRecord]:
    return [
        InMemoryRecord.of(envelope, envelope.aggregateversion)
        for envelope in customer_history(customer, versions - 1)
    ]


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
