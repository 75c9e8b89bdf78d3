"""Contacts and activities restored from a snapshot, at any point of any command sequence,
are the aggregates replayed from their events and answer later commands alike."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from crm_backbone.keys import KeySealer
from crm_backbone.keys.memory import InMemoryKeys
from crm_backbone.sealing import EventSealing
from crm_backbone.snapshot_check import Command, check_snapshots
from crm_contactlog.application import ContactLogApplication
from crm_contactlog.domain import Activity, Contact
from crm_contactlog.publication import PAYLOADS
from hypothesis import given, settings
from hypothesis import strategies as st

MAPPER = ContactLogApplication(
    env={"PERSISTENCE_MODULE": "eventsourcing.popo"},
    sealing=EventSealing(KeySealer(InMemoryKeys()), PAYLOADS),
).mapper
"""The service's mapper, personal data sealed as in its event store."""
NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)

moments = st.builds(
    lambda hours, zone: (NOW + timedelta(hours=hours)).astimezone(zone).isoformat(),
    st.sampled_from([-2, 0, 1.5, 25, 26, 30]),
    st.sampled_from([UTC, timezone(timedelta(hours=8))]),
)
costs = st.none() | st.sampled_from(
    [{"amount": "120.00", "currency": "CNY"}, {"amount": "-1", "currency": "CNY"}]
)


def command(name: str, **arguments: st.SearchStrategy[Any]) -> st.SearchStrategy[Command]:
    return st.tuples(st.just(name), st.fixed_dictionaries(arguments))


def contact(started_at: str, ended_at: str | None) -> Contact:
    return Contact.log(
        "K1",
        {
            "customer_id": "C1",
            "category": "phone",
            "summary": "summary",
            "content": None,
            "called": True,
            "outcome": "interested",
            "manager_id": "RM-1",
            "opportunity_id": None,
            "campaign_id": None,
            "started_at": started_at,
            "ended_at": ended_at,
        },
        now=NOW + timedelta(days=2),
    )


def activity(ended_at: str | None) -> Activity:
    return Activity.schedule(
        "A1",
        {
            "customer_id": "C1",
            "category": "visit",
            "description": "Review the wealth plan",
            "remarks": None,
            "priority": "high",
            "due_at": (NOW + timedelta(hours=26)).isoformat(),
            "started_at": NOW.isoformat(),
            "ended_at": ended_at,
            "estimated_cost": {"amount": "120.00", "currency": "CNY"},
            "assignee_id": "RM-1",
            "participant_ids": ["RM-2"],
            "origin_event_id": None,
        },
    )


ACTIVITY_COMMANDS = st.one_of(
    command(
        "reschedule",
        due_at=moments,
        started_at=st.none() | moments,
        ended_at=st.none() | moments,
        reason=st.none() | st.just("customer busy"),
    ),
    command(
        "complete",
        completed_at=moments,
        remarks=st.none() | st.just("done"),
        cost=costs,
        now=st.just(NOW),
    ),
    command("cancel", reason=st.just("customer abroad")),
)


@settings(max_examples=20, deadline=None)
@given(moments, st.none() | st.just((NOW + timedelta(hours=31)).isoformat()))
def test_a_contact_round_trips_through_a_snapshot(started_at: str, ended_at: str | None) -> None:
    """A contact never changes: its one point is right after it was logged."""
    check_snapshots(MAPPER, lambda: contact(started_at, ended_at), [])


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from([None, (NOW + timedelta(hours=2)).isoformat()]),
    st.lists(ACTIVITY_COMMANDS, max_size=20),
)
def test_an_activity_round_trips_through_a_snapshot(
    ended_at: str | None, commands: list[Command]
) -> None:
    check_snapshots(MAPPER, lambda: activity(ended_at), commands)
