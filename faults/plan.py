"""The stream a scenario runs, deterministic from its seed.

A :class:`Plan` holds commands of relationship managers on the simulated bank's customers
(registrations, profile, status, segment, manager and consent changes), core banking's
feed about the same customers (``crm_simulator.feed``, poison records included) and
contacts logged by the contact-log service (hand-built envelopes).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from crm_backbone.context import command_context
from crm_customer.application import CustomerApplication
from crm_customer.rules import Conflict
from crm_events import contact_log as cl
from crm_events.common import ValueBand
from crm_events.customer import CustomerStatus
from crm_events.envelope import Envelope, to_kafka
from crm_events.registry import EventPayload
from crm_events.topics import CONTACTLOG_EVENTS, Service
from crm_simulator.feed import feed
from crm_simulator.poison import Poison, UpstreamRecord
from crm_simulator.population import SimulatedCustomer, branch_managers, population

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
"""When the simulated core banking's clock starts."""
CUSTOMER_SOURCE = Service.CUSTOMER.source
T = TypeVar("T")
_STATUS_MOVES = {
    CustomerStatus.ACTIVE: (CustomerStatus.DORMANT, CustomerStatus.CHURNED),
    CustomerStatus.DORMANT: (CustomerStatus.ACTIVE,),
    CustomerStatus.CHURNED: (CustomerStatus.ACTIVE,),
}
_CONSENT_CHANNELS = ("sms", "email", "phone", "app")


@dataclass(frozen=True)
class Command:
    """One command of a relationship manager: an ``CustomerApplication`` method and its
    keyword arguments (``expected`` is always None: the manager does not hold a version)."""

    actor: str
    customer_id: str
    method: str
    arguments: Mapping[str, Any]


@dataclass(frozen=True)
class Upstream:
    """One record another system publishes, on its contract topic; poison if no envelope."""

    topic: str
    record: UpstreamRecord
    envelope: Envelope[EventPayload] | None
    poison: Poison | None = None
    """How a poison record breaks the contract."""


@dataclass
class Plan:
    customers: list[SimulatedCustomer]
    commands: list[Command]
    upstream: list[Upstream]

    @property
    def poison(self) -> int:
        return sum(1 for item in self.upstream if item.envelope is None)

    @property
    def upstream_events(self) -> list[Envelope[EventPayload]]:
        return [item.envelope for item in self.upstream if item.envelope is not None]


def make_plan(
    seed: int,
    *,
    customers: int = 40,
    upstream_events: int = 450,
    contacts: int = 60,
    poison_rate: float = 0.01,
) -> Plan:
    """The commands and upstream records of one scenario, the same for the same arguments."""
    rng = random.Random(seed)
    book = population(seed, customers)
    commands = _interleave([_customer_commands(c, rng) for c in book], rng)
    bank: list[Upstream] = []
    valid = 0
    for item in feed(book, seed=seed, start=START, poison_rate=poison_rate):
        bank.append(Upstream(item.topic, item.record, item.envelope, item.poison))
        valid += item.envelope is not None
        if valid == upstream_events:
            break
    logged = [_contact(n, rng.choice(book), rng) for n in range(contacts)]
    return Plan(book, commands, _interleave([bank, logged], rng))


def registration(customer: SimulatedCustomer) -> dict[str, Any]:
    """The registration fields of a customer, as the API passes them to the application."""
    return {
        "customer_type": customer.customer_type.value,
        "name": customer.name.model_dump(mode="json"),
        "status": CustomerStatus.PROSPECT.value,
        "id_documents": [d.model_dump(mode="json") for d in customer.id_documents],
        "birth_date": customer.birth_date.isoformat() if customer.birth_date else None,
        "phone": customer.phone,
        "email": customer.email,
        "address": customer.address.model_dump(mode="json"),
        "occupation": customer.occupation,
        "industry": customer.industry,
        "branch_id": customer.branch_id,
        "preferred_channel": customer.preferred_channel.value,
    }


def _customer_commands(customer: SimulatedCustomer, rng: random.Random) -> list[Command]:
    """Registration, the usual onboarding, then a few changes in a lifecycle that holds."""
    who, cid = customer.manager_id, customer.customer_id
    managers = branch_managers(customer.branch_id)

    def command(method: str, **arguments: Any) -> Command:
        return Command(who, cid, method, arguments)

    commands = [
        command("register", fields=registration(customer)),
        command("assign_manager", manager_id=who, branch_id=customer.branch_id, reason=None),
        command("change_status", status=CustomerStatus.ACTIVE, reason="accounts opened"),
        command(
            "change_segment",
            value_band=customer.value_band.value,
            corporate_tier=None,
            reason="annual segmentation",
        ),
    ]
    status = CustomerStatus.ACTIVE
    for n in range(rng.randint(2, 6)):
        kind = rng.choice(("profile", "profile", "status", "segment", "manager", "consent"))
        if kind == "profile":
            changes = rng.choice(
                (
                    {"phone": f"+86 139 {rng.randrange(10**8):08d}"},
                    {"email": f"{cid.lower()}.{n}@mail.example"},
                )
            )
            commands.append(command("update_profile", changes=changes))
        elif kind == "status":
            status = rng.choice(_STATUS_MOVES[status])
            commands.append(command("change_status", status=status, reason=f"review {n}"))
        elif kind == "segment":
            band = rng.choice(list(ValueBand)).value
            commands.append(
                command("change_segment", value_band=band, corporate_tier=None, reason="review")
            )
        elif kind == "manager":
            manager = rng.choice(managers)
            commands.append(
                command(
                    "assign_manager",
                    manager_id=manager,
                    branch_id=customer.branch_id,
                    reason="portfolio rebalanced",
                )
            )
        else:
            commands.append(
                command(
                    "set_consent",
                    channel=rng.choice(_CONSENT_CHANNELS),
                    opted_in=rng.random() < 0.5,
                    reason="asked at the branch",
                )
            )
    return commands


def _contact(n: int, customer: SimulatedCustomer, rng: random.Random) -> Upstream:
    """A contact logged by the contact-log service: its own aggregate, version 1."""
    payload = cl.ContactLogged(
        customer_id=customer.customer_id,
        category=rng.choice((cl.ContactCategory.PHONE, cl.ContactCategory.VISIT)),
        summary=f"contact {n}",
        called=True,
        outcome=cl.ContactOutcome.REACHED,
        manager_id=customer.manager_id,
        started_at=START + timedelta(minutes=rng.randrange(60 * 24 * 30)),
    )
    envelope: Envelope[EventPayload] = Envelope.new(
        payload,
        aggregate_id=f"CT-{n:05d}",
        aggregate_version=1,
        actor=customer.manager_id,
        source=Service.CONTACT_LOG.source,
        time=START + timedelta(seconds=n),
    )
    return Upstream(CONTACTLOG_EVENTS.name, UpstreamRecord(*to_kafka(envelope)), envelope)


def _interleave(streams: Sequence[Sequence[T]], rng: random.Random) -> list[T]:
    """A random merge that keeps each stream's own order."""
    positions = [0] * len(streams)
    weights = [len(s) for s in streams]
    merged: list[T] = []
    while any(weights):
        (index,) = rng.choices(range(len(streams)), weights=weights)
        merged.append(streams[index][positions[index]])
        positions[index] += 1
        weights[index] -= 1
    return merged


# --- Running commands ----------------------------------------------------------------

CONFLICT_ATTEMPTS = 5
"""How often a command is tried against concurrent writers of its customer before failing."""


def run_command(app: CustomerApplication, command: Command) -> None:
    """Issue one command as its actor; a registration that already committed is done.

    A command retried after a lost connection may find its own first attempt committed:
    registering again is then a conflict (done), and the other commands are no-ops when
    nothing would change, so a retry never makes a second event. Any other command may
    meet a conflict with the worker's policies writing the same customer (core banking's
    data changes): it wrote nothing, so it reads again and retries, as a client would.
    """
    with command_context(actor=command.actor):
        if command.method == "register":
            try:
                app.register(command.customer_id, dict(command.arguments["fields"]))
            except Conflict:
                if not app.exists(command.customer_id):
                    raise
            return
        for attempt in range(1, CONFLICT_ATTEMPTS + 1):
            try:
                getattr(app, command.method)(command.customer_id, None, **command.arguments)
                return
            except Conflict:
                if attempt == CONFLICT_ATTEMPTS:
                    raise
