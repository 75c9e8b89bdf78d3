"""Rules of leads, opportunities and needs, and the commands of the application (in-memory)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from crm_backbone.application import Created, StaleVersion
from crm_backbone.context import command_context
from crm_events.opportunity import NeedStatus, OpportunityStage
from crm_opportunity.application import (
    Conversion,
    NotFound,
    OpportunityApplication,
    campaign_lead_id,
)
from crm_opportunity.domain.base import Conflict, RuleViolation
from crm_opportunity.domain.lead import LeadStatus
from crm_opportunity.domain.opportunity import (
    CLOSED,
    DEFAULT_PROBABILITY,
    FUNNEL,
    InvalidStageMove,
    Opportunity,
    stages_passed,
)
from crm_opportunity.publication import PAYLOADS, translate
from eventsourcing.utils import resolve_topic
from hypothesis import given
from hypothesis import strategies as st

Stage = OpportunityStage


def deal(**overrides: Any) -> dict[str, Any]:
    return {
        "title": "Wealth plan",
        "products": ["WM-1"],
        "description": None,
        "sales_method": "visit",
        "expected_value": {"amount": "200000.00", "currency": "CNY"},
        "start_date": "2026-11-01",
        "expected_close_date": "2027-01-31",
        "contacts": ["Wang Fang"],
        "working_group": ["RM-7", "PB-1"],
        "competitors": ["Other Bank"],
    } | overrides


def opportunity_fields(**overrides: Any) -> dict[str, Any]:
    return (
        deal()
        | {
            "customer_id": "C1",
            "stage": "opportunity_created",
            "manager_id": "RM-7",
            "branch_id": "BR-001",
            "source": "relationship_manager",
            "lead_id": None,
            "campaign_id": None,
        }
        | overrides
    )


def lead_fields(**overrides: Any) -> dict[str, Any]:
    return {
        "customer_id": None,
        "contact_name": "Zhao Min",
        "phone": "+86 139 5555 0101",
        "email": None,
        "source": "walk_in",
        "campaign_id": None,
        "products_of_interest": ["ML-30"],
        "branch_id": "BR-001",
        "notes": None,
    } | overrides


def need_fields(**overrides: Any) -> dict[str, Any]:
    return {
        "customer_id": "C1",
        "kind": "complaint",
        "summary": "Fee charged twice",
        "content": "The annual card fee appears twice.",
        "severity": "medium",
        "urgency": "high",
        "channel": "phone",
        "started_at": "2026-11-23T09:00:00+00:00",
        "sla_due_at": "2026-11-24T09:00:00+00:00",
    } | overrides


def at(moment: str) -> datetime:
    return datetime.fromisoformat(moment)


@pytest.fixture
def app() -> OpportunityApplication:
    return OpportunityApplication(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})


# Opportunities ---------------------------------------------------------------------------

moves = st.lists(
    st.tuples(st.sampled_from(list(Stage)), st.sampled_from([None, "price"])), max_size=15
)


@given(st.sampled_from([Stage.LEAD, Stage.OPPORTUNITY_CREATED]), moves)
def test_stage_moves_never_go_backward_nor_leave_a_closed_state(
    start: Stage, wanted: list[tuple[Stage, str | None]]
) -> None:
    opportunity = Opportunity.open("O1", opportunity_fields(stage=start.value))
    assert opportunity.probability == DEFAULT_PROBABILITY[start]
    for stage, reason in wanted:
        before, version = opportunity.stage, opportunity.version
        try:
            opportunity.move_to(stage, reason)
        except (RuleViolation, Conflict):
            assert (opportunity.stage, opportunity.version) == (before, version)
            continue
        assert before not in CLOSED
        if opportunity.stage is not Stage.CLOSED_LOST:
            assert FUNNEL.index(opportunity.stage) >= FUNNEL.index(before)
        assert opportunity.probability == DEFAULT_PROBABILITY[opportunity.stage]


def test_forward_moves_skip_stages_and_closing_has_its_own_rules() -> None:
    opportunity = Opportunity.open("O1", opportunity_fields())
    opportunity.move_to(Stage.NEGOTIATION)
    assert (opportunity.stage, opportunity.probability) == (Stage.NEGOTIATION, 80)
    with pytest.raises(InvalidStageMove, match="never move backward"):
        opportunity.move_to(Stage.PROPOSAL)
    with pytest.raises(InvalidStageMove, match="contract is signed"):
        opportunity.move_to(Stage.CLOSED_WON)
    with pytest.raises(InvalidStageMove, match="needs a reason"):
        opportunity.move_to(Stage.CLOSED_LOST)
    with pytest.raises(RuleViolation, match="only when closing lost"):
        opportunity.move_to(Stage.CONTRACT_SIGNED, "why")
    version = opportunity.version
    opportunity.move_to(Stage.NEGOTIATION)
    assert opportunity.version == version  # the same stage is a no-op
    opportunity.move_to(Stage.CONTRACT_SIGNED)
    opportunity.move_to(Stage.CLOSED_WON)
    assert opportunity.probability == 100
    with pytest.raises(Conflict, match="closed for good"):
        opportunity.move_to(Stage.CLOSED_LOST, "changed their mind")
    assert stages_passed(Stage.CLOSED_WON) == list(FUNNEL)
    assert stages_passed(Stage.CLOSED_LOST) == [Stage.CLOSED_LOST]


def test_probability_defaults_per_stage_and_a_manager_overrides_it_with_a_reason() -> None:
    opportunity = Opportunity.open("O1", opportunity_fields())
    assert opportunity.probability == 20
    with pytest.raises(RuleViolation):
        opportunity.override_probability(35, " ")
    opportunity.override_probability(35, "budget approved")
    assert opportunity.probability == 35
    version = opportunity.version
    opportunity.override_probability(35, "again")
    assert opportunity.version == version
    opportunity.move_to(Stage.PROPOSAL)
    assert opportunity.probability == 40  # a stage change restores the stage's default
    opportunity.move_to(Stage.CLOSED_LOST, "went elsewhere")
    assert opportunity.probability == 0
    with pytest.raises(Conflict):
        opportunity.override_probability(50, "too late")


def test_opening_rules() -> None:
    with pytest.raises(RuleViolation, match="starts at"):
        Opportunity.open("O1", opportunity_fields(stage="proposal"))
    with pytest.raises(RuleViolation, match="product"):
        Opportunity.open("O1", opportunity_fields(products=[]))
    with pytest.raises(RuleViolation, match="close date"):
        Opportunity.open("O1", opportunity_fields(expected_close_date="2026-10-01"))
    with pytest.raises(RuleViolation, match="negative"):
        Opportunity.open(
            "O1", opportunity_fields(expected_value={"amount": "-1", "currency": "CNY"})
        )


def test_value_and_manager_changes(app: OpportunityApplication) -> None:
    app.open_opportunity("O1", opportunity_fields())
    same = {"amount": "200000", "currency": "CNY"}
    assert app.change_expected_value("O1", None, same, None) == 1
    assert app.change_expected_value("O1", 1, {"amount": "1", "currency": "USD"}, "fx") == 2
    assert app.reassign_opportunity("O1", 2, "RM-8", "holiday cover") == 3
    opportunity = app.opportunity("O1")
    assert opportunity.manager_id == "RM-8"
    assert opportunity.expected_value == {"amount": "1", "currency": "USD"}


# Leads -----------------------------------------------------------------------------------


def test_a_lead_converts_into_an_opportunity_in_one_save(app: OpportunityApplication) -> None:
    app.capture_lead("L1", lead_fields())
    with pytest.raises(RuleViolation, match="not qualified"):
        app.convert_lead("L1", None, "O1", deal())
    with pytest.raises(RuleViolation, match="register the prospect"):
        app.qualify_lead("L1", None, None, None)
    app.qualify_lead("L1", None, "C9", "budget confirmed")
    with pytest.raises(Conflict, match="already qualified"):
        app.qualify_lead("L1", None, "C9", None)
    with pytest.raises(RuleViolation, match="assign it first"):
        app.convert_lead("L1", None, "O1", deal())
    app.assign_lead("L1", None, "RM-7", None)
    head = app.recorder.max_notification_id()

    assert app.convert_lead("L1", 3, "O1", deal()) == Conversion(4, Created("O1", 1))

    lead, opportunity = app.lead("L1"), app.opportunity("O1")
    assert (lead.status, lead.opportunity_id) == (LeadStatus.CONVERTED, "O1")
    assert (opportunity.customer_id, opportunity.manager_id) == ("C9", "RM-7")
    assert (opportunity.lead_id, opportunity.source, opportunity.branch_id) == (
        "L1",
        "walk_in",
        "BR-001",
    )
    assert opportunity.stage is Stage.OPPORTUNITY_CREATED
    saved = app.recorder.select_notifications(start=head, limit=10, inclusive_of_start=False)
    assert len(saved) == 2  # the conversion and the opportunity, written together
    with pytest.raises(Conflict, match="closed for good"):
        app.disqualify_lead("L1", None, "oops")


def test_lead_capture_and_disqualification_rules(app: OpportunityApplication) -> None:
    with pytest.raises(RuleViolation, match="to reach"):
        app.capture_lead("L1", lead_fields(phone=None))
    with pytest.raises(RuleViolation, match="campaign id"):
        app.capture_lead("L1", lead_fields(source="campaign"))
    with pytest.raises(RuleViolation, match="campaign id"):
        app.capture_lead("L1", lead_fields(campaign_id="CMP-1"))
    app.capture_lead("L1", lead_fields(customer_id="C1"))
    with pytest.raises(RuleViolation, match="C1's"):
        app.qualify_lead("L1", None, "C2", None)
    app.disqualify_lead("L1", None, "no budget")
    assert app.lead("L1").status is LeadStatus.DISQUALIFIED
    with pytest.raises(Conflict):
        app.assign_lead("L1", None, "RM-1", None)


def test_a_campaign_response_captures_one_lead_assigned_to_the_manager(
    app: OpportunityApplication,
) -> None:
    args: dict[str, Any] = {
        "campaign_id": "CMP-1",
        "customer_id": "C1",
        "contact_name": "Wang Fang",
        "branch_id": "BR-002",
        "products": ["WM-1"],
        "manager_id": "RM-7",
        "notes": "responded",
    }
    assert app.capture_campaign_lead(**args)
    assert not app.capture_campaign_lead(**args)
    lead = app.lead(campaign_lead_id("CMP-1", "C1"))
    assert (lead.source, lead.campaign_id, lead.manager_id) == ("campaign", "CMP-1", "RM-7")
    assert lead.version == 2
    assert len(campaign_lead_id("C" * 128, "K" * 128)) <= 128


def test_leads_opportunities_and_needs_share_one_id_space(app: OpportunityApplication) -> None:
    app.capture_lead("X1", lead_fields())
    with pytest.raises(Conflict, match="taken"):
        app.open_opportunity("X1", opportunity_fields())
    with pytest.raises(Conflict, match="taken"):
        app.log_need("X1", need_fields())
    with pytest.raises(NotFound, match="no opportunity X1"):
        app.opportunity("X1")


# Needs and complaints --------------------------------------------------------------------


def test_complaint_rules(app: OpportunityApplication) -> None:
    with pytest.raises(RuleViolation, match="SLA due time"):
        app.log_need("N1", need_fields(sla_due_at=None))
    with pytest.raises(RuleViolation, match="not after"):
        app.log_need("N1", need_fields(sla_due_at="2026-11-23T08:00:00+00:00"))
    app.log_need("N0", need_fields(kind="need", sla_due_at=None))  # a plain need has no SLA
    app.log_need("N1", need_fields())
    with pytest.raises(RuleViolation, match="assign it first"):
        app.work_on_need("N1", None, NeedStatus.IN_PROGRESS, None)
    app.assign_need("N1", None, "RM-7", None)
    assert app.need("N1").status is NeedStatus.ASSIGNED
    with pytest.raises(RuleViolation, match="not set directly"):
        app.work_on_need("N1", None, NeedStatus.RESOLVED, None)
    app.work_on_need("N1", None, NeedStatus.IN_PROGRESS, "refund asked")
    with pytest.raises(Conflict, match="not resolved"):
        app.confirm_need("N1", None, True, None, at("2026-11-23T12:00:00+00:00"))
    with pytest.raises(RuleViolation, match="before the need started"):
        app.resolve_need("N1", None, "refunded", at("2026-11-22T12:00:00+00:00"))
    app.resolve_need("N1", None, "refunded", at("2026-11-23T11:00:00+00:00"))
    with pytest.raises(Conflict, match="is resolved"):
        app.work_on_need("N1", None, NeedStatus.IN_PROGRESS, None)

    app.reopen_need("N1", None, "refund not received")  # the customer rejects the resolution
    need = app.need("N1")
    assert (need.status, need.sub_status) == (NeedStatus.REOPENED, "refund not received")
    app.resolve_need("N1", None, "refunded again", at("2026-11-23T15:00:00+00:00"))
    app.confirm_need("N1", None, False, "took too long", at("2026-11-24T10:00:00+00:00"))
    need = app.need("N1")
    assert (need.status, need.satisfied) == (NeedStatus.CONFIRMED, False)  # ended anyway
    with pytest.raises(Conflict, match="ended"):
        app.assign_need("N1", None, "RM-8", None)
    with pytest.raises(Conflict, match="ended"):
        app.reopen_need("N1", None, "again")


# The application -------------------------------------------------------------------------


def test_a_stale_expected_version_is_refused_and_nothing_is_written(
    app: OpportunityApplication,
) -> None:
    app.open_opportunity("O1", opportunity_fields())
    assert app.move_opportunity("O1", 1, Stage.PROPOSAL, None) == 2
    with pytest.raises(StaleVersion) as refused:
        app.move_opportunity("O1", 1, Stage.EVALUATION, None)
    assert refused.value.current == 2
    assert app.opportunity("O1").stage is Stage.PROPOSAL
    with pytest.raises(NotFound):
        app.move_opportunity("O404", None, Stage.PROPOSAL, None)


def test_ids_and_moments_left_out_come_from_the_injected_id_maker_and_clock() -> None:
    now = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)
    app = OpportunityApplication(
        env={"PERSISTENCE_MODULE": "eventsourcing.popo"},
        clock=lambda: now,
        new_id=lambda prefix: f"{prefix}-NEW",
    )
    assert app.capture_lead(None, lead_fields(customer_id="C1")) == Created("L-NEW", 1)
    app.qualify_lead("L-NEW", None, None, None)
    app.assign_lead("L-NEW", None, "RM-7", None)
    undated = deal(start_date=None, expected_close_date="2026-12-31")
    assert app.convert_lead("L-NEW", None, None, undated) == Conversion(4, Created("OPP-NEW", 1))
    assert app.opportunity("OPP-NEW").start_date == "2026-11-24"
    assert app.log_need(None, need_fields(kind="need", started_at=None, sla_due_at=None)) == (
        Created("N-NEW", 1)
    )
    app.assign_need("N-NEW", None, "RM-7", None)
    app.resolve_need("N-NEW", None, "done", None)
    app.confirm_need("N-NEW", None, True, None, None)
    need = app.need("N-NEW")
    assert need.started_at == need.resolved_at == need.ended_at == now.isoformat()
    with pytest.raises(Conflict, match="taken"):
        app.open_opportunity(None, opportunity_fields())  # the id maker made OPP-NEW again


def test_every_event_translates_to_a_valid_payload_carrying_the_actor(
    app: OpportunityApplication,
) -> None:
    with command_context("rm-0042", "flow-1"):
        app.capture_lead("L1", lead_fields())
        app.qualify_lead("L1", None, "C1", None)
        app.assign_lead("L1", None, "RM-7", None)
        app.convert_lead("L1", None, "O1", deal())
        app.capture_lead("L2", lead_fields())
        app.disqualify_lead("L2", None, "duplicate")
        app.move_opportunity("O1", None, Stage.PROPOSAL, None)
        app.override_probability("O1", None, 55, "strong interest")
        app.change_expected_value("O1", None, {"amount": "1", "currency": "CNY"}, None)
        app.reassign_opportunity("O1", None, "RM-8", None)
        app.log_need("N1", need_fields())
        app.assign_need("N1", None, "RM-7", None)
        app.resolve_need("N1", None, "done", at("2026-11-23T10:00:00+00:00"))
        app.confirm_need("N1", None, True, None, at("2026-11-23T11:00:00+00:00"))
    notifications = app.recorder.select_notifications(None, 100)
    events: list[Any] = [app.mapper.to_domain_event(n) for n in notifications]
    payloads = [translate(e) for e in events]
    assert all(p is not None for p in payloads)
    assert {p.event_type for p in payloads if p} == {
        "crm.lead.captured",
        "crm.lead.qualified",
        "crm.lead.assigned",
        "crm.lead.converted",
        "crm.lead.disqualified",
        "crm.opportunity.created",
        "crm.opportunity.stage_changed",
        "crm.opportunity.probability_overridden",
        "crm.opportunity.expected_value_changed",
        "crm.opportunity.reassigned",
        "crm.need.logged",
        "crm.need.assigned",
        "crm.need.status_changed",
        "crm.need.resolved",
        "crm.need.resolution_confirmed",
    }
    assert {e.actor for e in events} == {"rm-0042"}
    assert {e.subject for e in events} == {"L1", "L2", "O1", "N1"}


@pytest.mark.parametrize("qualname", [*PAYLOADS, "LeadStatus"])
def test_topics_stored_before_the_domain_was_split_resolve_to_the_moved_classes(
    qualname: str,
) -> None:
    """Stored events and snapshots name their classes (and a lead's status) by topic."""
    moved = resolve_topic(f"crm_opportunity.domain:{qualname}")
    assert moved.__qualname__ == qualname
    assert moved.__module__.startswith("crm_opportunity.domain.")
