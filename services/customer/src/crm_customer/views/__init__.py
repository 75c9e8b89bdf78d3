"""The customer service's read models in MongoDB, built from every stream.

``customers``: the single customer view, one document per customer id, composed from the
customer's own events, core banking's accounts and KYC, opportunities and needs,
contacts and tasks, and campaign targeting and responses. Each stream's handlers live in
a module of their own and touch only paths owned by their source (an account's fields,
an opportunity's, ...), so the document comes out the same whatever order the streams
arrive in relative to each other; within one aggregate the engine applies events in
version order.

``groups``: households and corporate groups with their members over time.

A merged duplicate keeps its own document, marked ``merged_into``; the read side folds
it into the survivor (``queries.py``), so events still naming the duplicate are not lost.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar, Protocol

from crm_backbone.projection import Document, Handler, Projection
from crm_events.registry import EventPayload
from crm_events.topics import Topic
from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from crm_customer.views import (
    campaign_events,
    contactlog_events,
    corebanking_accounts,
    corebanking_customers,
    customer_events,
    opportunity_events,
)
from crm_customer.views.documents import CUSTOMERS


class Stream(Protocol):
    """A module of this package: the handlers of the events on one topic."""

    TOPIC: Topic
    HANDLERS: dict[type[EventPayload], Handler]


STREAMS: tuple[Stream, ...] = (
    customer_events,
    corebanking_accounts,
    corebanking_customers,
    opportunity_events,
    contactlog_events,
    campaign_events,
)
"""The views' source streams, in the order the projection subscribes to them."""

SEARCH_FILTERS = ("manager_id", "branch_id", "segment.value_band", "status")
"""Fields a search filters on; each has an index with the stable sort after it."""


class CustomerViews(Projection):
    """Single customer view and household/group view."""

    name: ClassVar[str] = "customer_view"
    topics: ClassVar[tuple[str, ...]] = tuple(stream.TOPIC.name for stream in STREAMS)

    def handlers(self) -> Mapping[str, Handler]:
        return {
            model.event_type: handler
            for stream in STREAMS
            for model, handler in stream.HANDLERS.items()
        }

    async def setup(self, database: AsyncDatabase[Document]) -> None:
        by_name = [("search.name_key", ASCENDING), ("_id", ASCENDING)]
        await database[CUSTOMERS].create_indexes(
            [
                IndexModel(by_name),
                IndexModel([("search.names", ASCENDING)]),
                IndexModel([("search.phones", ASCENDING)]),
                IndexModel([("search.id_numbers", ASCENDING)]),
                *(IndexModel([(field, ASCENDING), *by_name]) for field in SEARCH_FILTERS),
                IndexModel([("merged_into", ASCENDING)], sparse=True),
                IndexModel([("merged_ids", ASCENDING)], sparse=True),
            ]
        )
