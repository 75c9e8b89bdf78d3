"""A deterministic stream of core-banking events about a simulated population.

``feed(customers, seed=..., start=...)`` plays the bank's core system: customers open
accounts (funded on opening; term products announce their maturity), money moves, term
products mature and are paid out, accounts close, KYC reviews happen and customers change
their phone, e-mail or address; one customer in 15 leaves the bank (takes its money out
from the 10th simulated day, does nothing from the 20th: ``core_bank.LEAVERS_EVERY``).
Each event is a contract ``Envelope`` from core banking:
account events have the account number as subject, customer events the customer id, and
versions count from 1 per aggregate. Event ids are UUIDv5 of the stream and the aggregate
version, times come from a simulated clock: the same arguments give the same records.

With ``poison_rate`` > 0, that fraction of the records are poison: corrupted copies of the
next event (own id, never advancing an aggregate) that a consumer must dead-letter
(:mod:`crm_simulator.poison`).

``bank_feed`` is what the simulated bank publishes: its organisation from HR
(:mod:`crm_simulator.organisation`) first, then, in time order, core banking's feed, the
credit system's facilities and management accounting's monthly statements
(:mod:`crm_simulator.credit_system`; :func:`upstream_feed`), each as its own system.
"""

from __future__ import annotations

import heapq
import random
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from crm_backbone.topic_names import CONTRACT_NAMES
from crm_events import Envelope, EventPayload, Service, to_kafka

from crm_simulator.core_bank import CoreBank, add_months
from crm_simulator.credit_system import (
    STATED_MONTHS_AT_START,
    CreditSystem,
    month_of,
    monthly_statements,
)
from crm_simulator.organisation import organisation
from crm_simulator.poison import Poison, UpstreamRecord, poisoned_copy
from crm_simulator.population import SimulatedCustomer

ACTOR = "core-banking"
SOURCE = Service.CORE_BANKING.source
HR_ACTOR = "hr"
NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://crm.bank.example/simulator/core-banking")
"""UUIDv5 namespace of the simulator's event ids."""
EVENTS_PER_CUSTOMER_DAY = 4
"""Mean simulated activity: the clock advances by a day per this many events per customer."""
CREDIT_EVENTS_PER_ORGANISATION_DAY = 0.5
"""Mean activity of the credit system: events a day per organisation among the customers."""
STATEMENT_HOUR = time(6, tzinfo=UTC)
"""When management accounting states the month that ended, on the first of the next."""

Route = Callable[[str], str]
"""Name of the topic that carries an event type."""


@dataclass(frozen=True)
class FeedEvent:
    """One record to publish, with the event it carries (``None`` for a poison record)."""

    topic: str
    record: UpstreamRecord
    time: datetime
    envelope: Envelope[EventPayload] | None
    poison: Poison | None = None


def feed(
    customers: Sequence[SimulatedCustomer],
    *,
    seed: int,
    start: datetime,
    poison_rate: float = 0.0,
    route: Route = CONTRACT_NAMES.of_event,
) -> Iterator[FeedEvent]:
    """Core-banking events about ``customers``, endlessly, from ``start`` (tz-aware) on.

    ``route`` names the topic of each event type (default: the contract's). Valid events
    do not depend on ``poison_rate``: poison records are drawn from a stream of their own.
    """
    clock = _utc(start)
    if not 0 <= poison_rate < 1:
        raise ValueError("poison_rate must be in [0, 1)")
    if not customers:
        raise ValueError("no customers")
    rng = random.Random(seed)
    poison_rng = random.Random(f"poison/{seed}")
    bank = CoreBank(customers, rng)
    stream = f"{seed}/{len(customers)}/{clock.isoformat()}"
    mean_gap = 86_400 / (EVENTS_PER_CUSTOMER_DAY * len(customers))
    poisoned = 0
    while True:
        clock += timedelta(seconds=rng.expovariate(1 / mean_gap))
        for change in bank.step(clock):
            event = _feed_event(Service.CORE_BANKING, stream, change, clock, route)
            while poison_rng.random() < poison_rate:
                poisoned += 1
                kind = poison_rng.choice(list(Poison))
                poison_id = str(uuid.uuid5(NAMESPACE, f"{stream}/poison/{poisoned}"))
                copy = poisoned_copy(kind, event.record, poison_id)
                yield FeedEvent(event.topic, copy, clock, None, kind)
            yield event


def credit_feed(
    customers: Sequence[SimulatedCustomer],
    *,
    seed: int,
    start: datetime,
    route: Route = CONTRACT_NAMES.of_event,
) -> Iterator[FeedEvent]:
    """The credit system's events about the organisations among ``customers``, endlessly,
    from ``start`` on (none without organisations)."""
    clock = _utc(start)
    rng = random.Random(f"credit/{seed}")
    system = CreditSystem(customers, rng)
    if not system.borrowers:
        return
    stream = f"credit/{seed}/{len(customers)}/{clock.isoformat()}"
    mean_gap = 86_400 / (CREDIT_EVENTS_PER_ORGANISATION_DAY * len(system.borrowers))
    while True:
        clock += timedelta(seconds=rng.expovariate(1 / mean_gap))
        for change in system.step(clock):
            yield _feed_event(Service.CREDIT, stream, change, clock, route)


def contribution_feed(
    customers: Sequence[SimulatedCustomer],
    *,
    seed: int,
    start: datetime,
    route: Route = CONTRACT_NAMES.of_event,
) -> Iterator[FeedEvent]:
    """Management accounting's statements of every customer: the months before ``start``
    it has already stated, at ``start``, then each month once it has ended."""
    clock = _utc(start)
    stream = f"mis/{seed}/{len(customers)}/{clock.isoformat()}"
    month = add_months(clock.date().replace(day=1), -STATED_MONTHS_AT_START)
    while True:
        ended = add_months(month, 1)
        moment = max(clock, datetime.combine(ended, STATEMENT_HOUR))
        for change in monthly_statements(customers, month_of(month), seed):
            yield _feed_event(Service.MANAGEMENT_ACCOUNTING, stream, change, moment, route)
        month = ended


def upstream_feed(
    customers: Sequence[SimulatedCustomer],
    *,
    seed: int,
    start: datetime,
    poison_rate: float = 0.0,
    route: Route = CONTRACT_NAMES.of_event,
) -> Iterator[FeedEvent]:
    """Core banking's, the credit system's and management accounting's events, in time
    order (at one moment: in that order)."""
    return heapq.merge(
        feed(customers, seed=seed, start=start, poison_rate=poison_rate, route=route),
        credit_feed(customers, seed=seed, start=start, route=route),
        contribution_feed(customers, seed=seed, start=start, route=route),
        key=lambda event: event.time,
    )


def _feed_event(
    system: Service,
    stream: str,
    change: tuple[str, int, EventPayload],
    moment: datetime,
    route: Route,
) -> FeedEvent:
    """The record of one change of an upstream system's aggregate; its event id is the
    same on every run of the same stream."""
    aggregate_id, version, payload = change
    envelope = Envelope.new(
        payload,
        aggregate_id=aggregate_id,
        aggregate_version=version,
        actor=system.value,
        source=system.source,
        event_id=str(uuid.uuid5(NAMESPACE, f"{stream}/{aggregate_id}/{version}")),
        time=moment,
    )
    return FeedEvent(
        route(payload.event_type), UpstreamRecord(*to_kafka(envelope)), moment, envelope
    )


def organisation_feed(
    *, start: datetime, route: Route = CONTRACT_NAMES.of_event
) -> Iterator[FeedEvent]:
    """HR's events stating the simulated bank's organisation, all at ``start``; each
    aggregate's one event has the same id on every run, so a rerun changes no view."""
    moment = _utc(start)
    for aggregate_id, payload in organisation():
        envelope = Envelope.new(
            payload,
            aggregate_id=aggregate_id,
            aggregate_version=1,
            actor=HR_ACTOR,
            source=Service.HR.source,
            event_id=str(uuid.uuid5(NAMESPACE, f"hr/{aggregate_id}/1")),
            time=moment,
        )
        record = UpstreamRecord(*to_kafka(envelope))
        yield FeedEvent(route(payload.event_type), record, moment, envelope)


def bank_feed(
    customers: Sequence[SimulatedCustomer],
    *,
    seed: int,
    start: datetime,
    poison_rate: float = 0.0,
    route: Route = CONTRACT_NAMES.of_event,
) -> Iterator[FeedEvent]:
    """What the simulated bank publishes: its organisation, then :func:`upstream_feed`."""
    yield from organisation_feed(start=start, route=route)
    yield from upstream_feed(
        customers, seed=seed, start=start, poison_rate=poison_rate, route=route
    )


def _utc(start: datetime) -> datetime:
    if start.utcoffset() is None:
        raise ValueError("start must be timezone-aware")
    return start.astimezone(UTC)
