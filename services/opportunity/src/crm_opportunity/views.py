"""The opportunity service's read models in MongoDB, built from its own stream.

One document per aggregate, touched only by that aggregate's events (which the engine
applies in version order, once each), so each document comes out the same whatever order
the aggregates' streams interleave in. Figures across documents (the pipeline, the lead
queue, the SLA board) are computed when asked (``queries.py``), never kept as counters.

``opportunities``: stage, probability, expected value (a Decimal128, exact in
aggregations), manager, branch, products, and ``stages_reached``: the funnel stages the
opportunity has passed, skipped ones included (a forward move passes through them), plus
``closed_lost`` if it was lost.

``leads``: status, branch, source, manager, and when it was captured.

``needs``: kind, severity, urgency, status and sub-status, owner, SLA due time; ``open``
while the bank is working on it (the SLA clock runs).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from bson.decimal128 import Decimal128
from crm_backbone.projection import Document, Handler, Projection, ViewUpdate
from crm_events import opportunity as op
from crm_events.common import Money
from crm_events.envelope import Envelope
from crm_events.registry import EventPayload
from crm_events.topics import OPPORTUNITY_EVENTS
from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from crm_opportunity.domain.lead import LeadStatus
from crm_opportunity.domain.need import ACTIVE_NEEDS
from crm_opportunity.domain.opportunity import CLOSED, stages_passed

OPPORTUNITIES = "opportunities"
LEADS = "leads"
NEEDS = "needs"
LEAD_QUEUE_ORDER = [("captured_at", ASCENDING), ("_id", ASCENDING)]
"""Oldest lead first; also the tail of the lead queue's index."""

Event = Envelope[EventPayload]


def money(path: str, value: Money) -> Document:
    """``$set`` paths of an amount: an exact Decimal128 (for aggregations) and its currency."""
    return {f"{path}.amount": Decimal128(value.amount), f"{path}.currency": value.currency}


class OpportunityViews(Projection):
    """Opportunities (for the pipeline), leads (for the queues), needs (for the SLA board)."""

    name: ClassVar[str] = "opportunity_view"
    topics: ClassVar[tuple[str, ...]] = (OPPORTUNITY_EVENTS.name,)

    def handlers(self) -> Mapping[str, Handler]:
        typed: dict[type[EventPayload], Any] = {
            op.LeadCaptured: self.lead_captured,
            op.LeadQualified: self.lead_qualified,
            op.LeadAssigned: self.lead_assigned,
            op.LeadConverted: self.lead_converted,
            op.LeadDisqualified: self.lead_disqualified,
            op.OpportunityCreated: self.opportunity_created,
            op.OpportunityStageChanged: self.stage_changed,
            op.OpportunityProbabilityOverridden: self.probability_overridden,
            op.OpportunityExpectedValueChanged: self.expected_value_changed,
            op.OpportunityReassigned: self.reassigned,
            op.NeedLogged: self.need_logged,
            op.NeedAssigned: self.need_assigned,
            op.NeedStatusChanged: self.need_status_changed,
            op.NeedResolved: self.need_resolved,
            op.NeedResolutionConfirmed: self.need_ended,
        }
        return {model.event_type: handler for model, handler in typed.items()}

    async def setup(self, database: AsyncDatabase[Document]) -> None:
        await database[OPPORTUNITIES].create_indexes(
            [
                IndexModel([(field, ASCENDING), ("stage", ASCENDING)])
                for field in ("manager_id", "branch_id", "products")
            ]
        )
        await database[LEADS].create_indexes(
            [IndexModel([("branch_id", ASCENDING), ("open", ASCENDING), *LEAD_QUEUE_ORDER])]
        )
        await database[NEEDS].create_indexes(
            [IndexModel([("kind", ASCENDING), ("open", ASCENDING), ("sla_due_at", ASCENDING)])]
        )

    # Leads ------------------------------------------------------------------------------

    def lead_captured(self, e: Event) -> Iterator[ViewUpdate]:
        d = e.data
        assert isinstance(d, op.LeadCaptured)
        lead = d.model_dump(mode="json")
        yield self._lead(
            e,
            lead | {"status": LeadStatus.CAPTURED.value, "open": True, "captured_at": e.time},
        )

    def lead_qualified(self, e: Event) -> Iterator[ViewUpdate]:
        d = e.data
        assert isinstance(d, op.LeadQualified)
        yield self._lead(
            e,
            {
                "status": LeadStatus.QUALIFIED.value,
                "customer_id": d.customer_id,
                "qualified_at": e.time,
            },
        )

    def lead_assigned(self, e: Event) -> Iterator[ViewUpdate]:
        d = e.data
        assert isinstance(d, op.LeadAssigned)
        yield self._lead(e, {"manager_id": d.manager_id, "assigned_at": e.time})

    def lead_converted(self, e: Event) -> Iterator[ViewUpdate]:
        d = e.data
        assert isinstance(d, op.LeadConverted)
        yield self._lead(
            e,
            {
                "status": LeadStatus.CONVERTED.value,
                "open": False,
                "opportunity_id": d.opportunity_id,
                "closed_at": e.time,
            },
        )

    def lead_disqualified(self, e: Event) -> Iterator[ViewUpdate]:
        d = e.data
        assert isinstance(d, op.LeadDisqualified)
        yield self._lead(
            e,
            {
                "status": LeadStatus.DISQUALIFIED.value,
                "open": False,
                "disqualified_reason": d.reason,
                "closed_at": e.time,
            },
        )

    # Opportunities ----------------------------------------------------------------------

    def opportunity_created(self, e: Event) -> Iterator[ViewUpdate]:
        d = e.data
        assert isinstance(d, op.OpportunityCreated)
        fields = d.model_dump(mode="json", exclude={"expected_value", "stage"})
        yield self._opportunity(
            e,
            fields
            | self._stage(d.stage)
            | money("expected_value", d.expected_value)
            | {"created_at": e.time},
            d.stage,
        )

    def stage_changed(self, e: Event) -> Iterator[ViewUpdate]:
        d = e.data
        assert isinstance(d, op.OpportunityStageChanged)
        fields = {
            "probability": d.probability,
            "probability_reason": None,
            "lost_reason": d.lost_reason,
        }
        yield self._opportunity(e, fields | self._stage(d.stage) | {"stage_since": e.time}, d.stage)

    def probability_overridden(self, e: Event) -> Iterator[ViewUpdate]:
        d = e.data
        assert isinstance(d, op.OpportunityProbabilityOverridden)
        yield self._opportunity(e, {"probability": d.probability, "probability_reason": d.reason})

    def expected_value_changed(self, e: Event) -> Iterator[ViewUpdate]:
        d = e.data
        assert isinstance(d, op.OpportunityExpectedValueChanged)
        yield self._opportunity(e, money("expected_value", d.expected_value))

    def reassigned(self, e: Event) -> Iterator[ViewUpdate]:
        d = e.data
        assert isinstance(d, op.OpportunityReassigned)
        yield self._opportunity(e, {"manager_id": d.manager_id})

    # Needs ------------------------------------------------------------------------------

    def need_logged(self, e: Event) -> Iterator[ViewUpdate]:
        d = e.data
        assert isinstance(d, op.NeedLogged)
        need = d.model_dump(mode="json", exclude={"content", "started_at", "sla_due_at"})
        yield self._need(
            e,
            need
            | {
                "started_at": d.started_at,
                "sla_due_at": d.sla_due_at,
                "status": op.NeedStatus.OPEN.value,
                "open": True,
            },
        )

    def need_assigned(self, e: Event) -> Iterator[ViewUpdate]:
        d = e.data
        assert isinstance(d, op.NeedAssigned)
        yield self._need(e, {"owner_id": d.manager_id})

    def need_status_changed(self, e: Event) -> Iterator[ViewUpdate]:
        d = e.data
        assert isinstance(d, op.NeedStatusChanged)
        yield self._need(
            e,
            {
                "status": d.status.value,
                "sub_status": d.sub_status,
                "open": d.status in ACTIVE_NEEDS,
            },
        )

    def need_resolved(self, e: Event) -> Iterator[ViewUpdate]:
        d = e.data
        assert isinstance(d, op.NeedResolved)
        yield self._need(
            e,
            {
                "status": op.NeedStatus.RESOLVED.value,
                "sub_status": None,
                "open": False,
                "resolution": d.resolution,
                "resolved_at": d.resolved_at,
            },
        )

    def need_ended(self, e: Event) -> Iterator[ViewUpdate]:
        d = e.data
        assert isinstance(d, op.NeedResolutionConfirmed)
        yield self._need(
            e,
            {
                "status": op.NeedStatus.CONFIRMED.value,
                "open": False,
                "satisfied": d.satisfied,
                "feedback": d.feedback,
                "ended_at": d.ended_at,
            },
        )

    # Helpers ----------------------------------------------------------------------------

    @staticmethod
    def _stage(stage: op.OpportunityStage) -> Document:
        return {"stage": stage.value, "open": stage not in CLOSED}

    @staticmethod
    def _opportunity(
        e: Event, fields: Document, stage: op.OpportunityStage | None = None
    ) -> ViewUpdate:
        update: Document = {
            "$set": fields | {"opportunity_id": e.aggregateid},
            "$max": {"updated_at": e.time},
        }
        if stage is not None:
            update["$addToSet"] = {
                "stages_reached": {"$each": [s.value for s in stages_passed(stage)]}
            }
        return ViewUpdate(OPPORTUNITIES, e.aggregateid, update)

    @staticmethod
    def _lead(e: Event, fields: Document) -> ViewUpdate:
        update = {"$set": fields | {"lead_id": e.aggregateid}, "$max": {"updated_at": e.time}}
        return ViewUpdate(LEADS, e.aggregateid, update)

    @staticmethod
    def _need(e: Event, fields: Document) -> ViewUpdate:
        update = {"$set": fields | {"need_id": e.aggregateid}, "$max": {"updated_at": e.time}}
        return ViewUpdate(NEEDS, e.aggregateid, update)
