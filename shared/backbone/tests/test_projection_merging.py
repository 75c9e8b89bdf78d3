"""Unit tests of the projection engine's update merging: the rules, and a property test.

The property test checks the rules against a small interpreter of MongoDB's update
operators; ``tests/integration/test_projection_merging.py`` checks the whole engine, with
crashes and redeliveries, against genuine MongoDB.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest
from crm_backbone.merging import Group, compose, guard_values
from crm_backbone.testing_updates import apply_update
from hypothesis import given, settings
from hypothesis import strategies as st

Update = dict[str, Any]


@pytest.mark.parametrize(
    ("first", "then", "merged"),
    [
        ({"$set": {"a": 1}}, {"$set": {"a": 2}}, {"$set": {"a": 2}}),
        ({"$set": {"a": 1}}, {"$set": {"b": 2}}, {"$set": {"a": 1, "b": 2}}),
        ({"$inc": {"n": 1}}, {"$inc": {"n": 2}}, {"$inc": {"n": 3}}),
        (
            {"$set": {"phone": "1"}, "$inc": {"changes": 1}},
            {"$set": {"phone": "2"}, "$inc": {"changes": 1}},
            {"$set": {"phone": "2"}, "$inc": {"changes": 2}},
        ),
        ({"$set": {"n": 5}}, {"$inc": {"n": 2}}, {"$set": {"n": 7}}),
        ({"$inc": {"n": 5}}, {"$set": {"n": 0}}, {"$set": {"n": 0}}),
        ({"$unset": {"n": ""}}, {"$inc": {"n": 2}}, {"$set": {"n": 2}}),
        ({"$unset": {"n": ""}}, {"$max": {"n": 2}}, {"$set": {"n": 2}}),
        ({"$unset": {"a": ""}}, {"$set": {"a": 1}}, {"$set": {"a": 1}}),
        ({"$set": {"a": 1}}, {"$unset": {"a": ""}}, {"$unset": {"a": ""}}),
        ({"$unset": {"a.b": ""}}, {"$unset": {"a.b": ""}}, {"$unset": {"a.b": ""}}),
        ({"$unset": {"a.b": ""}}, {"$inc": {"a.b": 1}}, {"$set": {"a.b": 1}}),
        ({"$max": {"n": 1}}, {"$max": {"n": 3}}, {"$max": {"n": 3}}),
        ({"$max": {"n": 3}}, {"$max": {"n": 1}}, {"$max": {"n": 3}}),
        ({"$min": {"n": 1}}, {"$min": {"n": 3}}, {"$min": {"n": 1}}),
        ({"$set": {"n": 4}}, {"$max": {"n": 9}}, {"$set": {"n": 9}}),
        ({"$set": {"n": 4}}, {"$min": {"n": 9}}, {"$set": {"n": 4}}),
        (
            {"$max": {"seen": datetime(2025, 1, 1, tzinfo=UTC)}},
            {"$max": {"seen": datetime(2025, 2, 1, tzinfo=UTC)}},
            {"$max": {"seen": datetime(2025, 2, 1, tzinfo=UTC)}},
        ),
        (
            {"$push": {"l": 1}},
            {"$push": {"l": {"$each": [2, 3]}}},
            {"$push": {"l": {"$each": [1, 2, 3]}}},
        ),
        (
            {"$push": {"l": {"$each": [1], "$slice": -5}}},
            {"$push": {"l": {"$each": [2], "$slice": -5}}},
            {"$push": {"l": {"$each": [1, 2], "$slice": -5}}},
        ),
        ({"$set": {"l": [1]}}, {"$push": {"l": 2}}, {"$set": {"l": [1, 2]}}),
        ({"$unset": {"l": ""}}, {"$push": {"l": 2}}, {"$set": {"l": [2]}}),
        (
            {"$addToSet": {"s": 1}},
            {"$addToSet": {"s": {"$each": [1, 2]}}},
            {"$addToSet": {"s": {"$each": [1, 1, 2]}}},
        ),
        (
            {"$setOnInsert": {"created": 1}},
            {"$set": {"x": 1}},
            {"$setOnInsert": {"created": 1}, "$set": {"x": 1}},
        ),
        ({"$set": {"a.b": 1}}, {"$set": {"a.c": 2}}, {"$set": {"a.b": 1, "a.c": 2}}),
        ({"$pull": {"l": 1}}, {"$inc": {"n": 1}}, {"$pull": {"l": 1}, "$inc": {"n": 1}}),
        ({"$currentDate": {"at": True}}, {"$set": {"at": 1}}, {"$set": {"at": 1}}),
        ({}, {"$set": {"a": 1}}, {"$set": {"a": 1}}),
    ],
)
def test_updates_that_compose(first: Update, then: Update, merged: Update) -> None:
    assert compose(first, then) == merged


@pytest.mark.parametrize(
    ("first", "then"),
    [
        ({"$set": {"a": {"b": 1}}}, {"$set": {"a.b": 2}}),  # a path inside another
        ({"$set": {"a.b": 1}}, {"$unset": {"a": ""}}),  # ... and the other way round
        ({"$unset": {"a": ""}}, {"$set": {"a.b": 1}}),
        ({"$set": {"a.b": 1}}, {"$unset": {"a.b": ""}}),  # it would leave a: {} behind
        ({"$inc": {"a.b": 1}}, {"$unset": {"a.b": ""}}),
        ({"$unset": {"l.0": ""}}, {"$inc": {"l.0": 1}}),  # $unset nulls an array element
        ({"$inc": {"n": 1}}, {"$max": {"n": 2}}),  # operators that do not compose
        ({"$max": {"n": 1}}, {"$min": {"n": 2}}),
        ({"$inc": {"n": 1}}, {"$inc": {"n": 0.5}}),  # double sums need not be exact
        ({"$inc": {"n": 0.5}}, {"$inc": {"n": 1}}),
        ({"$set": {"n": "x"}}, {"$inc": {"n": 1}}),
        ({"$set": {"n": 1.5}}, {"$inc": {"n": 1}}),
        ({"$max": {"n": 1}}, {"$max": {"n": "b"}}),  # MongoDB orders types, Python does not
        ({"$max": {"n": float("nan")}}, {"$max": {"n": 1}}),
        (
            {"$max": {"at": datetime(2025, 1, 1)}},  # naive and aware
            {"$max": {"at": datetime(2025, 1, 1, tzinfo=UTC)}},
        ),
        ({"$push": {"l": {"$each": [1], "$sort": 1}}}, {"$push": {"l": 2}}),
        ({"$push": {"l": 1}}, {"$push": {"l": {"$each": [2], "$position": 0}}}),
        (
            {"$push": {"l": {"$each": [1], "$slice": 3}}},
            {"$push": {"l": {"$each": [2], "$slice": 4}}},
        ),
        ({"$push": {"l": 1}}, {"$push": {"l": {"$each": [2], "$slice": 4}}}),
        ({"$set": {"l": [1]}}, {"$push": {"l": {"$each": [2], "$slice": -1}}}),
        ({"$addToSet": {"s": 1}}, {"$push": {"s": 2}}),
        ({"$set": {"s": [1]}}, {"$addToSet": {"s": 2}}),
        ({"$set": {"x": 1}}, {"$setOnInsert": {"y": 1}}),  # a later one would apply too often
        ({"$pull": {"l": 1}}, {"$pull": {"l": 2}}),
        ({"$set": {"a": 1}}, {"$rename": {"b": "c"}}),
        ({"$rename": {"b": "c"}}, {"$set": {"a": 1}}),
        ({"$set": {"a": 1}}, {"$frobnicate": {"a": 1}}),
        ({"$set": {"a.$": 1}}, {"$set": {"b": 1}}),  # positional paths
        ({"$set": {"a": 1}}, {"$set": {"b": 1}, "$inc": {"b": 1}}),  # MongoDB rejects it
        ({"$set": {"a": 1}}, {"$set": {"b": 1, "b.c": 1}}),
    ],
)
def test_updates_that_do_not_compose(first: Update, then: Update) -> None:
    assert compose(first, then) is None


def test_composing_leaves_the_handlers_updates_untouched() -> None:
    first, then = {"$set": {"l": [1]}}, {"$push": {"l": {"$each": [2]}}}
    before = copy.deepcopy((first, then))
    assert compose(first, then) == {"$set": {"l": [1, 2]}}
    assert (first, then) == before


def test_guard_values_are_distinct_when_an_event_updates_a_document_twice() -> None:
    one, other = ("c", "d1"), ("c", "d2")
    assert guard_values([], 4) == []
    assert guard_values([one], 4) == [4]
    assert guard_values([one, other], 4) == [4, 4]
    assert guard_values([one, other, one, one], 4) == [3 + 1 / 3, 4, 3 + 2 / 3, 4]


def test_a_group_is_one_upsert_guarded_from_its_first_version_to_its_last() -> None:
    group = Group("d1", "_applied.k", {"$set": {"a": 1}, "$inc": {"n": 1}}, 3)
    assert group.absorb({"$set": {"a": 2}, "$inc": {"n": 1}}, 4)
    assert group.absorb({"$inc": {"n": 1}}, 5)
    assert not group.absorb({"$set": {"n": {"deep": 1}}, "$unset": {"n.deep": ""}}, 6)
    query, update = group.write()
    assert query == {"_id": "d1", "_applied.k": {"$not": {"$gte": 3}}}
    assert update == {"$set": {"a": 2, "_applied.k": 5}, "$inc": {"n": 3}}
    assert group.replay() == [
        (
            {"_id": "d1", "_applied.k": {"$not": {"$gte": 3}}},
            {"$set": {"a": 1, "_applied.k": 3}, "$inc": {"n": 1}},
        ),
        (
            {"_id": "d1", "_applied.k": {"$not": {"$gte": 4}}},
            {"$set": {"a": 2, "_applied.k": 4}, "$inc": {"n": 1}},
        ),
        (
            {"_id": "d1", "_applied.k": {"$not": {"$gte": 5}}},
            {"$inc": {"n": 1}, "$set": {"_applied.k": 5}},
        ),
    ]


def test_an_update_that_cannot_merge_is_written_as_it_is() -> None:
    update = {"$rename": {"a": "b"}}
    group = Group("d1", "_applied.k", update, 2)
    assert not group.absorb({"$set": {"c": 1}}, 3)
    assert group.write()[1] == {"$rename": {"a": "b"}, "$set": {"_applied.k": 2}}
    assert update == {"$rename": {"a": "b"}}


# --- Property: merged groups have the effect of their updates applied one by one ----------


NUMBERS = ("n", "k", "m.x", "m.y")  # hold a number, or are absent
halves = st.integers(-8, 8).map(lambda n: n / 2)  # their sums are exact
numbers = st.one_of(st.integers(-5, 5), halves)
lists = st.lists(st.integers(0, 4), max_size=3)


def number_effect(path: str) -> st.SearchStrategy[tuple[str, str, Any]]:
    return st.one_of(
        st.tuples(
            st.sampled_from(["$set", "$inc", "$max", "$min", "$setOnInsert"]),
            st.just(path),
            numbers,
        ),
        st.tuples(st.just("$unset"), st.just(path), st.just("")),
    )


each = st.builds(lambda items: {"$each": items}, lists)
sliced = st.builds(
    lambda items, size: {"$each": items, "$slice": size}, lists, st.sampled_from([-2, 3])
)
effects = st.one_of(
    st.sampled_from(NUMBERS).flatmap(number_effect),
    st.tuples(st.just("$set"), st.just("m"), st.fixed_dictionaries({"x": st.integers(0, 3)})),
    st.tuples(st.just("$unset"), st.sampled_from(["m", "l"]), st.just("")),
    st.tuples(st.just("$set"), st.just("l"), lists),
    st.tuples(st.just("$push"), st.just("l"), st.one_of(st.integers(0, 4), each, sliced)),
    st.tuples(st.just("$addToSet"), st.just("l"), st.one_of(st.integers(0, 4), each)),
)


def _overlap(a: str, b: str) -> bool:
    return a == b or a.startswith(b + ".") or b.startswith(a + ".")


@st.composite
def updates(draw: st.DrawFn) -> Update:
    """One valid update: one to three operators on paths that do not overlap."""
    update: Update = {}
    paths: list[str] = []
    for operator, path, operand in draw(st.lists(effects, min_size=1, max_size=3)):
        if not any(_overlap(path, other) for other in paths):
            paths.append(path)
            update.setdefault(operator, {})[path] = operand
    return update


start = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {"_id": st.just("d")},
        optional={
            "n": numbers,
            "k": numbers,
            "m": st.fixed_dictionaries({}, optional={"x": numbers, "y": numbers}),
            "l": lists,
        },
    ),
)


@settings(max_examples=1000)
@given(start, st.lists(updates(), min_size=1, max_size=8))
def test_merged_groups_have_the_effect_of_their_updates_in_order(
    document: dict[str, Any] | None, sequence: list[Update]
) -> None:
    expected = document
    for update in sequence:
        expected = apply_update(expected, update)

    groups: list[Group] = []
    for version, update in enumerate(sequence, start=1):
        if not groups or not groups[-1].absorb(update, version):
            groups.append(Group("d", "_applied.k", update, version))
    merged = document
    for group in groups:
        query, update = group.write()
        assert query["_applied.k"] == {"$not": {"$gte": group.steps[0][1]}}
        assert update["$set"].pop("_applied.k") == group.steps[-1][1]
        merged = apply_update(merged, update)
    assert merged == expected


def test_the_customer_cards_batch_merges_into_one_group_per_customer() -> None:
    group = Group("c1", "_applied.k", {"$set": {"name": "Li"}, "$inc": {"changes": 1}}, 1)
    for version in range(2, 11):
        assert group.absorb({"$set": {"phone": f"+86 {version}"}, "$inc": {"changes": 1}}, version)
    assert group.write()[1] == {
        "$set": {"name": "Li", "phone": "+86 10", "_applied.k": 10},
        "$inc": {"changes": 10},
    }
