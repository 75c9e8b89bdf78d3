"""The team calendar on the genuine servers.

First the read models alone: random activities with participants, moved, completed and
cancelled, their records handed straight to the projection engine (no Kafka) interleaved,
cut into random batches and partly redelivered; each person's calendar and busy times are
computed here from the activities' descriptions, independently of the service's code.

Then the service end to end (Kafka, MongoDB, Keycloak's tokens): a participant sees the
activity, and a plan over a person's busy time is answered 409 naming it, unless confirmed.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from crm_backbone.access import SERVICE_REACHES, ServiceRole
from crm_backbone.organisation import OrganisationView
from crm_backbone.projection import Document, ProjectionEngine
from crm_backbone.testing import InMemoryRecord, NoDeadLetters, interleave
from crm_contactlog.access import ContactLogBook
from crm_contactlog.bootstrap import ContactLogService
from crm_contactlog.busy_times import BusyTimes, BusyTimesView
from crm_contactlog.queries import ContactLogQueries
from crm_contactlog.testing import RULES
from crm_contactlog.views import ContactLogViews
from crm_events import contact_log as cl
from crm_events.envelope import Envelope
from crm_events.registry import EventPayload
from crm_events.topics import Service
from local_infra.harness import assert_problem
from local_infra.pytest_plugin import Servers
from local_infra.tokens import RealmTokens
from pymongo import AsyncMongoClient

from tests.integration.conftest import publish_organisation
from tests.integration.test_contactlog_service import HR, caught_up, service

pytestmark = pytest.mark.integration
__all__ = ["service"]  # the fixture, used by name

T0 = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)
PEOPLE = ["RM-1", "RM-2", "RM-3", "RM-4"]
WHOLE_BOOK = SERVICE_REACHES[ServiceRole.CRM_SERVICE]


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


@dataclass
class Plan:
    """An activity's life: scheduled, maybe moved, then maybe completed or cancelled."""

    activity_id: str
    assignee: str
    participants: list[str]
    start: int
    length: int | None  # minutes; None: a to-do without an end
    moved_to: int | None = None
    end: str = "open"  # open, completed, cancelled
    records: list[InMemoryRecord] = field(default_factory=list)

    @property
    def final_start(self) -> int:
        return self.start if self.moved_to is None else self.moved_to

    def ends(self, start: int) -> datetime | None:
        return None if self.length is None else at(start + self.length)

    def events(self, clock: Iterator[int]) -> list[InMemoryRecord]:
        payloads: list[EventPayload] = [
            cl.ActivityScheduled(
                category=cl.ActivityCategory.MEETING,
                description=f"Meeting {self.activity_id}",
                priority=cl.Priority.NORMAL,
                started_at=at(self.start),
                ended_at=self.ends(self.start),
                due_at=self.ends(self.start) or at(self.start),
                assignee_id=self.assignee,
                participant_ids=self.participants,
            )
        ]
        if self.moved_to is not None:
            payloads.append(
                cl.ActivityRescheduled(
                    started_at=at(self.moved_to),
                    ended_at=self.ends(self.moved_to),
                    due_at=self.ends(self.moved_to) or at(self.moved_to),
                )
            )
        if self.end == "completed":
            payloads.append(cl.ActivityCompleted(completed_at=at(self.final_start)))
        if self.end == "cancelled":
            payloads.append(cl.ActivityCancelled(reason="moved to next week"))
        return [
            InMemoryRecord.of(
                Envelope.new(
                    payload,
                    self.activity_id,
                    version,
                    actor="rm-test",
                    source=Service.CONTACT_LOG.source,
                    time=T0 + timedelta(seconds=next(clock)),
                ),
                version - 1,
            )
            for version, payload in enumerate(payloads, start=1)
        ]


def plans(rng: random.Random) -> list[Plan]:
    drawn = []
    for n in range(30):
        assignee, *others = rng.sample(PEOPLE, rng.randint(1, 3))
        drawn.append(
            Plan(
                f"ACT-{n}",
                assignee,
                others,
                rng.randrange(0, 8 * 60, 15),
                rng.choice([None, 30, 60, 90]),
                rng.choice([None, None, rng.randrange(0, 8 * 60, 15)]),
                rng.choice(["open", "open", "completed", "cancelled"]),
            )
        )
    return drawn


def expected_calendar(drawn: list[Plan], person: str) -> list[tuple[str, str, list[str]]]:
    """(activity, role, overlapping open activities listed) of the person's calendar."""

    def held(p: Plan) -> tuple[datetime, datetime] | None:
        end = p.ends(p.final_start)
        if p.end != "open" or end is None:
            return None
        return at(p.final_start), end

    listed = sorted(
        (p for p in drawn if person in (p.assignee, *p.participants) and p.end != "cancelled"),
        key=lambda p: (at(p.final_start), p.activity_id),
    )
    calendar = []
    for p in listed:
        mine = held(p)
        clashes = []
        for other in sorted(listed, key=lambda o: (at(o.final_start), o.activity_id)):
            theirs = held(other)
            if other is p or mine is None or theirs is None:
                continue
            # some minute lies in both half-open periods
            if any(mine[0] <= t < mine[1] and theirs[0] <= t < theirs[1] for t in minutes(mine)):
                clashes.append(other.activity_id)
        role = "assignee" if p.assignee == person else "participant"
        calendar.append((p.activity_id, role, clashes))
    return calendar


def minutes(period: tuple[datetime, datetime]) -> Iterator[datetime]:
    moment = period[0]
    while moment < period[1]:
        yield moment
        moment += timedelta(minutes=1)


@pytest.fixture
async def client(crm_servers: Servers) -> AsyncIterator[AsyncMongoClient[Document]]:
    mongo: AsyncMongoClient[Document] = AsyncMongoClient(crm_servers.mongo_uri, tz_aware=True)
    yield mongo
    await mongo.close()


class NoStaff:
    async def position_of(self, staff_id: str) -> None:
        return None


async def test_calendars_and_busy_times_whatever_order_and_redelivery(
    client: AsyncMongoClient[Document], mongo_database: str
) -> None:
    drawn = plans(random.Random(16))
    clock = itertools.count()
    streams = [p.events(clock) for p in drawn]
    outcomes: list[dict[str, Any]] = []
    for seed in range(4):
        rng = random.Random(seed)
        database = client[f"{mongo_database}_{seed}"]
        try:
            engines = [
                ProjectionEngine(projection, database, NoDeadLetters(), "test")
                for projection in (ContactLogViews(), BusyTimesView())
            ]
            for engine in engines:
                await engine.setup()
            records = interleave(streams, rng)
            cut = rng.randrange(len(records))
            again = rng.randrange(cut + 1)
            for part in (records[:cut], records[again:]):  # records[again:cut] come back
                start = 0
                while start < len(part):
                    size = rng.choice([1, 3, 8, 1000])
                    for engine in engines:
                        await engine.process(part[start : start + size])
                    start += size
            queries = ContactLogQueries(database, RULES)
            book = ContactLogBook(database, NoStaff())
            busy = BusyTimes(database)
            outcome: dict[str, Any] = {}
            for person in PEOPLE:
                listed = await queries.calendar(book, WHOLE_BOOK, person, at(-60), at(24 * 60))
                outcome[person] = [(i.activity_id, i.role, i.overlaps) for i in listed.items]
                outcome[f"busy {person}"] = sorted(
                    (b.activity_id, b.slot.start, b.slot.end)
                    for b in await busy.of([person], at(-60))
                )
            outcomes.append(outcome)
        finally:
            await client.drop_database(database.name)
    assert all(outcome == outcomes[0] for outcome in outcomes[1:])
    result = outcomes[0]
    for person in PEOPLE:
        assert result[person] == expected_calendar(drawn, person), person
        assert result[f"busy {person}"] == sorted(
            (p.activity_id, at(p.final_start), p.ends(p.final_start))
            for p in drawn
            if person in (p.assignee, *p.participants) and p.end == "open" and p.length
        )
    assert any(overlaps for person in PEOPLE for _, _, overlaps in result[person])


def meeting(activity_id: str, start: datetime, minutes: int, **fields: Any) -> dict[str, Any]:
    end = start + timedelta(minutes=minutes)
    return {
        "activity_id": activity_id,
        "category": "meeting",
        "description": "Branch pipeline review",
        "started_at": start.isoformat(),
        "ended_at": end.isoformat(),
        "due_at": end.isoformat(),
        "assignee_id": "RM-0001",
    } | fields


async def test_a_participant_sees_the_activity_and_an_overlap_is_answered_with_the_conflict(
    service: tuple[ContactLogService, httpx.AsyncClient],
    crm_servers: Servers,
    topic_prefix: str,
    realm_tokens: RealmTokens,
    unique_name: Any,
) -> None:
    contact_log, client = service
    await publish_organisation(crm_servers.kafka_bootstrap, topic_prefix)
    staff = ("RM-0001", "RM-0002", "RM-0005")
    await caught_up(contact_log, OrganisationView.name, [(HR, s, 1) for s in staff])
    run = unique_name("")[-8:]
    rm1, rm2, rm5 = (realm_tokens.staff(u) for u in ("rm-0001", "rm-0002", "rm-0005"))
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)
    first, second, third = (f"ACT-{run}-{n}" for n in (1, 2, 3))
    source = Service.CONTACT_LOG.source

    review = meeting(first, start, 60, participant_ids=["RM-0002"])
    assert (await client.post("/activities", json=review, headers=rm1)).status_code == 201
    await caught_up(contact_log, BusyTimesView.name, [(source, first, 1)])

    # RM-0002's own call at the same hour: the meeting they take part in is named.
    call = meeting(second, start + timedelta(minutes=30), 60, assignee_id="RM-0002")
    refused = await client.post("/activities", json=call, headers=rm2)
    assert_problem(refused, 409, "activity-overlap")
    assert refused.json()["overlaps"] == [
        {
            "activity_id": first,
            "person_id": "RM-0002",
            "started_at": start.isoformat(),
            "ended_at": (start + timedelta(minutes=60)).isoformat(),
        }
    ]
    assert "Branch pipeline" not in refused.text  # nothing of what the meeting is about
    assert (await client.get(f"/activities/{second}")).status_code == 404  # nothing written
    back_to_back = call | {"started_at": (start + timedelta(minutes=60)).isoformat()}
    assert (await client.post("/activities", json=back_to_back, headers=rm2)).status_code == 201
    await caught_up(contact_log, BusyTimesView.name, [(source, second, 1)])

    # Moving the meeting over the call: refused, then confirmed.
    later = {"due_at": (start + timedelta(minutes=100)).isoformat()}
    later["started_at"] = (start + timedelta(minutes=40)).isoformat()
    moved = await client.post(f"/activities/{first}/reschedule", json=later, headers=rm1)
    assert_problem(moved, 409, "activity-overlap")
    assert [o["activity_id"] for o in moved.json()["overlaps"]] == [second]
    confirmed = later | {"confirm_overlap": True}
    moved = await client.post(f"/activities/{first}/reschedule", json=confirmed, headers=rm1)
    assert moved.status_code == 200, moved.text
    await caught_up(contact_log, ContactLogViews.name, [(source, first, 2), (source, second, 1)])

    period = {
        "starts_from": (start - timedelta(hours=1)).isoformat(),
        "starts_before": (start + timedelta(hours=3)).isoformat(),
    }
    calendar = await client.get("/activities", params=period, headers=rm2)
    assert calendar.status_code == 200, calendar.text
    entries = [(e["activity_id"], e["role"], e["overlaps"]) for e in calendar.json()["items"]]
    assert entries == [(first, "participant", [second]), (second, "assignee", [first])]
    assert (await client.get(f"/activities/{first}", headers=rm2)).status_code == 200
    cancel = {"reason": "not my meeting"}  # a participant reads it; its owners change it
    refused = await client.post(f"/activities/{first}/cancel", json=cancel, headers=rm2)
    assert_problem(refused, 404, "activity-not-found")
    tasks = (await client.get("/managers/RM-0002/tasks", headers=rm2)).json()
    listed = [t["task_id"] for group in ("today", "this_week", "upcoming") for t in tasks[group]]
    assert first in listed
    assert second in listed

    # RM-0005 (another branch) reaches neither the meeting nor RM-0002's calendar.
    assert (await client.get(f"/activities/{first}", headers=rm5)).status_code == 404
    other = await client.get("/activities", params=period | {"person": "RM-0002"}, headers=rm5)
    assert_problem(other, 404, "manager-not-found")

    # Participants are staff the organisation knows; a bad period writes and reads nothing.
    stranger = meeting(third, start + timedelta(days=1), 30, participant_ids=["RM-9999"])
    assert_problem(
        await client.post("/activities", json=stranger, headers=rm1), 422, "rule-violation"
    )
    backwards = {"starts_from": period["starts_before"], "starts_before": period["starts_from"]}
    assert_problem(
        await client.get("/activities", params=backwards, headers=rm2), 422, "rule-violation"
    )
