"""Test helper: an aggregate restored from a snapshot is the aggregate replayed from its
events, and behaves like it.

Each service's tests generate command sequences for each aggregate type and hand them to
:func:`check_snapshots`, which runs them through the same mapper (transcoder included)
that the service's event store uses.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from eventsourcing.application import project_aggregate
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import Mapper, StoredEvent

from crm_backbone.context import command_context

Command = tuple[str, dict[str, Any]]
"""A command method's name and its keyword arguments."""

_MOMENTS = frozenset({"_modified_on", "timestamp"})
"""When an event happened, or an aggregate last changed: the clock's, not the command's."""


def check_snapshots(
    mapper: Mapper[Any], create: Callable[[], Aggregate], commands: Sequence[Command]
) -> None:
    """Run ``commands`` on the aggregate ``create`` makes, snapshotting before each one.

    At every point the aggregate restored from a snapshot (taken and read back through
    ``mapper``) must hold the state of the aggregate replayed from its stored events,
    types included; and every aggregate restored so far must answer every later command
    as the original does (same result or same refusal, same events, same state).
    """
    with command_context(actor="snapshot-check"):
        original = create()
        stored = [mapper.to_stored_event(event) for event in original.collect_events()]
        followers: list[Aggregate] = []
        for name, arguments in commands:
            followers.append(_check_restored(mapper, original, stored))
            answer, events = _run(original, name, arguments)
            stored += [mapper.to_stored_event(event) for event in events]
            outcome = _outcome(answer, events)
            for follower in followers:
                assert_same(_outcome(*_run(follower, name, arguments)), outcome, f"{name}")
                assert_same(_state(follower), _state(original), f"state after {name}")
        _check_restored(mapper, original, stored)


def _check_restored(
    mapper: Mapper[Any], original: Aggregate, stored: list[StoredEvent]
) -> Aggregate:
    """The aggregate restored from a snapshot of ``original``, checked against a replay."""
    snapshot = type(original).Snapshot.take(original)
    restored: Aggregate = mapper.to_domain_event(mapper.to_stored_event(snapshot)).mutate(None)  # type: ignore[attr-defined]
    replayed = project_aggregate(None, map(mapper.to_domain_event, stored))
    assert_same(_state(restored), _state(replayed), "restored from the snapshot")
    return restored


def assert_same(actual: Any, expected: Any, what: str) -> None:
    """``actual`` equals ``expected``, and every value in it has the expected type."""
    difference = _difference(actual, expected, "")
    assert difference is None, f"{what}: differs at {difference}"


def _run(aggregate: Aggregate, name: str, arguments: dict[str, Any]) -> tuple[Any, list[Any]]:
    """What the command answered (its result, or the refusal it raised) and its events."""
    try:
        answer = getattr(aggregate, name)(**arguments)
    except Exception as refusal:
        answer = ("refused", type(refusal), str(refusal))
    return answer, list(aggregate.collect_events())


def _outcome(answer: Any, events: list[Any]) -> Any:
    """A command's answer and events, without the moments they happened."""
    if isinstance(answer, Aggregate):
        created = {k: v for k, v in _state(answer).items() if k != "_created_on"}
        answer = (type(answer), created, [_state(e) for e in answer.collect_events()])
    return answer, [(type(event), _state(event)) for event in events]


def _state(thing: Any) -> dict[str, Any]:
    return {k: v for k, v in vars(thing).items() if k not in _MOMENTS and k != "_pending_events"}


def _difference(actual: Any, expected: Any, path: str) -> str | None:
    if type(actual) is not type(expected):
        return f"{path or '.'}: {type(actual).__name__} {actual!r} is not {type(expected).__name__}"
    if isinstance(expected, dict):
        if actual.keys() != expected.keys():
            return f"{path or '.'}: keys {sorted(actual)} are not {sorted(expected)}"
        for key in expected:
            found = _difference(actual[key], expected[key], f"{path}.{key}")
            if found:
                return found
        return None
    if isinstance(expected, list | tuple):
        if len(actual) != len(expected):
            return f"{path or '.'}: {len(actual)} items, not {len(expected)}"
        for index, (a, e) in enumerate(zip(actual, expected, strict=True)):
            found = _difference(a, e, f"{path}[{index}]")
            if found:
                return found
        return None
    if isinstance(expected, set | frozenset):
        typed = {(type(item), item) for item in expected}
        return None if {(type(i), i) for i in actual} == typed else f"{path}: {actual!r}"
    if dataclasses.is_dataclass(expected) and not isinstance(expected, type):
        return _difference(vars(actual), vars(expected), path)
    return None if actual == expected else f"{path or '.'}: {actual!r} is not {expected!r}"
