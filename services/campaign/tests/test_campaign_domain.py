"""Rules of the campaign aggregate and the commands of the application (in-memory store)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from crm_backbone.access import SERVICE_REACHES, ServiceRole
from crm_backbone.application import StaleVersion
from crm_backbone.context import command_context
from crm_campaign.application import CampaignApplication, CampaignNotFound
from crm_campaign.domain import (
    MAX_TARGET_LIST_BYTES,
    STATUS_TRANSITIONS,
    Campaign,
    CampaignStatus,
    Conflict,
    InvalidTransition,
    NotStarted,
    NotTargeted,
    RuleViolation,
    TargetListTooLarge,
)
from crm_campaign.publication import translate
from crm_campaign.targeting import Criteria, Profile, Selection, select_targets
from crm_events.campaign import ResponseStage, Segment
from crm_events.common import Channel, ValueBand
from hypothesis import given
from hypothesis import strategies as st

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
CRM = SERVICE_REACHES[ServiceRole.CRM_SERVICE]
"""The reach of the CRM's own services: they manage every campaign."""
MONEY = {"amount": "80000.00", "currency": "CNY"}


def draft(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
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
    }
    return fields | overrides


def target(
    customer_id: str, channel: str = "sms", manager_id: str | None = "RM-1"
) -> dict[str, Any]:
    return {
        "customer_id": customer_id,
        "channel": channel,
        "segment": {"value_band": "high"},
        "manager_id": manager_id,
    }


TARGETS = [
    target("C1"),
    target("C2", "email"),
    target("C3", "phone", "RM-1"),
    target("C4", "phone", "RM-2"),
    target("C5", "phone", None),
]


@pytest.fixture
def app() -> CampaignApplication:
    return CampaignApplication(env={"PERSISTENCE_MODULE": "eventsourcing.popo"}, clock=lambda: T0)


def running(app: CampaignApplication, campaign_id: str = "CMP-1", **overrides: Any) -> str:
    app.create(campaign_id, draft(**overrides), reach=CRM)
    app.schedule(campaign_id, None, T0, T0 + timedelta(days=30), reach=CRM)
    app.start_with(campaign_id, None, Selection(TARGETS, {"opted_out": 2}), reach=CRM)
    return campaign_id


def sent(app: CampaignApplication, customer: str, stage: ResponseStage, message: str) -> bool:
    channel = Channel(app.get("CMP-1").targets[customer]["channel"])
    return app.record_gateway_response("CMP-1", customer, channel, stage, T0, message)


COMMANDS = ["schedule", "start", "complete", "cancel"]
WANTS = {
    "schedule": CampaignStatus.SCHEDULED,
    "start": CampaignStatus.RUNNING,
    "complete": CampaignStatus.COMPLETED,
    "cancel": CampaignStatus.CANCELLED,
}


@given(st.lists(st.sampled_from(COMMANDS), max_size=8))
def test_the_lifecycle_only_moves_along_allowed_transitions(commands: list[str]) -> None:
    campaign = Campaign.create("CMP-1", draft())
    runs: dict[str, Callable[[], None]] = {
        "schedule": lambda: campaign.schedule(T0, T0 + timedelta(days=1)),
        "start": lambda: campaign.start(TARGETS, {}, T0),
        "complete": lambda: campaign.complete(T0),
        "cancel": lambda: campaign.cancel("budget cut"),
    }
    for command in commands:
        before, wanted = campaign.status, WANTS[command]
        if wanted in STATUS_TRANSITIONS[before]:
            runs[command]()
            assert campaign.status is wanted
        else:
            with pytest.raises(InvalidTransition):
                runs[command]()
            assert campaign.status is before


def test_every_event_translates_to_a_valid_payload_carrying_the_actor(
    app: CampaignApplication,
) -> None:
    with command_context("rm-0042", "flow-1"):
        running(app)
        sent(app, "C1", ResponseStage.SENT, "M1")
        sent(app, "C1", ResponseStage.OPTED_OUT, "M1")
        app.attribute_conversion("CMP-1", "C2", occurred_at=T0 + timedelta(days=1), revenue=MONEY)
        app.complete("CMP-1", None, reach=CRM)
        app.create("CMP-2", draft(), reach=CRM)
        app.cancel("CMP-2", None, "duplicate of CMP-1", reach=CRM)
    notifications = app.recorder.select_notifications(None, 100)
    events: list[Any] = [app.mapper.to_domain_event(n) for n in notifications]
    payloads = [translate(e) for e in events]
    assert all(p is not None for p in payloads)
    assert {p.event_type for p in payloads if p} == {
        "crm.campaign.created",
        "crm.campaign.scheduled",
        "crm.campaign.started",
        "crm.campaign.call_list_assigned",
        "crm.campaign.response_recorded",
        "crm.campaign.opt_out_requested",
        "crm.campaign.completed",
        "crm.campaign.cancelled",
    }
    assert {e.actor for e in events} == {"rm-0042"}
    assert {e.subject for e in events} == {"CMP-1", "CMP-2"}


def test_creation_rules(app: CampaignApplication) -> None:
    app.create("CMP-1", draft(), reach=CRM)
    with pytest.raises(Conflict, match="already exists"):
        app.create("CMP-1", draft(), reach=CRM)
    wrongs: list[dict[str, Any]] = [
        {"channels": []},
        {"owner_manager_ids": []},
        {"channels": ["sms", "sms"]},
        {"planned_end": "2026-02-01"},
        {"attribution_window_days": 0},
        {"budget": {"amount": "-1", "currency": "CNY"}},
    ]
    for wrong in wrongs:
        with pytest.raises(RuleViolation):
            Campaign.create("CMP-X", draft(**wrong))


def test_a_stale_expected_version_is_refused_and_nothing_is_written(
    app: CampaignApplication,
) -> None:
    app.create("CMP-1", draft(), reach=CRM)
    version = app.schedule("CMP-1", 1, T0, T0 + timedelta(days=1), reach=CRM)
    with pytest.raises(StaleVersion) as refused:
        app.schedule("CMP-1", 1, T0, T0 + timedelta(days=2), reach=CRM)
    assert refused.value.current == version
    assert app.get("CMP-1").ends_at == (T0 + timedelta(days=1)).isoformat()
    with pytest.raises(CampaignNotFound):
        app.complete("CMP-404", None, reach=CRM)


def test_the_start_freezes_the_list_and_hands_call_lists_to_managers(
    app: CampaignApplication,
) -> None:
    running(app)
    campaign = app.get("CMP-1")
    assert campaign.status is CampaignStatus.RUNNING
    assert sorted(campaign.targets) == ["C1", "C2", "C3", "C4", "C5"]
    assert campaign.excluded == {"opted_out": 2}
    # Phone targets by manager; the one without a manager goes to the first owner.
    assert campaign.call_lists == {"RM-1": 1, "RM-2": 1, "RM-OWNER": 1}
    assert campaign.window() == (T0, T0 + timedelta(days=30))


class FixedAudience:
    def __init__(self, profiles: list[Profile]) -> None:
        self.given = profiles

    async def profiles(self, segments: Sequence[Segment], criteria: Criteria) -> list[Profile]:
        return self.given


audiences = st.lists(
    st.builds(
        Profile,
        customer_id=st.sampled_from([f"C{n}" for n in range(12)]),
        status=st.just("active"),
        value_band=st.sampled_from(["high", "low"]),
        corporate_tier=st.none(),
        branch_id=st.just("BR-001"),
        manager_id=st.none() | st.sampled_from(["RM-1", "RM-2"]),
        preferred_channel=st.none() | st.sampled_from(["sms", "email", "phone"]),
        contacts=st.frozensets(st.sampled_from(["phone", "email"])),
    ),
    unique_by=lambda profile: profile.customer_id,
    max_size=12,
)


@given(audiences)
def test_the_start_selects_by_the_campaigns_targeting_and_answers_what_it_holds(
    profiles: list[Profile],
) -> None:
    app = CampaignApplication(env={"PERSISTENCE_MODULE": "eventsourcing.popo"}, clock=lambda: T0)
    app.create("CMP-1", draft(), reach=CRM)
    app.schedule("CMP-1", None, T0, T0 + timedelta(days=30), reach=CRM)
    channels = [Channel.SMS, Channel.EMAIL, Channel.PHONE]  # the draft's, in its order
    expected = select_targets([Segment(value_band=ValueBand.HIGH)], Criteria(), channels, profiles)
    start = app.start("CMP-1", None, FixedAudience(profiles), reach=CRM)
    if not expected.targets:
        with pytest.raises(RuleViolation, match="no customer"):
            asyncio.run(start)
        assert app.get("CMP-1").status is CampaignStatus.SCHEDULED
        return
    started = asyncio.run(start)
    campaign = app.get("CMP-1")
    assert list(campaign.targets.values()) == expected.targets
    assert (started.targeted, started.excluded) == (len(expected.targets), expected.excluded)
    assert started.version == campaign.version
    assert started.call_lists == campaign.call_lists
    on_call_lists = [t for t in expected.targets if t["channel"] == "phone"]
    assert sum(started.call_lists.values()) == len(on_call_lists)


def test_a_campaign_the_caller_did_not_name_gets_an_id_from_the_application() -> None:
    app = CampaignApplication(
        env={"PERSISTENCE_MODULE": "eventsourcing.popo"}, new_id=lambda prefix: f"{prefix}-7"
    )
    assert app.create(None, draft(), reach=CRM) == ("CMP-7", 1)
    assert app.get("CMP-7").name == "Spring wealth growth"


def test_the_start_refuses_bad_target_lists(app: CampaignApplication) -> None:
    app.create("CMP-1", draft(channels=["sms"]), reach=CRM)
    with pytest.raises(InvalidTransition):
        app.start_with("CMP-1", None, Selection(TARGETS, {}), reach=CRM)
    app.schedule("CMP-1", None, T0, T0 + timedelta(days=1), reach=CRM)
    for targets, why in (
        ([], "no customer"),
        ([target("C1"), target("C1")], "twice"),
        ([target("C1", "email")], "not the campaign's"),
    ):
        with pytest.raises(RuleViolation, match=why):
            app.start_with("CMP-1", None, Selection(targets, {}), reach=CRM)
    huge = [target(f"C{n:09d}", manager_id=f"RM-{n:05d}") for n in range(9_000)]
    with pytest.raises(TargetListTooLarge) as too_large:
        app.start_with("CMP-1", None, Selection(huge, {}), reach=CRM)
    assert too_large.value.size > MAX_TARGET_LIST_BYTES
    assert app.get("CMP-1").status is CampaignStatus.SCHEDULED


def test_each_target_reaches_each_stage_once(app: CampaignApplication) -> None:
    running(app)
    assert sent(app, "C1", ResponseStage.SENT, "M1")
    assert not sent(app, "C1", ResponseStage.SENT, "M1")  # the same report again
    assert not sent(app, "C1", ResponseStage.SENT, "M1-reminder")  # another message
    assert sent(app, "C1", ResponseStage.DELIVERED, "M1")
    version = app.get("CMP-1").version
    recorded, same = app.record_response(
        "CMP-1",
        None,
        customer_id="C1",
        channel=Channel.SMS,
        stage=ResponseStage.DELIVERED,
        occurred_at=T0,
    )
    assert (recorded, same) == (False, version)
    assert app.get("CMP-1").reached == {"C1": ["sent", "delivered"]}
    with pytest.raises(NotTargeted):
        app.record_gateway_response("CMP-1", "C9", Channel.SMS, ResponseStage.SENT, T0, "M9")
    with pytest.raises(RuleViolation, match="conversion only"):
        app.record_response(
            "CMP-1",
            None,
            customer_id="C1",
            channel=Channel.SMS,
            stage=ResponseStage.RESPONDED,
            occurred_at=T0,
            revenue=MONEY,
        )


def test_responses_need_a_started_campaign_and_outlive_its_end(app: CampaignApplication) -> None:
    app.create("CMP-1", draft(), reach=CRM)
    app.schedule("CMP-1", None, T0, T0 + timedelta(days=1), reach=CRM)
    with pytest.raises(NotStarted):
        app.record_gateway_response("CMP-1", "C1", Channel.SMS, ResponseStage.SENT, T0, "M1")
    app.start_with("CMP-1", None, Selection(TARGETS, {}), reach=CRM)
    app.complete("CMP-1", None, reach=CRM)
    assert sent(app, "C1", ResponseStage.OPENED, "M1")


def test_an_opt_out_asks_for_consent_once_per_channel(app: CampaignApplication) -> None:
    running(app)
    assert sent(app, "C1", ResponseStage.OPTED_OUT, "M1")
    assert not sent(app, "C1", ResponseStage.OPTED_OUT, "M1")
    app.record_response(
        "CMP-1",
        None,
        customer_id="C1",
        channel=Channel.EMAIL,
        stage=ResponseStage.OPTED_OUT,
        occurred_at=T0,
    )
    campaign = app.get("CMP-1")
    assert campaign.reached["C1"] == ["opted_out"]
    assert campaign.opted_out == {"C1": ["sms", "email"]}


def test_conversions_count_within_the_attribution_window_once(app: CampaignApplication) -> None:
    running(app, attribution_window_days=30)
    inside, late = T0 + timedelta(days=29, hours=23), T0 + timedelta(days=30, seconds=1)
    convert = app.attribute_conversion
    assert not convert("CMP-1", "C1", occurred_at=T0 - timedelta(seconds=1), revenue=MONEY)
    assert not convert("CMP-1", "C1", occurred_at=late, revenue=MONEY)
    assert not convert("CMP-1", "C9", occurred_at=inside, revenue=MONEY)  # not a target
    assert not convert("CMP-1", "C2", occurred_at=inside, product_code="CARD-1")  # not offered
    assert convert("CMP-1", "C1", occurred_at=T0, revenue=MONEY, opportunity_id="OPP-1")
    assert not convert("CMP-1", "C1", occurred_at=inside, revenue=MONEY, opportunity_id="OPP-2")
    assert convert("CMP-1", "C2", occurred_at=T0 + timedelta(days=30), product_code="WM-GROWTH")
    campaign = app.get("CMP-1")
    assert campaign.reached == {"C1": ["converted"], "C2": ["converted"]}
    assert not campaign.within_window(late)


def test_a_lost_race_with_another_process_is_retried_on_a_fresh_campaign(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(tmp_path / "e.db")}
    mine, other = (CampaignApplication(env=env, clock=lambda: T0) for _ in range(2))
    running(mine)
    mine.get("CMP-1")  # cached here
    record = Campaign.record_response
    raced: list[bool] = []

    def racing(campaign: Campaign, *args: Any, **kwargs: Any) -> bool:
        if not raced:  # the other process saves first, while this command runs
            raced.append(True)
            other.record_gateway_response(
                "CMP-1", "C2", Channel.EMAIL, ResponseStage.SENT, T0, "M2"
            )
        return record(campaign, *args, **kwargs)

    monkeypatch.setattr(Campaign, "record_response", racing)
    assert mine.record_gateway_response("CMP-1", "C1", Channel.SMS, ResponseStage.SENT, T0, "M1")
    monkeypatch.undo()
    assert mine.get("CMP-1").reached == {"C2": ["sent"], "C1": ["sent"]}
    assert mine.get("CMP-1").version == other.get("CMP-1").version
