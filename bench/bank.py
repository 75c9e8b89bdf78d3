"""The synthetic bank, deterministic from a seed: customers, their CRM history, core banking.

The customers are ``crm_simulator.population``'s. Each gets the first days of a CRM
history (registered, manager assigned, activated, segmented; some change their e-mail or
opt out of a channel), written through the customer service's own domain model and
event store, so the relay publishes genuine integration events. Core banking's events are
``crm_simulator.feed``'s: accounts opened, balances moving, maturities, KYC, data changes.

:class:`Expected` keeps, while the events are made, what the view must hold once all are
applied (the last version of each aggregate) and the customer document each event lands
on (for the raw bulk upsert of as many documents).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice

from crm_backbone.context import command_context
from crm_backbone.readmodel import guard_key
from crm_customer.application import CustomerApplication
from crm_customer.domain import Customer
from crm_events.customer import CustomerStatus
from crm_events.topics import Service
from crm_simulator.day import registration
from crm_simulator.feed import FeedEvent, feed
from crm_simulator.population import SimulatedCustomer, new_email

START = datetime(2026, 1, 1, tzinfo=UTC)
CRM_SOURCE = Service.CUSTOMER.source
SAVE_EVERY = 100
"""Customers per atomic save while the histories are written (the store's speed is not
what is measured)."""


@dataclass
class Expected:
    """What the single customer view must show once every event is applied."""

    positions: dict[str, int] = field(default_factory=dict)
    """Guard key (source and aggregate) → last version."""
    targets: list[str] = field(default_factory=list)
    """The customer document each event lands on, one entry per event."""

    @property
    def events(self) -> int:
        return len(self.targets)

    @property
    def customers(self) -> int:
        return len(set(self.targets))


def crm_history(
    app: CustomerApplication,
    customers: Sequence[SimulatedCustomer],
    seed: int,
    expected: Expected | None = None,
) -> int:
    """Write each customer's first CRM days to ``app``'s store; events written."""
    rng = random.Random(f"crm/{seed}")
    written = 0
    for start in range(0, len(customers), SAVE_EVERY):
        chunk = [_history(c, rng) for c in customers[start : start + SAVE_EVERY]]
        app.save(*chunk)
        for customer in chunk:
            written += customer.version
            if expected is not None:
                key = guard_key(CRM_SOURCE, customer.customer_id)
                expected.positions[key] = customer.version
                expected.targets.extend([customer.customer_id] * customer.version)
    return written


def _history(simulated: SimulatedCustomer, rng: random.Random) -> Customer:
    with command_context(actor=simulated.manager_id):
        fields = registration(simulated)
        del fields["customer_id"]
        customer = Customer.register(simulated.customer_id, fields)
        customer.assign_manager(simulated.manager_id, simulated.branch_id, None)
        customer.change_status(CustomerStatus.ACTIVE, "accounts opened in core banking")
        tier = simulated.corporate_tier.value if simulated.corporate_tier else None
        customer.change_segment(simulated.value_band.value, tier, "annual segmentation")
        if rng.random() < 0.3:
            customer.update_profile({"email": new_email(rng, simulated)})
        if rng.random() < 0.1:
            channel = rng.choice(("sms", "email", "phone"))
            customer.set_consent(channel, False, "asked at the branch")
    return customer


def upstream(
    customers: Sequence[SimulatedCustomer],
    seed: int,
    count: int,
    route: Callable[[str], str],
    expected: Expected,
    *,
    only: str | None = None,
    chunk: int = 10_000,
) -> Iterator[list[FeedEvent]]:
    """``count`` core-banking events (those for topic ``only``, if given) in chunks,
    recorded in ``expected`` as they are made."""
    made = feed(customers, seed=seed, start=START, route=route)
    events = islice((e for e in made if only is None or e.topic == only), count)
    while batch := list(islice(events, chunk)):
        for event in batch:
            envelope = event.envelope
            assert envelope is not None, "the feed makes no poison records here"
            key = guard_key(envelope.source, envelope.aggregateid)
            expected.positions[key] = envelope.aggregateversion
            expected.targets.append(getattr(envelope.data, "customer_id", envelope.aggregateid))
        yield batch
