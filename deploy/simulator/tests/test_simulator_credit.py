"""The credit system's and management accounting's feeds: deterministic, contract-valid,
in time order with core banking's, each facility living a consistent life."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from itertools import islice

import pytest
from crm_events import credit as cr
from crm_events import from_kafka, topic_for
from crm_events.management_accounting import ContributionReported
from crm_events.topics import Service
from crm_simulator.credit_system import corporate_groups
from crm_simulator.feed import FeedEvent, upstream_feed
from crm_simulator.population import population

START = datetime(2026, 1, 1, tzinfo=UTC)
CUSTOMERS = population(seed=7, size=150)


@pytest.fixture(scope="module")
def events() -> list[FeedEvent]:
    return list(islice(upstream_feed(CUSTOMERS, seed=7, start=START), 25_000))


def of(events: list[FeedEvent], system: Service) -> list[FeedEvent]:
    return [e for e in events if e.envelope is not None and e.envelope.source == system.source]


def test_the_systems_interleave_in_time_order_and_read_back(events: list[FeedEvent]) -> None:
    again = list(islice(upstream_feed(CUSTOMERS, seed=7, start=START), len(events)))
    assert [e.record for e in again] == [e.record for e in events]
    assert [e.time for e in events] == sorted(e.time for e in events)
    for system in (Service.CORE_BANKING, Service.CREDIT, Service.MANAGEMENT_ACCOUNTING):
        mine = of(events, system)
        assert mine, system
        for event in mine:
            assert event.envelope is not None
            assert from_kafka(*event.record) == event.envelope
            assert event.topic == topic_for(event.envelope.type).name
            assert topic_for(event.envelope.type).owner is system
            assert event.envelope.actor == system.value


def test_facilities_live_consistent_lives(events: list[FeedEvent]) -> None:
    organisations = {c.customer_id for c in CUSTOMERS if c.is_organisation}
    groups = corporate_groups(CUSTOMERS)
    lives: dict[str, list[cr.FacilityTerms]] = defaultdict(list)
    for event in of(events, Service.CREDIT):
        assert event.envelope is not None
        payload = event.envelope.data
        assert isinstance(payload, cr.FacilityTerms)
        assert event.envelope.aggregateversion == len(lives[event.envelope.aggregateid]) + 1
        lives[event.envelope.aggregateid].append(payload)
    kinds = Counter(type(p) for life in lives.values() for p in life)
    assert set(kinds) >= {cr.FacilityGranted, cr.FacilityDrawn, cr.FacilityRepaid}
    for life in lives.values():
        assert isinstance(life[0], cr.FacilityGranted)
        assert life[0].customer_id in organisations
        matured = False
        for before, after in zip([None, *life], life, strict=False):
            assert Decimal(0) <= after.drawn
            matured = matured or isinstance(after, cr.FacilityMatured)
            assert (after.status is cr.FacilityStatus.MATURED) == matured
            if isinstance(after, cr.FacilityDrawn):
                assert before is not None
                assert after.drawn == before.drawn + after.amount <= after.limit
            if isinstance(after, cr.FacilityRepaid):
                assert before is not None
                assert after.drawn == before.drawn - after.amount
            for guarantee in after.guarantees:
                assert groups[guarantee.guarantor_customer_id][0] == groups[after.customer_id][0]
    assert any(life[0].guarantees for life in lives.values())


def test_every_customer_is_stated_each_month(events: list[FeedEvent]) -> None:
    months: dict[str, set[str]] = defaultdict(set)
    for event in of(events, Service.MANAGEMENT_ACCOUNTING):
        assert event.envelope is not None
        payload = event.envelope.data
        assert isinstance(payload, ContributionReported)
        assert payload.contribution == payload.revenue - payload.cost
        assert event.envelope.aggregateid == f"{payload.customer_id}:{payload.month}"
        months[payload.month].add(payload.customer_id)
        stated = {"2025-10": START, "2025-11": START, "2025-12": START.replace(hour=6)}
        assert event.time == stated.get(payload.month, datetime(2026, 2, 1, 6, tzinfo=UTC))
    everyone = {c.customer_id for c in CUSTOMERS}
    assert sorted(months) == ["2025-10", "2025-11", "2025-12", "2026-01"]
    assert all(stated == everyone for stated in months.values())


def test_groups_are_organisations_of_one_branch() -> None:
    groups = corporate_groups(CUSTOMERS)
    by_id = {c.customer_id: c for c in CUSTOMERS}
    members: dict[str, list[str]] = defaultdict(list)
    for customer_id, (group_id, _) in groups.items():
        assert by_id[customer_id].is_organisation
        members[group_id].append(customer_id)
    assert members
    for group in members.values():
        assert 2 <= len(group) <= 3
        assert len({by_id[c].branch_id for c in group}) == 1
