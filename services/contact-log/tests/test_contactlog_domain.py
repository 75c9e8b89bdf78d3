"""Rules of contacts and activities, and the commands of the application (in-memory store)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from crm_backbone.application import StaleVersion
from crm_backbone.context import command_context
from crm_contactlog.application import (
    ActivityNotFound,
    ContactLogApplication,
)
from crm_contactlog.domain import ActivityClosed, ActivityStatus, Conflict, RuleViolation
from crm_contactlog.publication import translate

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def at(hours: float) -> str:
    """A moment ``hours`` from NOW, as the API passes it."""
    return (NOW + timedelta(hours=hours)).isoformat()


def contact(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "customer_id": "C1",
        "category": "phone",
        "summary": "Discussed the maturing deposit",
        "content": None,
        "called": True,
        "outcome": "interested",
        "manager_id": "RM-1",
        "opportunity_id": None,
        "campaign_id": None,
        "started_at": at(-1),
        "ended_at": at(-0.5),
    }
    return fields | overrides


def plan(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "customer_id": "C1",
        "category": "visit",
        "description": "Review the wealth plan",
        "remarks": None,
        "priority": "high",
        "due_at": at(26),
        "started_at": at(25),
        "ended_at": at(26),
        "estimated_cost": {"amount": "120.00", "currency": "CNY"},
        "assignee_id": "RM-1",
        "participant_ids": ["RM-2"],
        "origin_event_id": None,
    }
    return fields | overrides


@pytest.fixture
def app() -> ContactLogApplication:
    return ContactLogApplication(
        env={"PERSISTENCE_MODULE": "eventsourcing.popo"}, clock=lambda: NOW
    )


def test_every_event_translates_to_a_valid_payload_carrying_the_actor(
    app: ContactLogApplication,
) -> None:
    with command_context("rm-0042", "flow-1"):
        app.log_contact("CT-1", contact())
        app.schedule_activity("A-1", plan())
        app.reschedule_activity("A-1", 1, due_at=at(50), started_at=None, ended_at=None, reason="")
        app.complete_activity("A-1", 2, None, "signed", {"amount": "80.5", "currency": "CNY"})
        app.schedule_activity("A-2", plan(customer_id=None))
        app.cancel_activity("A-2", None, "customer moved away")
    events: list[Any] = [
        app.mapper.to_domain_event(n) for n in app.recorder.select_notifications(None, 100)
    ]
    payloads = [translate(e) for e in events]
    assert [p.event_type for p in payloads if p] == [
        "crm.contact.logged",
        "crm.activity.scheduled",
        "crm.activity.rescheduled",
        "crm.activity.completed",
        "crm.activity.scheduled",
        "crm.activity.cancelled",
    ]
    assert {e.actor for e in events} == {"rm-0042"}
    assert {e.subject for e in events} == {"CT-1", "A-1", "A-2"}


def test_a_contact_records_what_happened(app: ContactLogApplication) -> None:
    with pytest.raises(RuleViolation, match="future"):
        app.log_contact("CT-1", contact(started_at=at(1), ended_at=None))
    with pytest.raises(RuleViolation, match="before started_at"):
        app.log_contact("CT-1", contact(ended_at=at(-2)))
    app.log_contact("CT-1", contact(started_at=at(0.05), ended_at=None))  # clock skew
    with pytest.raises(Conflict):
        app.log_contact("CT-1", contact())
    assert app.get_contact("CT-1").version == 1


def test_an_id_names_a_contact_or_an_activity_never_both(app: ContactLogApplication) -> None:
    app.log_contact("X-1", contact())
    with pytest.raises(Conflict, match="contact"):
        app.schedule_activity("X-1", plan())
    app.schedule_activity("X-2", plan())
    with pytest.raises(Conflict, match="activity"):
        app.log_contact("X-2", contact())


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"ended_at": at(24)}, "ended_at is before started_at"),
        ({"due_at": at(24)}, "due_at is before the activity starts"),
        ({"estimated_cost": {"amount": "-1", "currency": "CNY"}}, "cannot be negative"),
        ({"participant_ids": ["RM-2", "RM-2"]}, "named twice"),
        ({"participant_ids": ["RM-1"]}, "assignee"),
    ],
)
def test_activity_rules(
    app: ContactLogApplication, overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(RuleViolation, match=message):
        app.schedule_activity("A-1", plan(**overrides))
    with pytest.raises(ActivityNotFound):
        app.get_activity("A-1")


def test_rescheduling_keeps_the_duration_and_an_unchanged_plan_is_a_no_op(
    app: ContactLogApplication,
) -> None:
    app.schedule_activity("A-1", plan())
    version = app.reschedule_activity(
        "A-1", 1, due_at=at(50), started_at=at(48), ended_at=None, reason="travelling"
    )
    activity = app.get_activity("A-1")
    assert version == 2
    assert activity.ended_at == NOW + timedelta(hours=49)
    assert activity.due_at == NOW + timedelta(hours=50)
    same = app.reschedule_activity(
        "A-1", 2, due_at=at(50), started_at=None, ended_at=None, reason="again"
    )
    assert same == 2
    with pytest.raises(RuleViolation, match="due_at"):
        app.reschedule_activity("A-1", 2, due_at=at(47), started_at=None, ended_at=None, reason="")


def test_completed_and_cancelled_are_final(app: ContactLogApplication) -> None:
    app.schedule_activity("A-1", plan())
    with pytest.raises(RuleViolation, match="future"):
        app.complete_activity("A-1", None, at(2), None, None)
    with pytest.raises(RuleViolation, match="negative"):
        app.complete_activity("A-1", None, None, None, {"amount": "-3", "currency": "CNY"})
    app.complete_activity("A-1", None, None, "done", {"amount": "99.90", "currency": "CNY"})
    activity = app.get_activity("A-1")
    assert activity.done
    assert activity.completed_at == NOW
    assert activity.cost == {"amount": "99.90", "currency": "CNY"}
    with pytest.raises(ActivityClosed) as closed:
        app.cancel_activity("A-1", None, "too late")
    assert closed.value.status is ActivityStatus.COMPLETED
    app.schedule_activity("A-2", plan())
    app.cancel_activity("A-2", None, "customer cancelled")
    with pytest.raises(ActivityClosed):
        app.reschedule_activity(
            "A-2", None, due_at=at(99), started_at=None, ended_at=None, reason=""
        )
    assert not app.get_activity("A-2").done


def test_a_stale_expected_version_is_refused_and_nothing_is_written(
    app: ContactLogApplication,
) -> None:
    app.schedule_activity("A-1", plan())
    app.reschedule_activity("A-1", 1, due_at=at(30), started_at=None, ended_at=None, reason="")
    with pytest.raises(StaleVersion) as refused:
        app.cancel_activity("A-1", 1, "stale")
    assert refused.value.current == 2
    assert app.get_activity("A-1").status is ActivityStatus.SCHEDULED
