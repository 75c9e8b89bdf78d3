"""A reach's MongoDB filter, run by the genuine MongoDB, selects exactly the records its
predicate (``crm_backbone.access.in_reach``) says are in reach, over every shape a record
may give its owner: absent, null, a value, a list, a sub-record, a list of sub-records,
nested lists."""

from __future__ import annotations

from itertools import product
from typing import Any

import pytest
from crm_backbone.access import Ownership, Reach, in_reach, reach_for, scope_filter, scoped
from crm_backbone.organisation import Position
from crm_backbone.principal import Principal
from crm_events.organisation import Role
from pymongo.asynchronous.database import AsyncDatabase

pytestmark = pytest.mark.integration

ABSENT = object()
LEAVES: list[Any] = [ABSENT, None, "rm-1", "rm-2", ["rm-2", "rm-1"], [["rm-1"]], [], 0, "RM-1"]


def _holding(field_name: str, leaf: Any) -> list[Any]:
    """Values of a record's first path part that hold ``leaf`` at ``field_name`` below it."""
    sub = {} if leaf is ABSENT else {field_name: leaf}
    return [sub, [{"other": 1}, sub], [[sub]], leaf]


def _records(path: str) -> list[dict[str, Any]]:
    """Every shape of record naming (or not) a manager at ``path`` (one or two parts)."""
    head, _, rest = path.partition(".")
    values = LEAVES if not rest else [v for leaf in LEAVES for v in _holding(rest, leaf)]
    return [{"_id": n} | ({} if v is ABSENT else {head: v}) for n, v in enumerate(values)]


def _reach(role: Role, staff_id: str = "rm-1", **placed: Any) -> Reach:
    principal = Principal(subject="u-1", staff_id=staff_id, roles=frozenset({role}))
    return reach_for(principal, Position(staff_id=staff_id, role=role, **placed))


REACHES = {
    "rm-1's book": _reach(Role.RELATIONSHIP_MANAGER),
    "rm-2's book": _reach(Role.RELATIONSHIP_MANAGER, "rm-2"),
    "a region of two": _reach(Role.REGIONAL_HEAD, region_branch_ids=frozenset({"rm-1", "rm-2"})),
    "an empty region": _reach(Role.REGIONAL_HEAD),
    "the organisation": _reach(Role.ANALYST),
    "the audit trail": _reach(Role.AUDITOR),
}


@pytest.mark.parametrize(
    ("path", "reach_name"), list(product(["manager_id", "customer.manager_id"], REACHES))
)
async def test_mongodb_selects_exactly_the_records_in_reach(
    database: AsyncDatabase[dict[str, Any]], path: str, reach_name: str
) -> None:
    reach = REACHES[reach_name]
    ownership = Ownership(manager=path, branch=path)  # a region's branches named like staff
    records = _records(path)
    await database.records.insert_many(records)

    selected = {doc["_id"] async for doc in database.records.find(scope_filter(reach, ownership))}
    counted = await database.records.count_documents(scoped({"_id": {"$gte": 0}}, reach, ownership))

    expected = {record["_id"] for record in records if in_reach(reach, record, ownership)}
    print(f"{path} / {reach_name}: {len(expected)} of {len(records)} records in reach")
    assert selected == expected
    assert counted == len(expected)
