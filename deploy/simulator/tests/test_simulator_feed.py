"""The core-banking feed: deterministic, contract-valid, consistent per account and customer."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import islice

import pytest
from crm_backbone.topic_names import CONTRACT_NAMES, TopicNames
from crm_events import ContractError, from_kafka, topic_for
from crm_events.core_banking import (
    AccountClosed,
    AccountOpened,
    CustomerDataChanged,
    HoldingBalanceChanged,
    KycUpdated,
    ProductMaturityScheduled,
)
from crm_events.envelope import Envelope
from crm_events.registry import EventPayload
from crm_simulator.feed import (
    ACTOR,
    SOURCE,
    FeedEvent,
    Route,
    feed,
)
from crm_simulator.poison import Poison
from crm_simulator.population import SimulatedCustomer, population
from crm_simulator.products import MATURING

START = datetime(2026, 1, 1, tzinfo=UTC)
CUSTOMERS = population(seed=7, size=150)


def take(
    count: int, seed: int = 7, poison_rate: float = 0.0, route: Route = CONTRACT_NAMES.of_event
) -> list[FeedEvent]:
    stream = feed(CUSTOMERS, seed=seed, start=START, poison_rate=poison_rate, route=route)
    return list(islice(stream, count))


@pytest.fixture(scope="module")
def events() -> list[FeedEvent]:
    return take(20_000)


def valid(events: list[FeedEvent]) -> list[Envelope[EventPayload]]:
    return [event.envelope for event in events if event.envelope is not None]


def test_same_seed_same_bytes_another_seed_other_bytes(events: list[FeedEvent]) -> None:
    again = take(len(events))
    assert [(e.topic, e.record) for e in again] == [(e.topic, e.record) for e in events]
    other = take(100, seed=8)
    assert [e.record for e in other] != [e.record for e in events[:100]]


def test_every_event_reads_back_through_the_contract(events: list[FeedEvent]) -> None:
    for event in events:
        assert event.poison is None
        assert event.envelope is not None
        read = from_kafka(*event.record)
        assert read == event.envelope
        assert event.topic == topic_for(read.type).name
        assert event.record.key == read.aggregateid.encode()
        assert (read.source, read.actor) == (SOURCE, ACTOR)
        assert read.correlationid == read.causationid == read.id
        assert read.time == event.time
    ids = [dict(event.record.headers)["ce_id"] for event in events]
    assert len(set(ids)) == len(ids)


def test_the_clock_advances_from_the_start(events: list[FeedEvent]) -> None:
    times = [event.time for event in events]
    assert times == sorted(times)
    assert times[0] > START
    assert times[-1] - START > timedelta(days=20)
    assert all(t.tzinfo is UTC for t in times)


def test_every_kind_of_event_is_published(events: list[FeedEvent]) -> None:
    kinds = Counter(type(envelope.data) for envelope in valid(events))
    assert set(kinds) == {
        AccountOpened,
        HoldingBalanceChanged,
        ProductMaturityScheduled,
        AccountClosed,
        KycUpdated,
        CustomerDataChanged,
    }
    assert kinds[HoldingBalanceChanged] > len(events) / 2
    products = {e.data.product_type for e in valid(events) if isinstance(e.data, AccountOpened)}
    assert len(products) == 8
    currencies = Counter(
        e.data.currency for e in valid(events) if isinstance(e.data, AccountOpened)
    )
    assert currencies.most_common(1)[0][0] == "CNY"
    assert len(currencies) > 1


def test_versions_count_from_one_per_aggregate(events: list[FeedEvent]) -> None:
    versions: dict[str, list[int]] = defaultdict(list)
    for envelope in valid(events):
        versions[envelope.aggregateid].append(envelope.aggregateversion)
    for aggregate_id, seen in versions.items():
        assert seen == list(range(1, len(seen) + 1)), aggregate_id


def test_accounts_live_consistent_lives(events: list[FeedEvent]) -> None:
    customers = {c.customer_id: c for c in CUSTOMERS}
    opened: dict[str, AccountOpened] = {}
    balances: dict[str, Decimal] = {}
    closed: set[str] = set()
    for envelope in valid(events):
        data, account = envelope.data, envelope.aggregateid
        if isinstance(data, KycUpdated | CustomerDataChanged):
            assert account in customers
            continue
        assert isinstance(
            data, AccountOpened | HoldingBalanceChanged | ProductMaturityScheduled | AccountClosed
        )
        assert account not in closed
        if isinstance(data, AccountOpened):
            assert envelope.aggregateversion == 1
            owner = customers[data.customer_id]
            assert data.branch_id == owner.branch_id
            assert data.opened_on == envelope.time.date()
            assert (data.maturity_date is not None) == (data.product_type in MATURING)
            opened[account] = data
            balances[account] = Decimal(0)
            continue
        assert data.customer_id == opened[account].customer_id
        if isinstance(data, HoldingBalanceChanged):
            assert data.product_type == opened[account].product_type
            assert data.previous_balance.amount == balances[account]
            assert data.previous_balance.amount != data.balance.amount
            assert (
                data.balance.currency == data.previous_balance.currency == opened[account].currency
            )
            assert data.balance.amount >= 0
            assert data.balance.amount.as_tuple().exponent == -2
            assert data.changed_at == envelope.time
            balances[account] = data.balance.amount
        elif isinstance(data, ProductMaturityScheduled):
            assert data.product_type in MATURING
            assert data.maturity_date == opened[account].maturity_date
            assert data.amount_at_maturity.amount >= balances[account] > 0
        else:
            assert balances[account] == 0
            closed.add(account)
    assert closed
    assert len(opened) > len(CUSTOMERS)


def test_customer_changes_change_something(events: list[FeedEvent]) -> None:
    current = {c.customer_id: (c.phone, c.email, c.address) for c in CUSTOMERS}
    for envelope in valid(events):
        if isinstance(envelope.data, CustomerDataChanged):
            data, (phone, email, address) = envelope.data, current[envelope.aggregateid]
            changes = data.model_dump(exclude_none=True)
            assert changes
            assert set(changes) <= {"phone", "email", "address"}
            assert data.phone != phone
            assert data.email != email
            assert data.address != address
            current[envelope.aggregateid] = (
                data.phone or phone,
                data.email or email,
                data.address or address,
            )
        elif isinstance(envelope.data, KycUpdated):
            assert envelope.data.reviewed_on == envelope.time.date()


def test_poison_records_break_the_contract_the_way_they_say() -> None:
    events = take(5_000, poison_rate=0.1)
    poison = [event for event in events if event.poison is not None]
    assert 350 < len(poison) < 650
    assert set(Counter(event.poison for event in poison)) == set(Poison)
    for event in poison:
        assert event.poison is not None
        assert event.envelope is None
        with pytest.raises(ContractError) as raised:
            from_kafka(*event.record)
        assert type(raised.value) is event.poison.error
        assert event.topic in {"bank.corebanking.accounts", "bank.corebanking.customers"}
    assert valid(events) == valid(take(len(events) - len(poison)))


def test_a_route_renames_topics() -> None:
    events = take(200, route=TopicNames("sandbox.").of_event)
    assert {event.topic for event in events} == {
        "sandbox.bank.corebanking.accounts",
        "sandbox.bank.corebanking.customers",
    }


@pytest.mark.parametrize(
    ("customers", "start", "poison_rate"),
    [
        (CUSTOMERS, datetime(2026, 1, 1), 0.0),
        (CUSTOMERS, START, 1.0),
        ([], START, 0.0),
    ],
)
def test_bad_arguments_are_refused(
    customers: list[SimulatedCustomer], start: datetime, poison_rate: float
) -> None:
    with pytest.raises(ValueError, match=r"timezone|poison_rate|customers"):
        next(feed(customers, seed=1, start=start, poison_rate=poison_rate))
