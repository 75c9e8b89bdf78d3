"""MongoDB's update operators applied to a dict: a stand-in for unit tests of handlers.

Covers what the views write (``$set``, ``$setOnInsert``, ``$unset``, ``$inc``, ``$max``,
``$min``, ``$push`` with ``$each`` and ``$slice``, ``$addToSet``); anything else fails the
test rather than guess. ``tests/integration`` checks the same writes on genuine MongoDB.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

Update = dict[str, Any]


def _parent(document: dict[str, Any], path: str, create: bool) -> tuple[dict[str, Any] | None, str]:
    *parents, leaf = path.split(".")
    node: dict[str, Any] | None = document
    for name in parents:
        assert node is not None
        if name not in node:
            if not create:
                return None, leaf
            node[name] = {}
        node = node[name]
    return node, leaf


def _each(operand: Any) -> tuple[list[Any], Mapping[str, Any]]:
    if isinstance(operand, Mapping) and "$each" in operand:
        return list(operand["$each"]), operand
    return [operand], {}


def apply_update(document: dict[str, Any] | None, update: Update) -> dict[str, Any]:
    """MongoDB's upsert of ``update`` on ``document`` (None: absent), for the operators here."""
    inserting = document is None
    result: dict[str, Any] = {"_id": "d"} if document is None else copy.deepcopy(document)
    for operator, fields in update.items():
        if operator == "$setOnInsert" and not inserting:
            continue
        for path, operand in fields.items():
            parent, leaf = _parent(result, path, create=operator != "$unset")
            if parent is None:
                continue
            if operator == "$unset":
                parent.pop(leaf, None)
            else:
                parent[leaf] = _value_after(operator, operand, parent.get(leaf, _ABSENT))
    return result


_ABSENT = object()


def _value_after(operator: str, operand: Any, current: Any) -> Any:
    """The value ``operator`` with ``operand`` leaves at a path holding ``current``."""
    present = current is not _ABSENT
    if operator in ("$set", "$setOnInsert"):
        return copy.deepcopy(operand)
    if operator == "$inc":
        return current + operand if present else operand
    if operator == "$max":
        return operand if not present or operand > current else current
    if operator == "$min":
        return operand if not present or operand < current else current
    if operator == "$push":
        return _pushed(current if present else [], operand)
    if operator == "$addToSet":
        return _added(current if present else [], operand)
    raise AssertionError(f"the interpreter has no {operator}")


def _pushed(current: list[Any], operand: Any) -> list[Any]:
    items, modifiers = _each(operand)
    pushed = [*current, *items]
    if "$slice" in modifiers:
        size = modifiers["$slice"]
        pushed = pushed[size:] if size < 0 else pushed[:size]
    return pushed


def _added(current: list[Any], operand: Any) -> list[Any]:
    added = list(current)
    for item in _each(operand)[0]:
        if item not in added:
            added.append(item)
    return added
