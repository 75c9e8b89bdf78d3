"""A deterministic stream of core-banking events about a simulated population.

``feed(customers, seed=..., start=...)`` plays the bank's core system: customers open
accounts (funded on opening; term products announce their maturity), money moves, term
products mature and are paid out, accounts close, KYC reviews happen and customers change
their phone, e-mail or address. Each event is a contract ``Envelope`` from core banking:
account events have the account number as subject, customer events the customer id, and
versions count from 1 per aggregate. Event ids are UUIDv5 of the stream and the aggregate
version, times come from a simulated clock: the same arguments give the same records.

With ``poison_rate`` > 0, that fraction of the records are poison: corrupted copies of the
next event (own id, never advancing an aggregate) that a consumer must dead-letter
(:mod:`crm_simulator.poison`).

``bank_feed`` is what the simulated bank publishes: its organisation from HR
(:mod:`crm_simulator.organisation`) first, then core banking's feed.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from crm_backbone.topic_names import CONTRACT_NAMES
from crm_events import Envelope, EventPayload, Service, to_kafka

from crm_simulator.core_bank import CoreBank
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
        for aggregate_id, version, payload in bank.step(clock):
            envelope = Envelope.new(
                payload,
                aggregate_id=aggregate_id,
                aggregate_version=version,
                actor=ACTOR,
                source=SOURCE,
                event_id=str(uuid.uuid5(NAMESPACE, f"{stream}/{aggregate_id}/{version}")),
                time=clock,
            )
            record = UpstreamRecord(*to_kafka(envelope))
            topic = route(payload.event_type)
            while poison_rng.random() < poison_rate:
                poisoned += 1
                kind = poison_rng.choice(list(Poison))
                poison_id = str(uuid.uuid5(NAMESPACE, f"{stream}/poison/{poisoned}"))
                yield FeedEvent(topic, poisoned_copy(kind, record, poison_id), clock, None, kind)
            yield FeedEvent(topic, record, clock, envelope)


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
    """What the simulated bank publishes: its organisation, then :func:`feed`."""
    yield from organisation_feed(start=start, route=route)
    yield from feed(customers, seed=seed, start=start, poison_rate=poison_rate, route=route)


def _utc(start: datetime) -> datetime:
    if start.utcoffset() is None:
        raise ValueError("start must be timezone-aware")
    return start.astimezone(UTC)
