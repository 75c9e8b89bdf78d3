"""The simulated bank's organisation: every manager the population's customers are
assigned to is placed at their branch, units come before the people in them and managers
before their reports, and the identity provider's users are the staff HR places."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from itertools import islice
from pathlib import Path

import pytest
from crm_backbone.topic_names import TopicNames
from crm_events import from_kafka
from crm_events.organisation import BranchOpened, RegionDefined, Role, StaffPlaced
from crm_events.topics import HR_ORGANISATION, Service
from crm_simulator.cli import SIMULATED_TOPICS
from crm_simulator.feed import bank_feed, organisation_feed, upstream_feed
from crm_simulator.organisation import organisation, region_of
from crm_simulator.population import BRANCH_IDS, population
from crm_simulator.realm import subject_of

START = datetime(2026, 1, 1, tzinfo=UTC)
REALM = Path(__file__).parents[2] / "keycloak" / "crm-realm.json"


def placements() -> dict[str, StaffPlaced]:
    return {staff: event for staff, event in organisation() if isinstance(event, StaffPlaced)}


def test_every_assigned_manager_is_placed_at_their_customers_branch() -> None:
    staff = placements()
    for customer in population(seed=42, size=500):
        placed = staff[customer.manager_id]
        assert (placed.role, placed.branch_id) == (Role.RELATIONSHIP_MANAGER, customer.branch_id)


def test_units_precede_their_staff_and_managers_their_reports() -> None:
    known: set[str] = set()
    for aggregate_id, event in organisation():
        if isinstance(event, BranchOpened):
            assert event.region_id in known
        if isinstance(event, StaffPlaced):
            assert {event.branch_id, event.region_id, event.reports_to} - {None} <= known
        assert aggregate_id not in known, "one event per aggregate"
        known.add(aggregate_id)
    regions = [a for a, event in organisation() if isinstance(event, RegionDefined)]
    assert {region_of(branch) for branch in BRANCH_IDS} == set(regions)


def test_the_organisation_comes_first_on_hr_topic_and_the_same_on_every_run() -> None:
    names = TopicNames("sim.")
    shanghai = START.astimezone(timezone(timedelta(hours=8)))
    first = list(organisation_feed(start=START, route=names.of_event))
    assert first == list(organisation_feed(start=shanghai, route=names.of_event))
    assert {event.topic for event in first} == {names(HR_ORGANISATION.name)}
    assert HR_ORGANISATION.name in SIMULATED_TOPICS
    for event in first:
        key, value, headers = event.record
        envelope = from_kafka(key, value, headers)
        assert (envelope.source, envelope.aggregateversion) == (Service.HR.source, 1)
    customers = population(seed=3, size=20)
    stream = list(islice(bank_feed(customers, seed=3, start=START), len(first) + 50))
    assert stream[: len(first)] == list(organisation_feed(start=START))
    upstream = upstream_feed(customers, seed=3, start=START)
    assert stream[len(first) :] == list(islice(upstream, 50))


def test_a_naive_start_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        next(organisation_feed(start=datetime(2026, 1, 1)))


@pytest.mark.skipif(not REALM.is_file(), reason="the realm file is not in this tree")
def test_every_staff_member_has_a_login_with_their_staff_id_and_role_and_no_one_else() -> None:
    users = json.loads(REALM.read_text(encoding="utf-8"))["users"]
    people = {
        user["attributes"]["staff_id"][0]: user
        for user in users
        if "staff_id" in user.get("attributes", {})
    }
    assert len(people) == len([user for user in users if "serviceAccountClientId" not in user])
    assert set(people) == set(placements())
    for staff_id, placed in placements().items():
        user = people[staff_id]
        assert (user["username"], user["realmRoles"]) == (staff_id.lower(), [placed.role.value])
        assert user["id"] == subject_of(staff_id)
    assert len({user["id"] for user in people.values()}) == len(people)
    assert {placed.role for placed in placements().values()} == set(Role)
