"""``ForgetErasedCustomers``: on ``crm.customer.erased`` every document naming the customer
forgets the person's paths, others untouched, and the process's sealer forgets the keys
of the customer and its related subjects. Collections are
in-memory stand-ins applying MongoDB's operators."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from crm_backbone.erasure import ForgetErasedCustomers, PersonalPaths
from crm_backbone.keys import KeySealer, SubjectErased
from crm_backbone.keys.memory import InMemoryKeys
from crm_backbone.testing_updates import apply_update
from crm_events import customer as cu
from crm_events.envelope import Envelope
from crm_events.registry import EventPayload
from crm_events.topics import Service


class Collection:
    def __init__(self, documents: list[dict[str, Any]]) -> None:
        self.documents = documents
        self.indexes: list[Any] = []

    async def update_many(
        self,
        query: dict[str, Any],
        update: dict[str, Any],
        array_filters: list[dict[str, Any]] | None = None,
    ) -> None:
        assert array_filters is None, "entries of arrays: see the integration tests"
        for i, doc in enumerate(self.documents):
            if all(doc.get(k) == v for k, v in query.items()):
                self.documents[i] = apply_update(doc, update)

    async def create_indexes(self, indexes: list[Any]) -> None:
        self.indexes += indexes


class Database(dict[str, Collection]):
    pass


ERASED: Envelope[EventPayload] = Envelope.new(
    cu.CustomerErased(
        erased_at=datetime(2026, 11, 24, tzinfo=UTC),
        erased_by="dpo",
        legal_basis=cu.ErasureBasis.GDPR_NO_LONGER_NECESSARY,
        reason="request DPR-5",
    ),
    "C1",
    4,
    actor="dpo",
    source=Service.CUSTOMER.source,
)


async def test_the_documents_of_the_erased_customer_forget_the_person() -> None:
    contacts = Collection(
        [
            {"_id": "CT-1", "customer_id": "C1", "summary": "met Ms Ye", "content": "x", "n": 1},
            {"_id": "CT-2", "customer_id": "C2", "summary": "met Mr Bo", "content": "y", "n": 2},
        ]
    )
    database = Database(contacts=contacts)
    keys = InMemoryKeys()
    sealer = KeySealer(keys)
    for subject in ("C1", "LEAD-1", "C2"):
        sealer.seal(subject, b"remembered")
        keys.keys[subject] = None  # destroyed by the customer service, elsewhere

    async def leads_of(customer_id: str) -> list[str]:
        return ["LEAD-1"]

    policy = ForgetErasedCustomers(
        database,  # type: ignore[arg-type]
        [PersonalPaths("contacts", removed=("content",), erased={"summary": "[erased]"})],
        sealer,
        leads_of,
    )
    await policy.setup()
    await policy.handlers()[ERASED.type](ERASED)
    await policy.handlers()[ERASED.type](ERASED)  # redelivered: the same
    assert contacts.documents == [
        {"_id": "CT-1", "customer_id": "C1", "summary": "[erased]", "n": 1},
        {"_id": "CT-2", "customer_id": "C2", "summary": "met Mr Bo", "content": "y", "n": 2},
    ]
    token = sealer.seal("C2", b"still remembered: not erased here")
    assert sealer.open("C2", token) is not None
    for subject in ("C1", "LEAD-1"):  # forgotten at once, not after the memory's time
        with pytest.raises(SubjectErased):
            sealer.seal(subject, b"x")
    assert len(contacts.indexes) == 1


def test_the_entries_of_an_array_naming_the_customer_forget_the_person() -> None:
    history = PersonalPaths("groups", removed=("reason",), within="history")
    named = PersonalPaths("groups", erased={"group_name": "[erased]"}, customer_field="named_by")

    assert history.forgetting("C1") == (
        {"history.customer_id": "C1"},
        {"$unset": {"history.$[entry].reason": ""}},
        [{"entry.customer_id": "C1"}],
    )
    assert history.indexed == "history.customer_id"
    assert named.forgetting("C1") == (
        {"named_by": "C1"},
        {"$set": {"group_name": "[erased]"}},
        None,
    )
