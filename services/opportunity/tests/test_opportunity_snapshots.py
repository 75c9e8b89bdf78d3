"""Leads, opportunities and needs restored from a snapshot, at any point of any command
sequence, are the aggregates replayed from their events and answer later commands alike."""

from __future__ import annotations

from typing import Any

from crm_backbone.keys import KeySealer
from crm_backbone.keys.memory import InMemoryKeys
from crm_backbone.sealing import EventSealing
from crm_backbone.snapshot_check import Command, check_snapshots
from crm_events.opportunity import LeadSource, NeedStatus, OpportunityStage
from crm_opportunity.application import OpportunityApplication
from crm_opportunity.domain.lead import Lead
from crm_opportunity.domain.need import Need
from crm_opportunity.domain.opportunity import Opportunity
from crm_opportunity.publication import PAYLOADS
from hypothesis import given, settings
from hypothesis import strategies as st

MAPPER = OpportunityApplication(
    env={"PERSISTENCE_MODULE": "eventsourcing.popo"},
    sealing=EventSealing(KeySealer(InMemoryKeys()), PAYLOADS),
).mapper
"""The service's mapper, personal data sealed as in its event store."""

managers = st.sampled_from(["RM-1", "RM-2"])
reasons = st.none() | st.just("workload")
money = st.builds(
    lambda amount: {"amount": amount, "currency": "CNY"},
    st.sampled_from(["0.00", "1000.00", "250000.50", "-1.00"]),
)
moments = st.sampled_from(
    ["2026-11-22T09:00:00+00:00", "2026-11-23T10:00:00+00:00", "2026-11-25T08:30:00+08:00"]
)


def command(name: str, **arguments: st.SearchStrategy[Any]) -> st.SearchStrategy[Command]:
    return st.tuples(st.just(name), st.fixed_dictionaries(arguments))


def deal() -> dict[str, Any]:
    return {
        "title": "Wealth plan",
        "products": ["WM-1"],
        "description": None,
        "sales_method": "visit",
        "expected_value": {"amount": "200000.00", "currency": "CNY"},
        "start_date": "2026-11-01",
        "expected_close_date": "2027-01-31",
        "contacts": ["contact"],
        "working_group": ["RM-7"],
        "competitors": [],
    }


def opportunity(stage: str) -> Opportunity:
    return Opportunity.open(
        "O1",
        deal()
        | {
            "customer_id": "C1",
            "stage": stage,
            "manager_id": "RM-7",
            "branch_id": "BR-001",
            "source": "relationship_manager",
            "lead_id": None,
            "campaign_id": None,
        },
    )


def lead(source: LeadSource, customer_id: str | None) -> Lead:
    return Lead.capture(
        "L1",
        {
            "customer_id": customer_id,
            "contact_name": "contact",
            "phone": "+86 139 0000 0000",
            "email": None,
            "source": source.value,
            "campaign_id": "CMP-1" if source is LeadSource.CAMPAIGN else None,
            "products_of_interest": ["ML-30"],
            "branch_id": "BR-001",
            "notes": None,
        },
    )


def need(kind: str) -> Need:
    return Need.log(
        "N1",
        {
            "customer_id": "C1",
            "kind": kind,
            "summary": "summary",
            "content": "content",
            "severity": "medium",
            "urgency": "high",
            "channel": "phone",
            "started_at": "2026-11-23T09:00:00+00:00",
            "sla_due_at": "2026-11-24T09:00:00+00:00",
        },
    )


OPPORTUNITY_COMMANDS = st.one_of(
    command(
        "move_to",
        stage=st.sampled_from(list(OpportunityStage)),
        lost_reason=st.none() | st.just("price"),
    ),
    command(
        "override_probability", probability=st.integers(0, 100), reason=st.sampled_from(["", "x"])
    ),
    command("change_expected_value", expected_value=money, reason=reasons),
    command("reassign", manager_id=managers, reason=reasons),
)

LEAD_COMMANDS = st.one_of(
    command("qualify", customer_id=st.none() | st.sampled_from(["C1", "C2"]), notes=reasons),
    command("assign", manager_id=managers, reason=reasons),
    command("convert", opportunity_id=st.just("O1"), fields=st.builds(deal)),
    command("disqualify", reason=st.sampled_from(["", "not interested"])),
)

NEED_COMMANDS = st.one_of(
    command("assign", manager_id=managers, reason=reasons),
    command(
        "work",
        status=st.sampled_from(list(NeedStatus)),
        sub_status=st.none() | st.just("waiting"),
    ),
    command("resolve", resolution=st.just("refunded"), resolved_at=moments),
    command("reopen", reason=st.just("not refunded")),
    command("confirm", satisfied=st.booleans(), feedback=reasons, ended_at=moments),
)


@settings(max_examples=40, deadline=None)
@given(
    st.sampled_from(["lead", "opportunity_created"]), st.lists(OPPORTUNITY_COMMANDS, max_size=20)
)
def test_an_opportunity_round_trips_through_a_snapshot(stage: str, commands: list[Command]) -> None:
    check_snapshots(MAPPER, lambda: opportunity(stage), commands)


@settings(max_examples=40, deadline=None)
@given(
    st.sampled_from(list(LeadSource)),
    st.none() | st.just("C1"),
    st.lists(LEAD_COMMANDS, max_size=20),
)
def test_a_lead_round_trips_through_a_snapshot(
    source: LeadSource, customer_id: str | None, commands: list[Command]
) -> None:
    check_snapshots(MAPPER, lambda: lead(source, customer_id), commands)


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(["need", "complaint"]), st.lists(NEED_COMMANDS, max_size=20))
def test_a_need_round_trips_through_a_snapshot(kind: str, commands: list[Command]) -> None:
    check_snapshots(MAPPER, lambda: need(kind), commands)
