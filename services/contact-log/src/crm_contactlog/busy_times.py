"""People's busy times: the read model the overlap check of scheduling reads.

``busy_times``: one document per activity, with its people (assignee and participants),
its planned start and end, and ``open`` while it is scheduled. Only an open activity with
a planned end after its start holds time (``crm_contactlog.domain.slot_of``); completing
or cancelling one frees its time. Each document is touched only by its own activity's
events, which the engine applies once each, in version order: redelivered, late or
interleaved streams give the same documents, and ``crm-ops rebuild busy_times`` replays
them.

What the check sees is what this view has applied: an activity scheduled a moment ago
(its event still on its way through the outbox and Kafka) is not yet busy time, and two
schedulings for the same person at the same moment may both pass. The race is accepted,
not guarded (no reservation is taken on the write side): a double booking it lets
through is shown on both calendars (``overlaps``) for the people to settle, as one a
caller confirmed is.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any, ClassVar, Protocol

from crm_backbone.projection import Document, Handler, Projection, ViewUpdate
from crm_events import contact_log as cl
from crm_events.envelope import Envelope
from crm_events.registry import EventPayload
from crm_events.topics import CONTACTLOG_EVENTS
from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from crm_contactlog.domain import BusyTime, slot_of

BUSY_TIMES = "busy_times"

Event = Envelope[EventPayload]


class BusyTimesView(Projection):
    """The time each open activity holds in its people's calendars."""

    name: ClassVar[str] = "busy_times"
    topics: ClassVar[tuple[str, ...]] = (CONTACTLOG_EVENTS.name,)

    def handlers(self) -> Mapping[str, Handler]:
        typed: dict[type[EventPayload], Any] = {
            cl.ActivityScheduled: self.scheduled,
            cl.ActivityRescheduled: self.rescheduled,
            cl.ActivityCompleted: self.closed,
            cl.ActivityCancelled: self.closed,
        }
        return {model.event_type: handler for model, handler in typed.items()}

    async def setup(self, database: AsyncDatabase[Document]) -> None:
        await database[BUSY_TIMES].create_indexes(
            [IndexModel([("person_ids", ASCENDING), ("open", ASCENDING), ("ended_at", ASCENDING)])]
        )

    def scheduled(self, e: Event) -> Iterator[ViewUpdate]:
        d = e.data
        assert isinstance(d, cl.ActivityScheduled)
        busy = {
            "person_ids": [d.assignee_id, *d.participant_ids],
            "started_at": d.started_at,
            "ended_at": d.ended_at,
            "open": True,
        }
        yield ViewUpdate(BUSY_TIMES, e.aggregateid, {"$set": busy})

    def rescheduled(self, e: Event) -> Iterator[ViewUpdate]:
        d = e.data
        assert isinstance(d, cl.ActivityRescheduled)
        moved = {"started_at": d.started_at, "ended_at": d.ended_at}
        yield ViewUpdate(BUSY_TIMES, e.aggregateid, {"$set": moved})

    def closed(self, e: Event) -> Iterator[ViewUpdate]:
        yield ViewUpdate(BUSY_TIMES, e.aggregateid, {"$set": {"open": False}})


class BusyTimeReader(Protocol):
    """Where the overlap check reads people's busy times (``BusyTimes`` in the service;
    ``crm_contactlog.testing.CaughtUpBusyTimes`` in memory, for the API's unit tests)."""

    async def of(self, people: Iterable[str], since: datetime) -> tuple[BusyTime, ...]:
        """The busy times of ``people`` that end after ``since``: every one a plan starting
        then may overlap (whether it does is the domain's rule, ``domain.clashes``)."""
        ...


class BusyTimes:
    """Reads ``busy_times`` for the overlap check."""

    def __init__(self, database: AsyncDatabase[Document]) -> None:
        self.collection = database[BUSY_TIMES]

    async def of(self, people: Iterable[str], since: datetime) -> tuple[BusyTime, ...]:
        wanted = list(dict.fromkeys(people))
        query = {"person_ids": {"$in": wanted}, "open": True, "ended_at": {"$gt": since}}
        return held_by([doc async for doc in self.collection.find(query)], wanted)


def held_by(documents: Iterable[Document], people: list[str]) -> tuple[BusyTime, ...]:
    """The busy times the ``busy_times`` documents hold for those of ``people`` in them."""
    found: list[BusyTime] = []
    for doc in documents:
        slot = slot_of(doc["started_at"], doc["ended_at"])
        if slot is not None:
            found += [
                BusyTime(person, doc["_id"], slot)
                for person in doc["person_ids"]
                if person in people
            ]
    return tuple(found)
