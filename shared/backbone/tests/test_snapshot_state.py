"""A snapshot's state comes back with its values' types, through the store's transcoder;
snapshots written before that are passed over."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum, IntEnum, StrEnum
from typing import Any

import pytest
from crm_backbone.aggregate import typed_state, untyped_state
from crm_backbone.application import ServiceApplication
from crm_backbone.context import command_context
from crm_backbone.snapshot_check import assert_same
from crm_backbone.testing import Customer
from eventsourcing.domain import Snapshot as LibrarySnapshot
from hypothesis import given
from hypothesis import strategies as st


class Colour(StrEnum):
    RED = "red"
    BLUE = "blue"


class Rank(IntEnum):
    LOW = 1
    HIGH = 2


class Shape(Enum):
    ROUND = ("round", 1)


@dataclass(frozen=True)
class Money:
    amount: Decimal
    currency: str


class Point:
    """Not a type a snapshot can restore."""


APP = ServiceApplication(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})

keys = st.text(max_size=3) | st.sampled_from(["__crm_type__", "_type_", "_data_", "value"])
hashable = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.text(max_size=5),
    st.sampled_from([*Colour, *Rank, *Shape]),
    st.dates(),
    st.decimals(allow_nan=False),
    st.uuids(),
    st.timedeltas(),
)
leaves = hashable | st.floats(allow_nan=False) | st.datetimes(timezones=st.just(dt.UTC))
values = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.tuples(inner, inner),
        st.dictionaries(keys, inner, max_size=3),
        st.dictionaries(hashable, inner, max_size=3),
        st.sets(hashable, max_size=3),
        st.frozensets(hashable, max_size=3),
        st.builds(Money, st.decimals(allow_nan=False), st.text(max_size=3)),
        st.fixed_dictionaries({"_type_": st.text(max_size=3), "_data_": inner}),
    ),
    max_leaves=12,
)


@given(st.dictionaries(st.text(min_size=1, max_size=8), values, max_size=5))
def test_any_state_comes_back_with_its_types_through_the_transcoder(state: dict[str, Any]) -> None:
    stored = APP.mapper.transcoder.encode(typed_state(state))
    assert_same(untyped_state(APP.mapper.transcoder.decode(stored)), state, "state")


def test_a_value_a_snapshot_cannot_restore_is_refused_when_taken() -> None:
    with pytest.raises(TypeError, match="Point"):
        typed_state({"where": Point()})


def test_snapshots_written_before_typed_ones_are_passed_over() -> None:
    app = ServiceApplication(
        env={"PERSISTENCE_MODULE": "eventsourcing.popo", "IS_SNAPSHOTTING_ENABLED": "y"}
    )
    assert app.snapshots is not None
    with command_context(actor="test"):
        customer = Customer(full_name="Test Person", branch_id="BR-1")
        app.save(customer)
        legacy = LibrarySnapshot.take(customer)
        app.snapshots.put([legacy])
        assert list(app.snapshots.get(customer.id, desc=True, limit=1)) == []
        customer.change_phone("+86 1")
        app.save(customer)
        app.take_snapshot(customer.id)
    latest = list(app.snapshots.get(customer.id, desc=True, limit=1))
    assert [s.originator_version for s in latest] == [2]
    assert app.repository.get(customer.id).phone == "+86 1"
