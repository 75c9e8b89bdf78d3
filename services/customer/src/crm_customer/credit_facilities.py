"""The ``credit_facilities`` read model: every credit facility as the credit system last
stated it, one document per facility id (``crm_events.credit``).

Each event carries the whole facility after it, so its handler sets every figure: the
engine applies a facility's versions in order and drops one older than what the view
holds (a late or redelivered event), so the document is the latest statement whatever the
order of arrival. Exposure per customer and per group is computed from these documents
when read (``exposure.py``, ``analysis_queries.py``). No personal data: customers are
named by id only, so an erasure has nothing to forget here.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import date
from decimal import Decimal
from typing import Any, ClassVar

from crm_backbone.projection import Document, Handler, Projection, ViewUpdate
from crm_events import credit as cr
from crm_events.envelope import Envelope
from crm_events.registry import EventPayload
from crm_events.topics import CREDIT_FACILITIES
from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from crm_customer.exposure import Facility

FACILITIES = "credit_facilities"
"""One document per facility id."""
BORROWER = "customer_id"
GUARANTORS = "guarantor_ids"


def facility_stated(e: Envelope[EventPayload]) -> Iterator[ViewUpdate]:
    d = e.data
    assert isinstance(d, cr.FacilityTerms)
    state = d.model_dump(mode="json", include=set(cr.FacilityTerms.model_fields)) | {
        "facility_id": e.aggregateid,
        GUARANTORS: [g.guarantor_customer_id for g in d.guarantees],
        "last_event": e.type,
        "stated_at": e.time,
    }
    yield ViewUpdate(FACILITIES, e.aggregateid, {"$set": state})


def facility_of(document: Mapping[str, Any]) -> Facility:
    """The domain's facility from its document."""
    return Facility(
        facility_id=document["facility_id"],
        borrower_id=document[BORROWER],
        facility_type=document["facility_type"],
        currency=document["currency"],
        limit=Decimal(document["limit"]),
        drawn=Decimal(document["drawn"]),
        maturity_date=date.fromisoformat(document["maturity_date"]),
        open=document["status"] == cr.FacilityStatus.OPEN,
        guarantees={
            g["guarantor_customer_id"]: Decimal(g["amount"]) for g in document["guarantees"]
        },
    )


class CreditFacilitiesView(Projection):
    """Credit facilities with their borrowers and guarantors."""

    name: ClassVar[str] = "credit_exposure"
    topics: ClassVar[tuple[str, ...]] = (CREDIT_FACILITIES.name,)

    def handlers(self) -> Mapping[str, Handler]:
        return dict.fromkeys(CREDIT_FACILITIES.event_types(), facility_stated)

    async def setup(self, database: AsyncDatabase[Document]) -> None:
        await database[FACILITIES].create_indexes(
            [IndexModel([(BORROWER, ASCENDING)]), IndexModel([(GUARANTORS, ASCENDING)])]
        )
