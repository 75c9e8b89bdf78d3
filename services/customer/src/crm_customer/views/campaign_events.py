"""The campaign service's events: the campaigns a customer was targeted by, and how far
each went (delivered, opened, responded...)."""

from __future__ import annotations

from collections.abc import Iterator

from crm_backbone.projection import Handler, ViewUpdate
from crm_events import campaign as cmp
from crm_events.registry import EventPayload
from crm_events.topics import CAMPAIGN_EVENTS

from crm_customer.views.documents import Event, entry, flat, of_customer

TOPIC = CAMPAIGN_EVENTS


def campaign_started(e: Event) -> Iterator[ViewUpdate]:
    d = e.data
    assert isinstance(d, cmp.CampaignStarted)
    for target in d.targets:
        membership = {
            "campaign_id": e.aggregateid,
            "channel": target.channel,
            "segment": target.segment,
            "targeted_at": e.time,
        }
        yield of_customer(target.customer_id, e, {"$set": flat(entry("campaigns", e), membership)})


def campaign_response(e: Event) -> Iterator[ViewUpdate]:
    d = e.data
    assert isinstance(d, cmp.CampaignResponseRecorded)
    path = entry("campaigns", e)
    yield of_customer(
        d.customer_id,
        e,
        {
            "$set": {
                f"{path}.campaign_id": e.aggregateid,
                f"{path}.stages.{d.stage.value}": d.occurred_at,
                f"{path}.last_stage": d.stage.value,
            }
        },
    )


HANDLERS: dict[type[EventPayload], Handler] = {
    cmp.CampaignStarted: campaign_started,
    cmp.CampaignResponseRecorded: campaign_response,
}
