"""Test helpers: a tiny customer domain (aggregate, translation, projection) for the
backbone's own tests, and in-memory records to drive projection engines directly.

It uses the real contract (``crm.customer.*`` payloads) so the tests exercise the same
envelope, registry and topics as the services do.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from crm_events.common import CustomerName, CustomerType
from crm_events.customer import CustomerProfileUpdated, CustomerRegistered, CustomerStatus
from crm_events.envelope import Envelope, to_kafka
from crm_events.registry import EventPayload
from crm_events.topics import topic_for
from eventsourcing.application import Application
from eventsourcing.domain import event

from crm_backbone.aggregate import TracedAggregate
from crm_backbone.projection import Handler, Projection, ViewUpdate

SOURCE = "/crm/customer"
POISON_PHONE = "+00 0000 0000"
"""The phone :class:`CustomerCards`' handler refuses (a handler bug), :class:`FixedCards` not."""
T = TypeVar("T")


class Customer(TracedAggregate):
    @event("Registered")
    def __init__(self, full_name: str, branch_id: str) -> None:
        self.full_name = full_name
        self.branch_id = branch_id
        self.phone: str | None = None

    @event("PhoneChanged")
    def change_phone(self, phone: str) -> None:
        self.phone = phone


class Customers(Application[uuid.UUID]):
    def register(self, full_name: str, branch_id: str = "BR-001") -> uuid.UUID:
        customer = Customer(full_name=full_name, branch_id=branch_id)
        self.save(customer)
        return customer.id

    def change_phone(self, customer_id: uuid.UUID, phone: str) -> int:
        customer: Customer = self.repository.get(customer_id)
        customer.change_phone(phone)
        self.save(customer)
        return customer.version


def translate(domain_event: Any) -> EventPayload | None:
    if isinstance(domain_event, Customer.Registered):  # type: ignore[attr-defined]
        return CustomerRegistered(
            customer_type=CustomerType.INDIVIDUAL,
            name=CustomerName(full_name=domain_event.full_name),
            status=CustomerStatus.PROSPECT,
            branch_id=domain_event.branch_id,
        )
    if isinstance(domain_event, Customer.PhoneChanged):  # type: ignore[attr-defined]
        return CustomerProfileUpdated(phone=domain_event.phone)
    return None


class CustomerCards(Projection):
    """One card per customer; ``changes`` counts events, so a double apply shows."""

    name: ClassVar[str] = "customer_cards"
    topics: ClassVar[tuple[str, ...]] = ("crm.customer.events",)
    refused_phones: ClassVar[frozenset[str]] = frozenset({POISON_PHONE})

    def handlers(self) -> Mapping[str, Handler]:
        return {
            "crm.customer.registered": self.registered,
            "crm.customer.profile_updated": self.profile_updated,
        }

    def registered(self, envelope: Envelope[EventPayload]) -> Iterable[ViewUpdate]:
        data = envelope.data
        assert isinstance(data, CustomerRegistered)
        yield ViewUpdate(
            "cards",
            envelope.aggregateid,
            {
                "$set": {"name": data.name.full_name, "branch_id": data.branch_id},
                "$inc": {"changes": 1},
            },
        )

    def profile_updated(self, envelope: Envelope[EventPayload]) -> Iterable[ViewUpdate]:
        data = envelope.data
        assert isinstance(data, CustomerProfileUpdated)
        if data.phone in self.refused_phones:
            raise ValueError("this phone number cannot be projected")
        yield ViewUpdate(
            "cards",
            envelope.aggregateid,
            {"$set": {"phone": data.phone}, "$inc": {"changes": 1}},
        )


class FixedCards(CustomerCards):
    """The same view after its handler's fix: the phone it refused is now accepted."""

    refused_phones: ClassVar[frozenset[str]] = frozenset()


@dataclass(frozen=True)
class InMemoryRecord:
    """A Kafka consumer record made in memory, to hand batches straight to an engine."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]]

    @classmethod
    def of(cls, envelope: Envelope[EventPayload], offset: int) -> InMemoryRecord:
        """The record of ``envelope`` on its contract topic, partition 0."""
        record = to_kafka(envelope)
        topic = topic_for(envelope.type).name
        return cls(topic, 0, offset, record.key, record.value, record.headers)


def customer_history(customer: str, changes: int) -> list[Envelope[EventPayload]]:
    """The events of one customer: registered, then ``changes`` phone changes, the
    ``n``-th (from 0) to ``+86 100 <n as 4 digits>``."""
    payloads: list[EventPayload] = [
        CustomerRegistered(
            customer_type=CustomerType.INDIVIDUAL,
            name=CustomerName(full_name="Test Customer"),
            status=CustomerStatus.PROSPECT,
            branch_id="BR-001",
        ),
        *(CustomerProfileUpdated(phone=f"+86 100 {n:04d}") for n in range(changes)),
    ]
    return [
        Envelope.new(payload, customer, version, actor="rm-1", source=SOURCE)
        for version, payload in enumerate(payloads, start=1)
    ]


class NoDeadLetters:
    """Dead letters for tests that expect none: any is a failure."""

    async def __call__(self, record: Any, code: str, reason: str, consumer: str) -> None:
        raise AssertionError(f"unexpected dead letter: {code} {reason}")


def interleave(streams: Iterable[Sequence[T]], rng: random.Random) -> list[T]:
    """A random merge of ``streams`` keeping each one's own order (as a partition does)."""
    queues = [list(stream) for stream in streams if stream]
    merged: list[T] = []
    while queues:
        queue = rng.choice(queues)
        merged.append(queue.pop(0))
        if not queue:
            queues.remove(queue)
    return merged
