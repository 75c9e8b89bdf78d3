"""Rules of the customer aggregate and the commands of the application (in-memory store)."""

from __future__ import annotations

from typing import Any

import pytest
from crm_backbone.application import StaleVersion
from crm_backbone.context import command_context
from crm_customer.application import CustomerApplication, CustomerNotFound
from crm_customer.domain import Customer
from crm_customer.publication import translate
from crm_customer.rules import (
    CORE_OWNED_FIELDS,
    PROFILE_FIELDS,
    STATUS_TRANSITIONS,
    Conflict,
    CoreOwnedField,
    CustomerRetired,
    InvalidTransition,
    RuleViolation,
    UnknownProfileFields,
)
from crm_events.customer import CustomerStatus, GroupRole, GroupType, RelationshipType
from hypothesis import given
from hypothesis import strategies as st


def person(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "customer_type": "individual",
        "name": {"full_name": "Wang Fang", "family_name": "Wang", "given_name": "Fang"},
        "status": "prospect",
        "id_documents": [{"kind": "national_id", "number": "1101", "issuing_country": "CN"}],
        "birth_date": "1990-03-07",
        "phone": None,
        "email": None,
        "address": None,
        "occupation": None,
        "industry": None,
        "branch_id": "BR-001",
        "preferred_channel": None,
    }
    return fields | overrides


@pytest.fixture
def app() -> CustomerApplication:
    return CustomerApplication(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})


def registered(app: CustomerApplication, customer_id: str = "C1", **overrides: Any) -> str:
    app.register(customer_id, person(**overrides))
    return customer_id


@given(
    st.sampled_from(list(CustomerStatus)),
    st.lists(st.sampled_from(list(CustomerStatus)), max_size=12),
)
def test_status_only_moves_along_allowed_transitions(
    start: CustomerStatus, wanted: list[CustomerStatus]
) -> None:
    if start not in (CustomerStatus.PROSPECT, CustomerStatus.ACTIVE):
        with pytest.raises(RuleViolation):
            Customer.register("C1", person(status=start.value))
        return
    customer = Customer.register("C1", person(status=start.value))
    for status in wanted:
        before = customer.status
        if status == before or status in STATUS_TRANSITIONS[before]:
            customer.change_status(status, "because")
            assert customer.status == status
        else:
            with pytest.raises(InvalidTransition):
                customer.change_status(status, "because")
            assert customer.status == before


def test_every_event_translates_to_a_valid_payload_carrying_the_actor(
    app: CustomerApplication,
) -> None:
    with command_context("rm-0042", "flow-1"):
        registered(app, "C1")
        registered(app, "C2", name={"full_name": "Li Lei"})
        app.update_profile("C1", None, {"phone": "+86 139 0000 0001"})
        app.change_status("C1", None, status=CustomerStatus.ACTIVE, reason="account")
        app.change_segment("C1", None, value_band="high", corporate_tier=None, reason="AUM")
        app.assign_manager("C1", None, manager_id="RM-1", branch_id="BR-002", reason=None)
        app.join_group(
            "C1", None, "HH-1", GroupType.HOUSEHOLD, "Wang household", GroupRole.HEAD, "2026-01-01"
        )
        app.relate("C1", None, "C2", RelationshipType.SPOUSE, None)
        app.set_consent("C1", None, channel="sms", opted_in=False, reason=None)
        app.merge("C1", None, "C2", "same person", "2026-11-23")
    notifications = app.recorder.select_notifications(None, 100)
    events: list[Any] = [app.mapper.to_domain_event(n) for n in notifications]
    payloads = [translate(e) for e in events]
    assert all(p is not None for p in payloads)
    assert {p.event_type for p in payloads if p} >= {
        "crm.customer.registered",
        "crm.customer.merged",
        "crm.customer.merged_into",
        "crm.customer.relationship_removed",
    }
    assert {e.actor for e in events} == {"rm-0042"}
    assert {e.subject for e in events} == {"C1", "C2"}


def test_a_stale_expected_version_is_refused_and_nothing_is_written(
    app: CustomerApplication,
) -> None:
    registered(app)
    version = app.update_profile("C1", 1, {"email": "a@b.cn"})
    with pytest.raises(StaleVersion) as refused:
        app.update_profile("C1", 1, {"email": "c@d.cn"})
    assert refused.value.current == version
    assert app.get("C1").profile["email"] == "a@b.cn"


def test_core_owned_fields_cannot_change_through_a_command(app: CustomerApplication) -> None:
    registered(app)
    with pytest.raises(CoreOwnedField) as refused:
        app.update_profile("C1", None, {"name": {"full_name": "X"}, "email": "a@b.cn"})
    assert refused.value.owner == "core-banking"
    assert app.get("C1").version == 1


@given(
    fields=st.sets(
        st.sampled_from([*PROFILE_FIELDS, *CORE_OWNED_FIELDS]) | st.text(max_size=12), max_size=6
    ),
    customer_id=st.sampled_from(["C1", "C404"]),
)
def test_a_profile_change_naming_a_field_the_crm_does_not_own_is_refused_first(
    fields: set[str], customer_id: str
) -> None:
    """Core-owned fields are refused naming them, then unknown ones; before the customer is
    read, so an unknown customer's answer is the same."""
    app = CustomerApplication(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    registered(app)
    core = sorted(fields & set(CORE_OWNED_FIELDS))
    unknown = sorted(fields - set(PROFILE_FIELDS) - set(CORE_OWNED_FIELDS))
    if not core and not unknown:
        return
    with pytest.raises((CoreOwnedField, UnknownProfileFields)) as refused:
        app.update_profile(customer_id, None, dict.fromkeys(fields))
    assert isinstance(refused.value, CoreOwnedField if core else UnknownProfileFields)
    assert refused.value.fields == (core or unknown)
    assert app.get("C1").version == 1


def test_core_data_applies_once_per_upstream_version(app: CustomerApplication) -> None:
    registered(app)
    data = {"name": {"full_name": "Wang Fang (legal)"}, "phone": "+86 10 1234 5678"}
    assert app.apply_core_data("C1", 3, "ev-3", data)
    assert not app.apply_core_data("C1", 3, "ev-3", data)
    assert not app.apply_core_data("C1", 2, "ev-2", {"phone": "+86 10 0000 0000"})
    customer = app.get("C1")
    assert customer.name == {"full_name": "Wang Fang (legal)"}
    assert customer.profile["phone"] == "+86 10 1234 5678"
    with pytest.raises(CustomerNotFound):
        app.apply_core_data("C404", 1, "ev-1", data)


def test_relationships_are_kept_from_both_sides(app: CustomerApplication) -> None:
    registered(app, "C1")
    registered(app, "C2")
    app.relate("C1", None, "C2", RelationshipType.PARENT, "2000-01-01")
    assert app.get("C2").relationships == {
        "C1|child": {
            "related_customer_id": "C1",
            "relationship_type": "child",
            "since": "2000-01-01",
        }
    }
    with pytest.raises(Conflict):
        app.relate("C1", None, "C2", RelationshipType.PARENT, None)
    app.unrelate("C2", None, "C1", RelationshipType.CHILD, "2026-01-01", "mistake")
    assert app.get("C1").relationships == app.get("C2").relationships == {}


def test_group_rules(app: CustomerApplication) -> None:
    registered(app, "C1")
    registered(app, "K1", customer_type="corporate", birth_date=None, name={"full_name": "Acme"})
    household = ("HH-1", GroupType.HOUSEHOLD, "Wang", GroupRole.HEAD, "2026-01-01")
    app.join_group("C1", None, *household)
    with pytest.raises(Conflict):
        app.join_group(
            "C1", None, "HH-2", GroupType.HOUSEHOLD, "Li", GroupRole.MEMBER, "2026-02-01"
        )
    with pytest.raises(RuleViolation):
        app.join_group("K1", None, *household)
    with pytest.raises(RuleViolation):
        app.join_group(
            "K1",
            None,
            "CG-1",
            GroupType.CORPORATE_GROUP,
            "Acme group",
            GroupRole.HEAD,
            "2026-01-01",
        )
    with pytest.raises(RuleViolation):
        app.leave_group("C1", None, group_id="HH-1", left_on="2025-12-31", reason=None)
    app.leave_group("C1", None, group_id="HH-1", left_on="2026-06-30", reason="moved out")
    app.join_group("C1", None, "HH-2", GroupType.HOUSEHOLD, "Li", GroupRole.MEMBER, "2026-07-01")


def test_merge_builds_a_golden_record_and_retires_the_duplicate(app: CustomerApplication) -> None:
    registered(app, "A", phone=None)
    registered(
        app,
        "B",
        phone="+86 139 0000 0002",
        id_documents=[{"kind": "passport", "number": "E123", "issuing_country": "CN"}],
    )
    registered(app, "X", name={"full_name": "Guarantor"})
    app.relate("X", None, "B", RelationshipType.GUARANTOR, None)
    app.join_group("B", None, "HH-9", GroupType.HOUSEHOLD, "B home", GroupRole.MEMBER, "2020-01-01")
    app.set_consent("A", None, channel="email", opted_in=True, reason=None)
    app.set_consent("B", None, channel="email", opted_in=False, reason="asked")

    app.merge("A", None, "B", "same passport", "2026-11-23")

    a, b, x = app.get("A"), app.get("B"), app.get("X")
    assert b.merged_into == "A"
    assert a.merged_ids == ["B"]
    assert a.profile["phone"] == "+86 139 0000 0002"
    assert {d["number"] for d in a.id_documents} == {"1101", "E123"}
    assert a.consents["email"] is False  # the opt-out wins
    assert "HH-9" in a.groups
    assert b.groups == {}
    assert b.relationships == {}
    assert a.relationships == {
        "X|guaranteed": {
            "related_customer_id": "X",
            "relationship_type": "guaranteed",
            "since": None,
        }
    }
    assert set(x.relationships) == {"A|guarantor"}
    with pytest.raises(CustomerRetired) as retired:
        app.update_profile("B", None, {"email": "b@b.cn"})
    assert retired.value.survivor_id == "A"
    assert app.resolve("B").customer_id == "A"
    # Core banking still names the duplicate: its data lands on the survivor.
    assert app.apply_core_data("B", 1, "ev-1", {"email": "core@bank.cn"})
    assert app.get("A").profile["email"] == "core@bank.cn"


def test_merging_customers_of_different_types_is_refused(app: CustomerApplication) -> None:
    registered(app, "A")
    registered(app, "K", customer_type="corporate", birth_date=None)
    with pytest.raises(RuleViolation):
        app.merge("A", None, "K", "oops", "2026-11-23")
    assert app.get("K").merged_into is None


def test_registering_twice_is_a_conflict(app: CustomerApplication) -> None:
    registered(app)
    with pytest.raises(Conflict):
        registered(app)


def test_campaign_opt_out_is_idempotent(app: CustomerApplication) -> None:
    registered(app)
    app.record_opt_out("C1", "sms", "CMP-1")
    version = app.get("C1").version
    app.record_opt_out("C1", "sms", "CMP-1")
    assert app.get("C1").version == version
    assert app.get("C1").consents == {"sms": False}
