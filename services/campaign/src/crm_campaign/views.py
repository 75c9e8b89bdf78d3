"""The campaign service's read models in MongoDB.

``campaigns`` (view ``campaign_tracking``): one document per campaign, from its own events:
what it is, its status and schedule, targets and exclusions by reason, call lists.

``campaign_targets`` (same view): one document per campaign and target, holding the
target's channel, segment and manager from the frozen target list and, per response
stage, the first moment the target reached it (``$min``), plus the revenue attributed on
conversion. Funnel and daily figures are counted from these documents when read
(``queries.py``), so a response that arrives late, twice, or (were it possible) before
the target list still counts its (customer, stage) once, in the right day.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from bson.decimal128 import Decimal128
from crm_backbone.projection import Document, Handler, Projection, ViewUpdate
from crm_backbone.readmodel import field_key
from crm_events import campaign as cmp
from crm_events.envelope import Envelope
from crm_events.registry import EventPayload
from crm_events.topics import CAMPAIGN_EVENTS
from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

CAMPAIGNS = "campaigns"
TARGETS = "campaign_targets"
Event = Envelope[EventPayload]


def target_key(campaign_id: str, customer_id: str) -> str:
    """Id of a campaign's target document (campaign ids never contain ``|``)."""
    return f"{campaign_id}|{customer_id}"


class CampaignTracking(Projection):
    """Campaigns and their targets' responses."""

    name: ClassVar[str] = "campaign_tracking"
    topics: ClassVar[tuple[str, ...]] = (CAMPAIGN_EVENTS.name,)

    def handlers(self) -> Mapping[str, Handler]:
        typed: dict[type[EventPayload], Any] = {
            cmp.CampaignCreated: self.created,
            cmp.CampaignScheduled: self.scheduled,
            cmp.CampaignStarted: self.started,
            cmp.CallListAssigned: self.call_list_assigned,
            cmp.CampaignCompleted: self.completed,
            cmp.CampaignCancelled: self.cancelled,
            cmp.CampaignResponseRecorded: self.response_recorded,
        }
        return {model.event_type: handler for model, handler in typed.items()}

    async def setup(self, database: AsyncDatabase[Document]) -> None:
        await database[CAMPAIGNS].create_indexes(
            [
                IndexModel([("created_at", DESCENDING), ("_id", ASCENDING)]),
                IndexModel([("status", ASCENDING), ("created_at", DESCENDING)]),
            ]
        )
        await database[TARGETS].create_indexes(
            [IndexModel([("campaign_id", ASCENDING), ("channel", ASCENDING)])]
        )

    def created(self, e: Event) -> Iterator[ViewUpdate]:
        d = e.data
        assert isinstance(d, cmp.CampaignCreated)
        fields = d.model_dump(mode="json") | {"status": "draft", "created_at": e.time}
        yield _campaign(e, fields)

    def scheduled(self, e: Event) -> Iterator[ViewUpdate]:
        d = e.data
        assert isinstance(d, cmp.CampaignScheduled)
        yield _campaign(e, {"status": "scheduled", "starts_at": d.starts_at, "ends_at": d.ends_at})

    def started(self, e: Event) -> Iterator[ViewUpdate]:
        d = e.data
        assert isinstance(d, cmp.CampaignStarted)
        excluded = {reason.value: count for reason, count in d.excluded.items()}
        yield _campaign(
            e,
            {
                "status": "running",
                "started_at": e.time,
                "targeted": len(d.targets),
                "excluded": excluded,
            },
        )
        for target in d.targets:
            tier = target.segment.corporate_tier
            yield _target(
                e,
                target.customer_id,
                {
                    "$set": {
                        "targeted": True,
                        "channel": target.channel.value,
                        "value_band": target.segment.value_band.value,
                        "corporate_tier": tier.value if tier else None,
                        "manager_id": target.manager_id,
                    }
                },
            )

    def call_list_assigned(self, e: Event) -> Iterator[ViewUpdate]:
        d = e.data
        assert isinstance(d, cmp.CallListAssigned)
        call_list = {
            "manager_id": d.manager_id,
            "customers": len(d.customer_ids),
            "due_on": d.due_on.isoformat(),
        }
        yield _campaign(e, {f"call_lists.{field_key(d.manager_id)}": call_list})

    def completed(self, e: Event) -> Iterator[ViewUpdate]:
        d = e.data
        assert isinstance(d, cmp.CampaignCompleted)
        yield _campaign(e, {"status": "completed", "completed_at": d.completed_at})

    def cancelled(self, e: Event) -> Iterator[ViewUpdate]:
        d = e.data
        assert isinstance(d, cmp.CampaignCancelled)
        yield _campaign(
            e, {"status": "cancelled", "cancel_reason": d.reason, "cancelled_at": e.time}
        )

    def response_recorded(self, e: Event) -> Iterator[ViewUpdate]:
        d = e.data
        assert isinstance(d, cmp.CampaignResponseRecorded)
        update: Document = {"$min": {f"stages.{d.stage.value}": d.occurred_at}}
        if d.revenue is not None:
            update["$set"] = {
                "revenue": Decimal128(d.revenue.amount),
                "revenue_currency": d.revenue.currency,
            }
        if d.opportunity_id is not None:
            update.setdefault("$set", {})["opportunity_id"] = d.opportunity_id
        yield _target(e, d.customer_id, update)


def _campaign(e: Event, fields: dict[str, Any]) -> ViewUpdate:
    return ViewUpdate(CAMPAIGNS, e.aggregateid, {"$set": {"campaign_id": e.aggregateid, **fields}})


def _target(e: Event, customer_id: str, update: Document) -> ViewUpdate:
    ids = {"campaign_id": e.aggregateid, "customer_id": customer_id}
    update.setdefault("$set", {}).update(ids)
    return ViewUpdate(TARGETS, target_key(e.aggregateid, customer_id), update)
