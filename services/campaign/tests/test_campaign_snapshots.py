"""A campaign restored from a snapshot, at any point of any command sequence, is the
campaign replayed from its events and answers later commands as it does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from crm_backbone.snapshot_check import Command, check_snapshots
from crm_campaign.application import CampaignApplication
from crm_campaign.domain import Campaign
from crm_events.campaign import ResponseStage
from crm_events.common import Channel
from hypothesis import given, settings
from hypothesis import strategies as st

MAPPER = CampaignApplication(env={"PERSISTENCE_MODULE": "eventsourcing.popo"}).mapper
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)

customers = st.sampled_from(["C1", "C2", "C3", "C9"])
moments = st.builds(lambda days: T0 + timedelta(days=days), st.integers(-1, 40))
money = st.none() | st.just({"amount": "500.00", "currency": "CNY"})


def command(name: str, **arguments: st.SearchStrategy[Any]) -> st.SearchStrategy[Command]:
    return st.tuples(st.just(name), st.fixed_dictionaries(arguments))


def campaign() -> Campaign:
    return Campaign.create(
        "CMP-1",
        {
            "name": "Spring wealth growth",
            "kind": "sms",
            "description": None,
            "products": ["WM-GROWTH"],
            "channels": ["sms", "email", "phone"],
            "target_segments": [{"value_band": "high", "corporate_tier": None}],
            "criteria": {},
            "owner_manager_ids": ["RM-OWNER"],
            "budget": {"amount": "10000.00", "currency": "CNY"},
            "planned_start": "2026-03-01",
            "planned_end": "2026-03-31",
            "attribution_window_days": 30,
        },
    )


def target(customer_id: str, channel: str, manager_id: str | None) -> dict[str, Any]:
    return {
        "customer_id": customer_id,
        "channel": channel,
        "segment": {"value_band": "high"},
        "manager_id": manager_id,
    }


targets = st.lists(
    st.builds(
        target,
        st.sampled_from(["C1", "C2", "C3"]),
        st.sampled_from(["sms", "email", "phone", "branch"]),
        st.none() | st.sampled_from(["RM-1", "RM-2"]),
    ),
    max_size=3,
)

COMMANDS = st.one_of(
    command("schedule", starts_at=moments, ends_at=moments),
    command(
        "start",
        targets=targets,
        excluded=st.dictionaries(st.sampled_from(["opted_out", "dormant"]), st.integers(0, 3)),
        now=moments,
    ),
    command("complete", now=moments),
    command("cancel", reason=st.just("budget cut")),
    command(
        "record_response",
        customer_id=customers,
        channel=st.sampled_from(list(Channel)),
        stage=st.sampled_from(list(ResponseStage)),
        occurred_at=moments,
        revenue=money,
    ),
    command(
        "attribute_conversion",
        customer_id=customers,
        occurred_at=moments,
        revenue=money,
        product_code=st.none() | st.sampled_from(["WM-GROWTH", "OTHER"]),
    ),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(COMMANDS, max_size=25))
def test_a_campaign_round_trips_through_a_snapshot(commands: list[Command]) -> None:
    check_snapshots(MAPPER, campaign, commands)
