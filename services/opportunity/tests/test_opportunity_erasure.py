"""What the opportunity view writes of a person, forgotten on their erasure: each free text
and name the events carry, written by the view's handlers, is gone once the service's
``PERSONAL_PATHS`` are applied to the customer's documents (MongoDB's operators applied in
memory)."""

from __future__ import annotations

from typing import Any

from crm_backbone.testing_updates import apply_update
from crm_events import opportunity as op
from crm_events.envelope import Envelope
from crm_events.registry import EventPayload
from crm_events.topics import Service
from crm_opportunity.erasure import PERSONAL_PATHS
from crm_opportunity.views import OpportunityViews

CUSTOMER = "C-ERASED"
TRACE = "Wenxiu"


def envelope(payload: EventPayload, aggregate: str, version: int) -> Envelope[EventPayload]:
    return Envelope.new(payload, aggregate, version, "rm-1", Service.OPPORTUNITY.source)


def views_of(events: list[Envelope[EventPayload]]) -> dict[tuple[str, str], dict[str, Any]]:
    """The documents the view's handlers write for ``events``, by (collection, id)."""
    handlers = OpportunityViews().handlers()
    documents: dict[tuple[str, str], dict[str, Any]] = {}
    for event in events:
        for update in handlers[event.type](event):
            place = (update.collection, update.document_id)
            documents[place] = apply_update(documents.get(place), update.update)
    return documents


def forget(documents: dict[tuple[str, str], dict[str, Any]]) -> None:
    for paths in PERSONAL_PATHS:
        where, update, entries = paths.forgetting(CUSTOMER)
        assert entries is None
        for (collection, document_id), document in documents.items():
            if collection == paths.collection and all(
                document.get(field) == value for field, value in where.items()
            ):
                documents[(collection, document_id)] = apply_update(document, update)


def test_a_disqualified_lead_of_the_customer_forgets_why() -> None:
    captured = op.LeadCaptured(
        customer_id=CUSTOMER,
        contact_name=f"Ms {TRACE}",
        source=op.LeadSource.WALK_IN,
        branch_id="BR-001",
        notes=f"{TRACE} asked about a loan",
    )
    disqualified = op.LeadDisqualified(reason=f"{TRACE} already has a loan elsewhere")
    documents = views_of([envelope(captured, "LEAD-1", 1), envelope(disqualified, "LEAD-1", 2)])
    assert TRACE in str(documents)

    forget(documents)

    assert TRACE not in str(documents)
    assert documents[("leads", "LEAD-1")]["status"] == "disqualified"
