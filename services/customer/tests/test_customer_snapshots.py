"""A customer restored from a snapshot, at any point of any command sequence, is the
customer replayed from its events and answers later commands as it does."""

from __future__ import annotations

from typing import Any

from crm_backbone.keys import KeySealer
from crm_backbone.keys.memory import InMemoryKeys
from crm_backbone.sealing import EventSealing
from crm_backbone.snapshot_check import Command, check_snapshots
from crm_customer.application import CustomerApplication
from crm_customer.domain import Customer
from crm_customer.publication import PAYLOADS
from crm_events.customer import CustomerStatus, GroupRole, GroupType, RelationshipType
from hypothesis import given, settings
from hypothesis import strategies as st

MAPPER = CustomerApplication(
    env={"PERSISTENCE_MODULE": "eventsourcing.popo"},
    sealing=EventSealing(KeySealer(InMemoryKeys()), PAYLOADS),
).mapper
"""The service's mapper, personal data sealed as in its event store."""

days = st.sampled_from(["2024-01-05", "2024-06-30", "2025-02-11"])
reasons = st.none() | st.sampled_from(["asked by the customer", "review"])
others = st.sampled_from(["C2", "C3"])
channels = st.sampled_from(["sms", "email", "phone"])


def command(name: str, **arguments: st.SearchStrategy[Any]) -> st.SearchStrategy[Command]:
    return st.tuples(st.just(name), st.fixed_dictionaries(arguments))


def customer(customer_type: str, status: str) -> Customer:
    return Customer.register(
        "C1",
        {
            "customer_type": customer_type,
            "name": {"full_name": "Test Person"},
            "status": status,
            "id_documents": [{"kind": "national_id", "number": "1", "issuing_country": "CN"}],
            "birth_date": "1990-03-07" if customer_type == "individual" else None,
            "phone": None,
            "email": None,
            "address": None,
            "occupation": None,
            "industry": None,
            "branch_id": "BR-001",
            "preferred_channel": None,
        },
    )


def duplicate() -> Customer:
    twin = customer("individual", "active")
    twin.customer_id = "C9"
    twin.consents = {"sms": False}
    twin.profile["email"] = "twin@example.com"
    return twin


COMMANDS = st.one_of(
    command(
        "update_profile",
        changes=st.fixed_dictionaries(
            {},
            optional={
                "phone": st.sampled_from(["+86 10 1", "+86 10 2"]),
                "occupation": st.sampled_from(["teacher", "clerk"]),
                "address": st.just({"line1": "1 Road", "city": "Beijing", "country": "CN"}),
            },
        ),
    ),
    command("change_status", status=st.sampled_from(list(CustomerStatus)), reason=st.just("r")),
    command(
        "change_segment",
        value_band=st.sampled_from(["mass", "affluent"]),
        corporate_tier=st.none() | st.just("tier_1"),
        reason=st.just("review"),
    ),
    command(
        "assign_manager",
        manager_id=st.sampled_from(["M1", "M2"]),
        branch_id=st.sampled_from(["BR-001", "BR-002"]),
        reason=reasons,
    ),
    command(
        "join_group",
        group_id=st.sampled_from(["G1", "G2"]),
        group_type=st.sampled_from(list(GroupType)),
        group_name=st.just("group"),
        role=st.sampled_from(list(GroupRole)),
        joined_on=days,
    ),
    command("leave_group", group_id=st.sampled_from(["G1", "G2"]), left_on=days, reason=reasons),
    command("relate", related_id=others, kind=st.sampled_from(list(RelationshipType)), since=days),
    command(
        "unrelate",
        related_id=others,
        kind=st.sampled_from(list(RelationshipType)),
        ended_on=days,
        reason=reasons,
    ),
    command("set_consent", channel=channels, opted_in=st.booleans(), reason=reasons),
    command(
        "apply_core_data",
        source_customer_id=st.just("C1"),
        source_version=st.integers(1, 5),
        source_event_id=st.just("e"),
        data=st.fixed_dictionaries({}, optional={"email": st.just("core@example.com")}),
    ),
    command("absorb", duplicate=st.builds(duplicate), reason=st.just("same person")),
    command("retire_into", survivor_id=others, reason=st.just("duplicate")),
)


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(["individual", "corporate"]),
    st.sampled_from(["prospect", "active"]),
    st.lists(COMMANDS, max_size=25),
)
def test_a_customer_round_trips_through_a_snapshot(
    customer_type: str, status: str, commands: list[Command]
) -> None:
    check_snapshots(MAPPER, lambda: customer(customer_type, status), commands)
