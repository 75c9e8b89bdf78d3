"""Whose book each customer is in, as every service other than the customer's sees it.

A caller's reach follows the *customer's* relationship manager and branch
(``docs/access.md``), but an opportunity, a contact or a campaign target records only its
customer's id. :class:`CustomerOwnersView` keeps each service's own copy of the
customers' owners, projected from ``crm.customer.events`` into ``customer_owners`` (one
document per customer), and :class:`CustomerBook` scopes by it:

- :meth:`CustomerBook.scope` narrows the MongoDB filter of any collection whose records
  name a customer to the customers in reach;
- :meth:`CustomerBook.require` answers whether one customer is in reach, or raises
  :class:`~crm_backbone.access.NotInReach` for the record that named it.

A reassignment changes one document here, so it moves every record of the customer out
of the old manager's book at once, in every view of the service.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar, Protocol

from crm_events import customer as events
from crm_events.envelope import Envelope
from crm_events.registry import EventPayload
from crm_events.topics import CUSTOMER_EVENTS
from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from crm_backbone.access import NotInReach, Reach, in_reach, scope_filter
from crm_backbone.projection import Document, Handler, Projection, ViewUpdate

CUSTOMER_OWNERS = "customer_owners"

Event = Envelope[EventPayload]


class CustomerOwnersView(Projection):
    """Each customer's relationship manager and branch (``customer_owners``)."""

    name: ClassVar[str] = "customer_owners"
    topics: ClassVar[tuple[str, ...]] = (CUSTOMER_EVENTS.name,)

    def handlers(self) -> Mapping[str, Handler]:
        return {
            events.CustomerRegistered.event_type: self.registered,
            events.RelationshipManagerAssigned.event_type: self.assigned,
        }

    async def setup(self, database: AsyncDatabase[Document]) -> None:
        await database[CUSTOMER_OWNERS].create_indexes(
            [IndexModel([("manager_id", ASCENDING)]), IndexModel([("branch_id", ASCENDING)])]
        )

    def registered(self, e: Event) -> Iterator[ViewUpdate]:
        d = e.data
        assert isinstance(d, events.CustomerRegistered)
        yield _owners(e, {"branch_id": d.branch_id})

    def assigned(self, e: Event) -> Iterator[ViewUpdate]:
        d = e.data
        assert isinstance(d, events.RelationshipManagerAssigned)
        yield _owners(e, {"manager_id": d.manager_id, "branch_id": d.branch_id})


def _owners(e: Event, owners: Mapping[str, Any]) -> ViewUpdate:
    return ViewUpdate(CUSTOMER_OWNERS, e.aggregateid, {"$set": dict(owners)})


class CustomersInReach(Protocol):
    """Which customers a reach covers: :class:`CustomerBook`, or a fixed map in unit tests
    (:class:`crm_backbone.testing_identity.FixedCustomerBook`)."""

    async def scope(self, reach: Reach, field: str = "customer_id") -> dict[str, Any]: ...

    async def require(self, reach: Reach, customer_id: str, *, kind: str, key: str) -> None: ...


class CustomerBook:
    """Scopes a service's records of customers by the customers' owners."""

    def __init__(self, database: AsyncDatabase[Document]) -> None:
        self._owners = database[CUSTOMER_OWNERS]

    async def scope(self, reach: Reach, field: str = "customer_id") -> dict[str, Any]:
        """The MongoDB filter of the records whose ``field`` names a customer in reach
        (``{}``: every record); join it with a query's own filter with ``$and``."""
        owners_filter = scope_filter(reach)
        if not owners_filter:
            return {}
        customers = [doc["_id"] async for doc in self._owners.find(owners_filter, {"_id": 1})]
        return {field: {"$in": customers}}

    async def require(self, reach: Reach, customer_id: str, *, kind: str, key: str) -> None:
        """Raise :class:`NotInReach` (``no {kind} {key}``) unless ``customer_id`` is in
        reach: the record ``key`` that names it is then as good as missing."""
        if scope_filter(reach) == {}:
            return
        owners = await self._owners.find_one({"_id": customer_id})
        if owners is None or not in_reach(reach, owners):
            raise NotInReach(kind, key)
