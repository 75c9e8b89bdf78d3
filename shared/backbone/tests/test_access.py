"""Access levels: the reach each role gets, and the filter and the predicate of a reach
agreeing on every record (MongoDB's matching semantics run here, in Python, over
generated records; ``tests/integration/test_access_scope.py`` checks them on MongoDB)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from crm_backbone.access import (
    ACCESS_ERRORS,
    NO_ACCESS,
    ROLE_NAMES,
    SERVICE_REACHES,
    AccessRefused,
    NotInReach,
    Ownership,
    Reach,
    ServiceRole,
    Surface,
    as_shown,
    in_reach,
    reach_for,
    require_command,
    require_in_reach,
    require_read,
    scope_filter,
    scoped,
)
from crm_backbone.organisation import Position
from crm_backbone.principal import Principal
from crm_events.organisation import Role
from crm_events.personal import PersonalData
from hypothesis import given, settings
from hypothesis import strategies as st

STAFF = ["rm-1", "rm-2"]
BRANCHES = ["BR-1", "BR-2", "BR-3"]
OWNER_VALUES = st.sampled_from([*STAFF, *BRANCHES, ""])


def person(*roles: str) -> Principal:
    return Principal(subject="u-1", staff_id="rm-1", roles=frozenset(roles))


def service_account(*roles: str) -> Principal:
    return Principal(subject="u-2", roles=frozenset(roles), service_account=True)


positions = st.builds(
    Position,
    staff_id=st.sampled_from(STAFF),
    role=st.sampled_from(Role),
    branch_id=st.none() | st.sampled_from(BRANCHES),
    region_branch_ids=st.frozensets(st.sampled_from(BRANCHES)),
)
book_reaches = positions.filter(lambda position: position.role.unit is not None).map(
    lambda position: reach_for(person(position.role), position)
)
"""Relationship managers', branch managers' and regional heads' reaches."""
reaches = st.one_of(
    positions.map(lambda position: reach_for(person(position.role), position)),
    st.sampled_from(ServiceRole).map(lambda role: reach_for(service_account(role), None)),
    st.just(NO_ACCESS),
)
ownerships = st.builds(
    Ownership,
    manager=st.sampled_from(["manager_id", "owner_manager_ids", "customer.manager_id"]),
    branch=st.sampled_from(["branch_id", "customer.branch_id", "targets.branch_id"]),
)

Tree = dict[str, "Tree"]


def _holding(tree: Tree, leaf: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Values holding the paths of ``tree`` (or not): sub-records, lists of them, leaves."""
    if not tree:
        return leaf
    inner = st.fixed_dictionaries({}, optional={n: _holding(t, leaf) for n, t in tree.items()})
    return st.one_of(inner, st.lists(inner, min_size=1, max_size=3), leaf)


def records_owned_at(
    ownership: Ownership, owners: st.SearchStrategy[str] = OWNER_VALUES
) -> st.SearchStrategy[dict[str, Any]]:
    """Records that may name ``owners`` at the ownership's paths, in every shape MongoDB
    matches on: a value, a list of values, sub-records, lists of sub-records; or not."""
    leaf = st.one_of(st.none(), owners, st.lists(owners, max_size=3), st.integers(0, 2))
    tree: Tree = {}
    for path in (ownership.manager, ownership.branch):
        node = tree
        for name in path.split("."):
            node = node.setdefault(name, {})
    return st.fixed_dictionaries(
        {}, optional={name: _holding(subtree, leaf) for name, subtree in tree.items()}
    )


records = records_owned_at(Ownership())


def _path_values(value: Any, field_names: list[str]) -> list[Any]:
    """MongoDB's values of a dotted path: into a sub-document, or into each sub-document
    of an array (one level)."""
    if not field_names:
        return [value]
    head, rest = field_names[0], field_names[1:]
    if isinstance(value, dict):
        return _path_values(value[head], rest) if head in value else []
    if isinstance(value, list):
        return [
            found
            for element in value
            if isinstance(element, dict)
            for found in _path_values(element, field_names)
        ]
    return []


def _mongo_equals(value: Any, wanted: Any) -> bool:
    """MongoDB's equality: the value, or an element of an array value."""
    return bool(value == wanted or (isinstance(value, list) and wanted in value))


def mongo_matches(record: Mapping[str, Any], query: Mapping[str, Any]) -> bool:
    """MongoDB's matching, for the filters a reach makes: ``$and``, ``$in`` and equality."""
    for key, condition in query.items():
        if key == "$and":
            if not all(mongo_matches(record, part) for part in condition):
                return False
            continue
        values = _path_values(record, key.split("."))
        wanted = condition["$in"] if isinstance(condition, dict) else [condition]
        if not any(_mongo_equals(value, one) for value in values for one in wanted):
            return False
    return True


@settings(max_examples=1000)
@given(reach=book_reaches | reaches, ownership=ownerships, data=st.data())
def test_the_filter_and_the_predicate_agree_on_every_record(
    reach: Reach, ownership: Ownership, data: st.DataObject
) -> None:
    in_scope = st.sampled_from(sorted(reach.scope.values) or STAFF)
    record = data.draw(records_owned_at(ownership, in_scope | OWNER_VALUES))
    assert mongo_matches(record, scope_filter(reach, ownership)) == in_reach(
        reach, record, ownership
    )


@given(reach=reaches, record=records, manager=OWNER_VALUES)
def test_a_scoped_query_matches_what_both_the_query_and_the_reach_match(
    reach: Reach, record: dict[str, Any], manager: str
) -> None:
    query = {"manager_id": manager}
    assert mongo_matches(record, scoped(query, reach)) == (
        mongo_matches(record, query) and in_reach(reach, record)
    )
    assert mongo_matches(record, scoped({}, reach)) == in_reach(reach, record)


def _position(role: Role, **placed: Any) -> Position:
    return Position(staff_id="rm-1", role=role, **placed)


@pytest.mark.parametrize(
    ("role", "record", "reached"),
    [
        (Role.RELATIONSHIP_MANAGER, {"manager_id": "rm-1", "branch_id": "BR-9"}, True),
        (Role.RELATIONSHIP_MANAGER, {"manager_id": "rm-2", "branch_id": "BR-1"}, False),
        (Role.RELATIONSHIP_MANAGER, {"branch_id": "BR-1"}, False),
        (Role.BRANCH_MANAGER, {"manager_id": "rm-2", "branch_id": "BR-1"}, True),
        (Role.BRANCH_MANAGER, {"manager_id": "rm-1", "branch_id": "BR-2"}, False),
        (Role.REGIONAL_HEAD, {"branch_id": "BR-2"}, True),
        (Role.REGIONAL_HEAD, {"branch_id": "BR-3"}, False),
        (Role.ANALYST, {}, True),
        (Role.OPERATOR, {"manager_id": "rm-1", "branch_id": "BR-1"}, False),
        (Role.AUDITOR, {"manager_id": "rm-1", "branch_id": "BR-1"}, False),
        (Role.DATA_PROTECTION_OFFICER, {"manager_id": "rm-1", "branch_id": "BR-1"}, False),
    ],
)
def test_each_role_reaches_its_level(role: Role, record: dict[str, Any], reached: bool) -> None:
    placed: dict[Role, dict[str, Any]] = {
        Role.RELATIONSHIP_MANAGER: {"branch_id": "BR-1"},
        Role.BRANCH_MANAGER: {"branch_id": "BR-1"},
        Role.REGIONAL_HEAD: {"region_branch_ids": frozenset({"BR-1", "BR-2"})},
    }
    reach = reach_for(person(role, "offline_access"), _position(role, **placed.get(role, {})))
    assert in_reach(reach, record) is reached


@pytest.mark.parametrize(
    ("role", "surface", "reads", "writes", "masked"),
    [
        (Role.RELATIONSHIP_MANAGER, Surface.BOOK, True, True, False),
        (Role.BRANCH_MANAGER, Surface.BOOK, True, True, False),
        (Role.REGIONAL_HEAD, Surface.BOOK, True, True, False),
        (Role.ANALYST, Surface.BOOK, True, False, True),
        (Role.OPERATOR, Surface.OPS, True, False, True),
        (Role.AUDITOR, Surface.AUDIT, True, False, True),
        (Role.DATA_PROTECTION_OFFICER, Surface.ERASURE, True, True, True),
        (ServiceRole.CRM_SERVICE, Surface.BOOK, True, True, False),
        (ServiceRole.UPSTREAM_SYSTEM, Surface.BOOK, False, True, True),
    ],
)
def test_each_role_uses_one_surface_as_the_table_says(
    role: str, surface: Surface, reads: bool, writes: bool, masked: bool
) -> None:
    if role in SERVICE_REACHES:
        reach = reach_for(service_account(role), None)
    else:
        reach = reach_for(person(role), _position(Role(role)))
    assert reach.surfaces == {surface}
    assert (reach.may_read, reach.may_write, reach.masked) == (reads, writes, masked)
    for other in set(Surface) - {surface}:
        with pytest.raises(AccessRefused):
            require_read(reach, other)
        with pytest.raises(AccessRefused):
            require_command(reach, other)


@given(position=positions, token_role=st.sampled_from(sorted(ROLE_NAMES)))
def test_a_staff_role_counts_only_for_a_person_the_org_model_places_in_it(
    position: Position, token_role: str
) -> None:
    reach = reach_for(person(token_role), position)
    assert (reach == NO_ACCESS) is (token_role != position.role)
    assert reach_for(person(token_role), None) == NO_ACCESS


@given(position=positions | st.none(), token_role=st.sampled_from(sorted(ROLE_NAMES)))
def test_a_service_role_counts_only_for_a_service_account(
    position: Position | None, token_role: str
) -> None:
    reach = reach_for(service_account(token_role), position)
    assert reach == SERVICE_REACHES.get(token_role, NO_ACCESS)


@given(
    roles=st.lists(st.sampled_from(sorted(ROLE_NAMES)), min_size=2, unique=True),
    others=st.lists(st.text(max_size=12)),
    position=positions,
)
def test_a_token_with_several_crm_roles_or_none_reaches_nothing(
    roles: list[str], others: list[str], position: Position
) -> None:
    unknown = [name for name in others if name not in ROLE_NAMES]
    for principal in (person, service_account):
        assert reach_for(principal(*roles, *unknown), position) == NO_ACCESS
        assert reach_for(principal(*unknown), position) == NO_ACCESS


@given(record=records)
def test_no_access_reaches_no_record(record: dict[str, Any]) -> None:
    assert not in_reach(NO_ACCESS, record)
    assert NO_ACCESS.surfaces == frozenset()


def test_a_branch_manager_without_a_branch_reaches_no_record() -> None:
    reach = reach_for(person(Role.BRANCH_MANAGER), _position(Role.BRANCH_MANAGER))
    assert scope_filter(reach) == {"branch_id": {"$in": []}}
    assert not in_reach(reach, {"branch_id": "BR-1"})


def test_a_regional_head_reaches_the_branches_the_org_model_gives_the_region() -> None:
    position = _position(Role.REGIONAL_HEAD, region_branch_ids=frozenset({"BR-2", "BR-1"}))
    reach = reach_for(person(Role.REGIONAL_HEAD), position)
    assert scope_filter(reach, Ownership(branch="customer.branch_id")) == {
        "customer.branch_id": {"$in": ["BR-1", "BR-2"]}
    }


@given(reach=reaches, record=records | st.none(), key=st.text(max_size=12))
def test_out_of_reach_and_missing_are_one_answer(
    reach: Reach, record: dict[str, Any] | None, key: str
) -> None:
    if record is not None and in_reach(reach, record):
        assert require_in_reach(reach, record, kind="customer", key=key) == record
        return
    with pytest.raises(NotInReach) as raised:
        require_in_reach(reach, record, kind="customer", key=key)
    problem = ACCESS_ERRORS[NotInReach](raised.value)
    assert (problem.status, problem.kind, problem.detail) == (
        404,
        "customer-not-found",
        f"no customer {key}",
    )


def test_read_only_reaches_may_not_run_commands() -> None:
    analyst = reach_for(person(Role.ANALYST), _position(Role.ANALYST))
    require_read(analyst)
    with pytest.raises(AccessRefused) as raised:
        require_command(analyst)
    problem = ACCESS_ERRORS[AccessRefused](raised.value)
    assert (problem.status, problem.kind) == (403, "forbidden")
    upstream = reach_for(service_account(ServiceRole.UPSTREAM_SYSTEM), None)
    require_command(upstream)
    with pytest.raises(AccessRefused):
        require_read(upstream)


@pytest.mark.parametrize(
    ("record", "ownership", "reached"),
    [
        ({"owner_manager_ids": ["rm-2", "rm-1"]}, Ownership(manager="owner_manager_ids"), True),
        ({"customer": {"manager_id": "rm-1"}}, Ownership(manager="customer.manager_id"), True),
        (
            {"customer": [{"manager_id": "rm-2"}, {"manager_id": "rm-1"}]},
            Ownership(manager="customer.manager_id"),
            True,
        ),
        ({"customer": {"manager_id": ["rm-1"]}}, Ownership(manager="customer.manager_id"), True),
        ({"customer": "rm-1"}, Ownership(manager="customer.manager_id"), False),
        ({"manager_id": [["rm-1"]]}, Ownership(), False),
        ({"manager_id": None}, Ownership(), False),
        ({"manager_id": "RM-1"}, Ownership(), False),
    ],
)
def test_a_record_names_its_manager_in_the_shapes_mongodb_matches(
    record: dict[str, Any], ownership: Ownership, reached: bool
) -> None:
    reach = reach_for(person(Role.RELATIONSHIP_MANAGER), _position(Role.RELATIONSHIP_MANAGER))
    assert in_reach(reach, record, ownership) is reached
    assert mongo_matches(record, scope_filter(reach, ownership)) is reached


def test_only_a_masked_reach_sees_personal_data_masked() -> None:
    record = {"_id": "C1", "manager_id": "rm-1", "phone": "13912345678"}
    personal = {"phone": PersonalData.PHONE}
    analyst = reach_for(person(Role.ANALYST), _position(Role.ANALYST))
    manager = reach_for(person(Role.RELATIONSHIP_MANAGER), _position(Role.RELATIONSHIP_MANAGER))
    assert as_shown(analyst, record, personal)["phone"] == "139****5678"
    assert as_shown(manager, record, personal) == record
