"""The stream a scenario runs, and the ground truth recomputed from what really happened.

A :class:`Plan` is deterministic from its seed: commands of relationship managers on the
simulated bank's customers (registrations, profile, status, segment, manager and consent
changes), core banking's feed about the same customers (``crm_simulator.feed``, poison
records included) and contacts logged by the contact-log service (hand-built envelopes).

The :class:`Truth` is recomputed without the projection code: the customers' fields from
every event stored in the event store (whatever commands really committed, retries
included), the accounts, KYC and contacts from the upstream records generated, and for
every aggregate the versions that exist, which the ledger must hold exactly once each.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

from crm_backbone.context import command_context
from crm_backbone.projection import Document
from crm_backbone.readmodel import guard_key
from crm_customer.application import CustomerApplication
from crm_customer.rules import Conflict
from crm_events import contact_log as cl
from crm_events import core_banking as cb
from crm_events.common import ValueBand
from crm_events.customer import CustomerStatus
from crm_events.envelope import Envelope, to_kafka
from crm_events.registry import EventPayload
from crm_events.topics import CONTACTLOG_EVENTS, Service
from crm_simulator.feed import feed
from crm_simulator.poison import Poison, UpstreamRecord
from crm_simulator.population import SimulatedCustomer, branch_managers, population
from pymongo.asynchronous.database import AsyncDatabase

from faults.ledger import LEDGER

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
        command("change_segment", value_band=customer.value_band.value, corporate_tier=None,
                reason="annual segmentation"),
    ]  # fmt: skip
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
                command("assign_manager", manager_id=manager, branch_id=customer.branch_id,
                        reason="portfolio rebalanced")
            )  # fmt: skip
        else:
            commands.append(
                command("set_consent", channel=rng.choice(_CONSENT_CHANNELS),
                        opted_in=rng.random() < 0.5, reason="asked at the branch")
            )  # fmt: skip
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


def run_command(app: CustomerApplication, command: Command) -> None:
    """Issue one command as its actor; a registration that already committed is done.

    A command retried after a lost connection may find its own first attempt committed:
    registering again is then a conflict (done), and the other commands are no-ops when
    nothing would change, so a retry never makes a second event.
    """
    with command_context(actor=command.actor):
        if command.method == "register":
            try:
                app.register(command.customer_id, dict(command.arguments["fields"]))
            except Conflict:
                if not app.exists(command.customer_id):
                    raise
            return
        getattr(app, command.method)(command.customer_id, None, **command.arguments)


# --- The ground truth -----------------------------------------------------------------


Fields = dict[str, Any]
"""Expected values by dotted path in a customer's view document."""


@dataclass
class Truth:
    """What the read models must hold once every event is applied exactly once."""

    customers: dict[str, Fields]
    """Customer id -> dotted path -> value (``accounts{}``: the account ids, sorted;
    ``contacts[]``: the ids of the last ten contacts, newest first)."""
    versions: dict[str, int]
    """Ledger key -> versions that exist (1..n)."""
    stored_events: int
    upstream_events: int

    @property
    def events(self) -> int:
        return self.stored_events + self.upstream_events


def stored_events(app: CustomerApplication) -> Iterator[Any]:
    """Every event of the store's notification log, as domain events, in order."""
    position: int | None = None
    while True:
        page = app.recorder.select_notifications(
            start=position, limit=500, inclusive_of_start=position is None
        )
        if not page:
            return
        for notification in page:
            yield app.mapper.to_domain_event(notification)
        position = page[-1].id


def ground_truth(app: CustomerApplication, plan: Plan) -> Truth:
    """The expected read models, from the event store and the upstream records."""
    customers: dict[str, Fields] = defaultdict(dict)
    versions: dict[str, int] = {}
    stored = 0
    for event in stored_events(app):
        stored += 1
        subject = str(event.subject)
        key = guard_key(CUSTOMER_SOURCE, subject)
        versions[key] = max(versions.get(key, 0), event.originator_version)
        _customer_fields(customers[subject], type(event).__qualname__, event)
    contacts: dict[str, list[tuple[datetime, str]]] = defaultdict(list)
    upstream = plan.upstream_events
    for envelope in upstream:
        key = guard_key(envelope.source, envelope.aggregateid)
        versions[key] = max(versions.get(key, 0), envelope.aggregateversion)
        data = envelope.data
        if isinstance(data, cl.ContactLogged):
            contacts[data.customer_id].append((data.started_at, envelope.aggregateid))
        else:
            _bank_fields(customers, envelope)
    for customer_id, logged in contacts.items():
        fields = customers[customer_id]
        fields["contact_count"] = len(logged)
        fields["last_contact_at"] = max(at for at, _ in logged)
        newest = sorted(logged, key=lambda c: (-c[0].timestamp(), c[1]))[:10]
        fields["contacts[]"] = [contact_id for _, contact_id in newest]
    for fields in customers.values():
        accounts = {path.split(".")[1] for path in fields if path.startswith("accounts.")}
        if accounts:
            fields["accounts{}"] = sorted(accounts)
    return Truth(dict(customers), versions, stored, len(upstream))


def _customer_fields(fields: Fields, kind: str, event: Any) -> None:
    """Fold one stored customer event into the customer's expected fields."""
    if kind == "Customer.Registered":
        fields |= {
            "customer_id": event.subject,
            "registered": True,
            "customer_type": event.customer_type,
            "name.full_name": event.name["full_name"],
            "status": event.status,
            "branch_id": event.branch_id,
            "profile.phone": event.phone,
            "profile.email": event.email,
        }
    elif kind == "Customer.ProfileUpdated":
        for name in ("phone", "email"):
            if getattr(event, name) is not None:
                fields[f"profile.{name}"] = getattr(event, name)
    elif kind == "Customer.StatusChanged":
        fields["status"] = event.status
    elif kind == "Customer.SegmentChanged":
        fields["segment.value_band"] = event.value_band
    elif kind == "Customer.ManagerAssigned":
        fields |= {"manager_id": event.manager_id, "branch_id": event.branch_id}
    elif kind == "Customer.ConsentChanged":
        fields[f"consent.{event.channel}.opted_in"] = event.opted_in
    else:
        raise AssertionError(f"the workload does not issue commands that store {kind}")


def _bank_fields(customers: dict[str, Fields], envelope: Envelope[EventPayload]) -> None:
    """Fold one core-banking event into its customer's expected fields."""
    data = envelope.data
    if isinstance(data, cb.KycUpdated):
        fields = customers[envelope.aggregateid]
        fields["kyc.kyc_status"] = data.kyc_status.value
        fields["kyc.risk_rating"] = data.risk_rating.value
        return
    if isinstance(data, cb.CustomerDataChanged):
        return  # core data reaches the view through the customer's own events
    account = f"accounts.{envelope.aggregateid}"
    if isinstance(data, cb.AccountOpened):
        fields = customers[data.customer_id]
        fields[f"{account}.status"] = "open"
        fields[f"{account}.product_type"] = data.product_type.value
    elif isinstance(data, cb.AccountClosed):
        customers[data.customer_id][f"{account}.status"] = "closed"
    elif isinstance(data, cb.HoldingBalanceChanged):
        fields = customers[data.customer_id]
        fields[f"{account}.balance.amount"] = Decimal(data.balance.amount)
        fields[f"{account}.balance.currency"] = data.balance.currency
        last = fields.get("last_transaction_at") or data.changed_at
        fields["last_transaction_at"] = max(last, data.changed_at)
    elif isinstance(data, cb.ProductMaturityScheduled):
        customers[data.customer_id][f"maturities.{envelope.aggregateid}.maturity_date"] = (
            data.maturity_date.isoformat()
        )
    else:
        raise AssertionError(f"unexpected upstream event {envelope.type}")


# --- Comparing ------------------------------------------------------------------------


@dataclass
class Verdict:
    """The read models against the truth."""

    lost: int = 0
    """Versions that exist but the ledger never applied."""
    twice: int = 0
    """Applications beyond the first of a version (ledger), and contacts counted twice."""
    mismatches: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.lost == 0 and self.twice == 0 and not self.mismatches


async def compare(database: AsyncDatabase[Document], truth: Truth) -> Verdict:
    """Every customer view field and every ledger document against the truth."""
    verdict = Verdict()
    ledger = {doc["_id"]: doc async for doc in database[LEDGER].find()}
    for key, last in truth.versions.items():
        doc = ledger.pop(key, None)
        applied: list[int] = doc["versions"] if doc else []
        distinct = set(applied)
        verdict.lost += sum(1 for v in range(1, last + 1) if v not in distinct)
        verdict.twice += len(applied) - len(distinct)
        if distinct - set(range(1, last + 1)):
            verdict.mismatches.append(f"ledger {key}: versions that do not exist {distinct}")
        if doc and doc.get("applied") != len(applied):
            verdict.mismatches.append(f"ledger {key}: applied {doc.get('applied')} != {applied}")
    verdict.mismatches += [f"ledger {key}: no such aggregate" for key in ledger]
    views = {doc["_id"]: doc async for doc in database["customers"].find()}
    for customer_id, fields in truth.customers.items():
        doc = views.pop(customer_id, None)
        if doc is None:
            verdict.mismatches.append(f"customer {customer_id}: no view document")
            continue
        for path, expected in fields.items():
            actual = _value(doc, path)
            if not _same(expected, actual):
                verdict.mismatches.append(
                    f"customer {customer_id} {path}: {actual!r}, expected {expected!r}"
                )
        if isinstance(count := doc.get("contact_count"), int):
            verdict.twice += max(0, count - fields.get("contact_count", 0))
    verdict.mismatches += [f"customer {key}: not in the truth" for key in views]
    return verdict


def _value(doc: Document, path: str) -> Any:
    if path.endswith("{}"):
        return sorted(doc.get(path[:-2]) or {})
    if path.endswith("[]"):
        return [c.get("contact_id") for c in doc.get(path[:-2]) or []]
    value: Any = doc
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _same(expected: Any, actual: Any) -> bool:
    if isinstance(expected, Decimal):
        return isinstance(actual, str) and Decimal(actual) == expected
    if isinstance(expected, datetime):
        millis = expected.replace(microsecond=expected.microsecond // 1000 * 1000)
        return isinstance(actual, datetime) and actual == millis
    return bool(expected == actual)
