"""Core banking's customer events: KYC reviews.

Its master data changes do not touch the view here: the customer service's policy applies
them to the customer, whose ``CoreDataApplied`` event then updates the view.
"""

from __future__ import annotations

from collections.abc import Iterator

from crm_backbone.projection import Handler, ViewUpdate
from crm_events import core_banking as cb
from crm_events.registry import EventPayload
from crm_events.topics import COREBANKING_CUSTOMERS

from crm_customer.views.documents import Event, flat, of_subject

TOPIC = COREBANKING_CUSTOMERS


def kyc_updated(e: Event) -> Iterator[ViewUpdate]:
    d = e.data
    assert isinstance(d, cb.KycUpdated)
    yield of_subject(e, {"$set": flat("kyc", d.model_dump())})


HANDLERS: dict[type[EventPayload], Handler] = {
    cb.KycUpdated: kyc_updated,
}
