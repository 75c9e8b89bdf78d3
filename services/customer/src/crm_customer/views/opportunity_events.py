"""The opportunity service's events: a customer's opportunities and needs, and the ids of
the leads captured for it or qualified into it (erasure destroys their keys too).

An opportunity's entry keeps its figures and stage, none of its free texts (description,
reasons, contacts): the single view shows none, and an entry's paths are keyed by
opportunity, which the customer's erased event does not name. A need's summary is kept
(the erased customer's ``needs`` are removed whole)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from crm_backbone.projection import Handler, ViewUpdate
from crm_events import opportunity as op
from crm_events.registry import EventPayload
from crm_events.topics import OPPORTUNITY_EVENTS

from crm_customer.views.documents import Event, entry, flat, of_customer

CLOSED_STAGES = (op.OpportunityStage.CLOSED_WON, op.OpportunityStage.CLOSED_LOST)

TOPIC = OPPORTUNITY_EVENTS


def opportunity_created(e: Event) -> Iterator[ViewUpdate]:
    d = e.data
    assert isinstance(d, op.OpportunityCreated)
    fields = d.model_dump(
        include={
            "title",
            "stage",
            "probability",
            "expected_value",
            "expected_close_date",
            "manager_id",
            "products",
            "branch_id",
        }
    )
    opportunity = fields | {
        "opportunity_id": e.aggregateid,
        "open": d.stage not in CLOSED_STAGES,
    }
    yield of_customer(d.customer_id, e, {"$set": flat(entry("opportunities", e), opportunity)})


def opportunity_stage_changed(e: Event) -> Iterator[ViewUpdate]:
    d = e.data
    assert isinstance(d, op.OpportunityStageChanged)
    fields = {
        "opportunity_id": e.aggregateid,
        "stage": d.stage,
        "probability": d.probability,
        "open": d.stage not in CLOSED_STAGES,
        "stage_since": e.time,
    }
    yield of_customer(d.customer_id, e, {"$set": flat(entry("opportunities", e), fields)})


def opportunity_changed(e: Event) -> Iterator[ViewUpdate]:
    d = e.data
    assert isinstance(
        d,
        op.OpportunityProbabilityOverridden
        | op.OpportunityExpectedValueChanged
        | op.OpportunityReassigned,
    )
    fields = d.model_dump(include={"probability", "expected_value", "manager_id"})
    yield of_customer(d.customer_id, e, {"$set": flat(entry("opportunities", e), fields)})


def need_logged(e: Event) -> Iterator[ViewUpdate]:
    d = e.data
    assert isinstance(d, op.NeedLogged)
    need = d.model_dump(exclude={"customer_id", "content"}) | {
        "need_id": e.aggregateid,
        "status": op.NeedStatus.OPEN,
    }
    yield of_customer(d.customer_id, e, {"$set": flat(entry("needs", e), need)})


def need_changed(e: Event) -> Iterator[ViewUpdate]:
    d = e.data
    assert isinstance(d, op.NeedAssigned | op.NeedStatusChanged | op.NeedResolved)
    if isinstance(d, op.NeedAssigned):
        fields: dict[str, Any] = {"owner_id": d.manager_id}
    elif isinstance(d, op.NeedStatusChanged):
        fields = {"status": d.status, "sub_status": d.sub_status}
    else:
        fields = {"status": op.NeedStatus.RESOLVED, "resolved_at": d.resolved_at}
    yield of_customer(d.customer_id, e, {"$set": flat(entry("needs", e), fields)})


def need_ended(e: Event) -> Iterator[ViewUpdate]:
    d = e.data
    assert isinstance(d, op.NeedResolutionConfirmed)
    yield of_customer(d.customer_id, e, {"$unset": {entry("needs", e): ""}})


def lead_named(e: Event) -> Iterator[ViewUpdate]:
    d = e.data
    assert isinstance(d, op.LeadCaptured | op.LeadQualified)
    if d.customer_id is not None:
        yield of_customer(d.customer_id, e, {"$addToSet": {"lead_ids": e.aggregateid}})


HANDLERS: dict[type[EventPayload], Handler] = {
    op.LeadCaptured: lead_named,
    op.LeadQualified: lead_named,
    op.OpportunityCreated: opportunity_created,
    op.OpportunityStageChanged: opportunity_stage_changed,
    op.OpportunityProbabilityOverridden: opportunity_changed,
    op.OpportunityExpectedValueChanged: opportunity_changed,
    op.OpportunityReassigned: opportunity_changed,
    op.NeedLogged: need_logged,
    op.NeedAssigned: need_changed,
    op.NeedStatusChanged: need_changed,
    op.NeedResolved: need_changed,
    op.NeedResolutionConfirmed: need_ended,
}
