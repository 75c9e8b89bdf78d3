"""A service's documents forget an erased customer (``crm.customer.erased``) at once.

A projection's handler writes one document per update, keyed by the event's aggregate;
the documents about a customer that other aggregates wrote (contacts, activities,
opportunities, needs, leads) are found by their customer field instead. This policy does
that: on the erased event, every document naming the customer loses the paths that say
something of the person (free texts, names): a required one takes the erased form of its
contract, an optional one is removed. What the views apply afterwards is read from events
whose personal data no longer opens (``crm_events.personal``), so it brings nothing back;
a rebuild reads them so too.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from crm_events.customer import CustomerErased
from crm_events.envelope import Envelope
from crm_events.registry import EventPayload
from crm_events.topics import CUSTOMER_EVENTS
from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from crm_backbone.policy import Policy, PolicyHandler
from crm_backbone.records import Document


@dataclass(frozen=True)
class PersonalPaths:
    """The paths of a collection's documents that say something of their customer."""

    collection: str
    removed: tuple[str, ...] = ()
    """Optional paths: removed."""
    erased: Mapping[str, Any] = field(default_factory=dict)
    """Required paths: set to their erased form."""
    customer_field: str = "customer_id"
    where: Mapping[str, Any] = field(default_factory=dict)
    """Which of the customer's documents hold them, when not all do (``{"kind": ...}``)."""
    within: str | None = None
    """An array of entries, of several customers each: the paths are those of the entries
    whose ``customer_field`` names the customer (a group's history)."""

    def forgetting(self, customer_id: str) -> tuple[Document, Document, list[Document] | None]:
        """The filter, the update and its array filters that make the documents forget
        ``customer_id``."""
        entry = f"{self.within}.$[entry]." if self.within else ""
        update: Document = {}
        if self.removed:
            update["$unset"] = {f"{entry}{path}": "" for path in self.removed}
        if self.erased:
            update["$set"] = {f"{entry}{path}": value for path, value in self.erased.items()}
        if self.within is None:
            return {**self.where, self.customer_field: customer_id}, update, None
        names = {f"entry.{self.customer_field}": customer_id}
        return {**self.where, self.indexed: customer_id}, update, [names]

    @property
    def indexed(self) -> str:
        """The path naming the customer, indexed."""
        return f"{self.within}.{self.customer_field}" if self.within else self.customer_field


class KeyMemory(Protocol):
    def forget(self, subject: str) -> None: ...


class ForgetErasedCustomers(Policy):
    """On ``crm.customer.erased``: the process's sealer (``memory``) forgets the keys of
    the customer and of the ``related`` subjects (a lead captured for them), destroyed by
    the customer service, so nothing here opens them again; then the service's documents
    about the customer forget the person. Idempotent: a redelivered erasure does it again."""

    name: ClassVar[str] = "forget_erased"
    topics: ClassVar[tuple[str, ...]] = (CUSTOMER_EVENTS.name,)
    reads_personal_data: ClassVar[bool] = False  # the erased event carries none

    def __init__(
        self,
        database: AsyncDatabase[Document],
        documents: Sequence[PersonalPaths],
        memory: KeyMemory | None = None,
        related: Callable[[str], Awaitable[Sequence[str]]] | None = None,
    ) -> None:
        self.database = database
        self.documents = documents
        self.memory = memory
        self.related = related

    def handlers(self) -> Mapping[str, PolicyHandler]:
        return {CustomerErased.event_type: self.forget}

    async def setup(self) -> None:
        for paths in self.documents:
            await self.database[paths.collection].create_indexes(
                [IndexModel([(paths.indexed, ASCENDING)])]
            )

    async def forget(self, envelope: Envelope[EventPayload]) -> None:
        customer_id = envelope.aggregateid
        if self.memory is not None:
            related = await self.related(customer_id) if self.related else ()
            for subject in (customer_id, *related):
                self.memory.forget(subject)
        for paths in self.documents:
            where, update, entries = paths.forgetting(customer_id)
            await self.database[paths.collection].update_many(where, update, array_filters=entries)
