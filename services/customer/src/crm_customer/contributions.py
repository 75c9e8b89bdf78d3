"""The ``contributions`` read model: each customer's monthly revenue, cost and contribution
as management accounting last stated them, one document per statement (``<customer
id>:<YYYY-MM>``, ``crm_events.management_accounting``).

A restatement is a later version of the same statement carrying every figure again, so the
document holds the latest version whatever the order of arrival (the engine drops an
older one). No personal data: customers are named by id only.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import ClassVar

from crm_backbone.projection import Document, Handler, Projection, ViewUpdate
from crm_events import management_accounting as mis
from crm_events.envelope import Envelope
from crm_events.registry import EventPayload
from crm_events.topics import MIS_CONTRIBUTION
from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

CONTRIBUTIONS = "contributions"
"""One document per customer and month."""


def contribution_reported(e: Envelope[EventPayload]) -> Iterator[ViewUpdate]:
    d = e.data
    assert isinstance(d, mis.ContributionReported)
    yield ViewUpdate(
        CONTRIBUTIONS, e.aggregateid, {"$set": d.model_dump(mode="json") | {"stated_at": e.time}}
    )


class ContributionsView(Projection):
    """Monthly contribution per customer."""

    name: ClassVar[str] = "contribution"
    topics: ClassVar[tuple[str, ...]] = (MIS_CONTRIBUTION.name,)

    def handlers(self) -> Mapping[str, Handler]:
        return {mis.ContributionReported.event_type: contribution_reported}

    async def setup(self, database: AsyncDatabase[Document]) -> None:
        await database[CONTRIBUTIONS].create_indexes(
            [
                IndexModel([("customer_id", ASCENDING), ("month", ASCENDING)]),
                IndexModel([("month", DESCENDING)]),
            ]
        )
