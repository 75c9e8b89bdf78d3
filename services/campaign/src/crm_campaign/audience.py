"""The campaign service's own picture of the customer base, for building target lists.

``audience``: one document per customer id with what targeting needs (status, segment,
branch, manager, preferred channel, which contact details are on record, consent per
channel, merges, erasure, and accounts with balances), built from ``crm.customer.events`` and
``bank.corebanking.accounts``. The campaign service never calls the customer service:
a target list is as fresh as this view (read-your-writes: ``wait_until_applied`` on its
positions). Each handler writes only paths its source owns, so the document is the same
whatever order the two streams arrive in.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any, ClassVar, Protocol

from crm_backbone.projection import Document, Handler, Projection, ViewUpdate
from crm_backbone.readmodel import field_key
from crm_events import core_banking as cb
from crm_events import customer as cu
from crm_events.campaign import Segment
from crm_events.envelope import Envelope
from crm_events.registry import EventPayload
from crm_events.topics import COREBANKING_ACCOUNTS, CUSTOMER_EVENTS
from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from crm_campaign.targeting import Criteria, Holding, Profile

AUDIENCE = "audience"
Event = Envelope[EventPayload]


class AudienceView(Projection):
    """Customers as targeting sees them."""

    name: ClassVar[str] = "audience"
    topics: ClassVar[tuple[str, ...]] = (CUSTOMER_EVENTS.name, COREBANKING_ACCOUNTS.name)

    def handlers(self) -> Mapping[str, Handler]:
        typed: dict[type[EventPayload], Any] = {
            cu.CustomerRegistered: self.registered,
            cu.CustomerProfileUpdated: self.profile_updated,
            cu.CustomerStatusChanged: self.status_changed,
            cu.CustomerSegmentChanged: self.segment_changed,
            cu.RelationshipManagerAssigned: self.manager_assigned,
            cu.ConsentChanged: self.consent_changed,
            cu.CoreDataApplied: self.core_data_applied,
            cu.CustomerMergedInto: self.merged_into,
            cu.CustomerErased: self.erased,
            cb.AccountOpened: self.account_opened,
            cb.AccountClosed: self.account_closed,
            cb.HoldingBalanceChanged: self.balance_changed,
        }
        return {model.event_type: handler for model, handler in typed.items()}

    async def setup(self, database: AsyncDatabase[Document]) -> None:
        await database[AUDIENCE].create_indexes(
            [
                IndexModel([("registered", ASCENDING), ("value_band", ASCENDING)]),
                IndexModel([("merged_into", ASCENDING)], sparse=True),
            ]
        )

    def registered(self, e: Event) -> Iterator[ViewUpdate]:
        d = e.data
        assert isinstance(d, cu.CustomerRegistered)
        yield _customer(
            e,
            {
                "registered": True,
                "customer_type": d.customer_type.value,
                "status": d.status.value,
                "branch_id": d.branch_id,
                "preferred_channel": d.preferred_channel.value if d.preferred_channel else None,
                **_contacts(phone=d.phone, email=d.email, address=d.address),
            },
        )

    def profile_updated(self, e: Event) -> Iterator[ViewUpdate]:
        d = e.data
        assert isinstance(d, cu.CustomerProfileUpdated)
        changes: dict[str, Any] = _contacts(phone=d.phone, email=d.email, address=d.address)
        if d.preferred_channel is not None:
            changes["preferred_channel"] = d.preferred_channel.value
        yield _customer(e, changes)

    def status_changed(self, e: Event) -> Iterator[ViewUpdate]:
        d = e.data
        assert isinstance(d, cu.CustomerStatusChanged)
        yield _customer(e, {"status": d.status.value})

    def segment_changed(self, e: Event) -> Iterator[ViewUpdate]:
        d = e.data
        assert isinstance(d, cu.CustomerSegmentChanged)
        tier = d.corporate_tier.value if d.corporate_tier else None
        yield _customer(e, {"value_band": d.value_band.value, "corporate_tier": tier})

    def manager_assigned(self, e: Event) -> Iterator[ViewUpdate]:
        d = e.data
        assert isinstance(d, cu.RelationshipManagerAssigned)
        yield _customer(e, {"manager_id": d.manager_id, "branch_id": d.branch_id})

    def consent_changed(self, e: Event) -> Iterator[ViewUpdate]:
        d = e.data
        assert isinstance(d, cu.ConsentChanged)
        yield _customer(e, {f"consent.{d.channel.value}": d.opted_in})

    def core_data_applied(self, e: Event) -> Iterator[ViewUpdate]:
        d = e.data
        assert isinstance(d, cu.CoreDataApplied)
        yield _customer(e, _contacts(phone=d.phone, email=d.email, address=d.address))

    def merged_into(self, e: Event) -> Iterator[ViewUpdate]:
        d = e.data
        assert isinstance(d, cu.CustomerMergedInto)
        yield _customer(e, {"merged_into": d.survivor_customer_id})

    def erased(self, e: Event) -> Iterator[ViewUpdate]:
        """The person is forgotten: no contact details on record, never targeted again;
        accounts and balances stay."""
        assert isinstance(e.data, cu.CustomerErased)
        update = _of(e.aggregateid, {"erased": True}).update | {"$unset": {"contacts": ""}}
        yield ViewUpdate(AUDIENCE, e.aggregateid, update)

    def account_opened(self, e: Event) -> Iterator[ViewUpdate]:
        d = e.data
        assert isinstance(d, cb.AccountOpened)
        account = {
            "product_code": d.product_code,
            "product_type": d.product_type.value,
            "currency": d.currency,
            "open": True,
        }
        yield _of(d.customer_id, _account(e, account))

    def account_closed(self, e: Event) -> Iterator[ViewUpdate]:
        d = e.data
        assert isinstance(d, cb.AccountClosed)
        yield _of(d.customer_id, _account(e, {"open": False}))

    def balance_changed(self, e: Event) -> Iterator[ViewUpdate]:
        d = e.data
        assert isinstance(d, cb.HoldingBalanceChanged)
        balance = {
            "product_type": d.product_type.value,
            "balance": format(d.balance.amount, "f"),
            "balance_currency": d.balance.currency,
        }
        yield _of(d.customer_id, _account(e, balance))


def _contacts(**details: Any) -> dict[str, bool]:
    """``contacts.<detail>: true`` for the contact details given (a null is unchanged)."""
    return {f"contacts.{name}": True for name, value in details.items() if value is not None}


def _account(e: Event, fields: Mapping[str, Any]) -> dict[str, Any]:
    key = field_key(e.aggregateid)
    return {f"accounts.{key}.{name}": value for name, value in fields.items()}


def _customer(e: Event, fields: dict[str, Any]) -> ViewUpdate:
    return _of(e.aggregateid, fields)


def _of(customer_id: str, fields: dict[str, Any]) -> ViewUpdate:
    return ViewUpdate(AUDIENCE, customer_id, {"$set": {"customer_id": customer_id, **fields}})


class Audience(Protocol):
    """Where target lists are selected from."""

    async def profiles(self, segments: Sequence[Segment], criteria: Criteria) -> list[Profile]:
        """Every customer the segments and criteria may select (a superset is fine)."""
        ...


class AudienceReader:
    """Reads the profiles a campaign's segments and criteria may select, from ``audience``."""

    def __init__(self, database: AsyncDatabase[Document]) -> None:
        self.audience = database[AUDIENCE]

    async def profiles(self, segments: Sequence[Segment], criteria: Criteria) -> list[Profile]:
        """Registered, unerased customers in the segments' value bands passing the indexed
        criteria.

        A superset of the target list: ``select_targets`` applies every criterion. The
        accounts of duplicates merged into a customer count as the customer's. The
        documents arrive batch by batch; turning them into profiles is done in a thread,
        off the API's event loop.
        """
        query: Document = {
            "registered": True,
            "erased": {"$exists": False},
            "value_band": {"$in": sorted({s.value_band.value for s in segments})},
        }
        for field, values in (
            ("status", [s.value for s in criteria.statuses]),
            ("branch_id", criteria.branch_ids),
            ("manager_id", criteria.manager_ids),
        ):
            if values:
                query[field] = {"$in": values}
        documents = [doc async for doc in self.audience.find(query)]
        ids = [doc["_id"] for doc in documents]
        merged: dict[str, list[Holding]] = {}
        async for doc in self.audience.find(
            {"merged_into": {"$in": ids}}, {"accounts": 1, "merged_into": 1}
        ):
            merged.setdefault(doc["merged_into"], []).extend(_holdings(doc))
        return await asyncio.to_thread(
            lambda: [_profile(doc, merged.get(doc["_id"], [])) for doc in documents]
        )


def _holdings(doc: Document) -> list[Holding]:
    return [
        Holding(
            product_code=a.get("product_code"),
            product_type=a.get("product_type"),
            open=a.get("open", True),
            balance=Decimal(a["balance"]) if "balance" in a else None,
            currency=a.get("balance_currency") or a.get("currency"),
        )
        for a in doc.get("accounts", {}).values()
    ]


def _profile(doc: Document, merged_holdings: list[Holding]) -> Profile:
    return Profile(
        customer_id=doc["_id"],
        status=doc.get("status"),
        value_band=doc.get("value_band"),
        corporate_tier=doc.get("corporate_tier"),
        branch_id=doc.get("branch_id"),
        manager_id=doc.get("manager_id"),
        preferred_channel=doc.get("preferred_channel"),
        contacts=frozenset(name for name, known in doc.get("contacts", {}).items() if known),
        consents=doc.get("consent", {}),
        merged_into=doc.get("merged_into"),
        holdings=(*_holdings(doc), *merged_holdings),
    )
