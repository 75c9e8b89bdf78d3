"""Folding view updates: consecutive updates of one document into one guarded upsert.

The algebra the projection engine (:mod:`crm_backbone.projection`) writes a batch with:
which MongoDB update documents compose (:func:`compose`), the guard value of each update
(:func:`guard_values`), and the groups a batch's updates fold into (:class:`Folding`).

Write strategy
--------------
Updates of one document from one aggregate must apply in version order. Within a batch,
the consecutive updates of each (collection, document, aggregate) *slot* are folded into
*groups*: runs of updates whose operators compose into a single update with the same
effect. A later ``$set`` of a path replaces what came before on it, and so does a later
``$unset`` of a top-level field (of a dotted path, only another ``$unset``); integer
``$inc`` s add up; ``$max``/``$min`` keep the extreme value; ``$push`` (without ``$sort`` or
``$position``, with the same ``$slice``) and ``$addToSet`` concatenate their ``$each``; a
``$set`` or ``$unset`` followed by ``$inc``/``$max``/``$min``/``$push`` becomes a ``$set``
of the result; operators on paths that neither equal nor contain one another just sit side
by side. Anything else (``a`` and ``a.b`` in different updates, other operator pairs on one
path, ``$rename``, unknown operators, ``$setOnInsert`` after the first update, an update
whose own paths conflict) ends the group, and the next update starts a new one. The batch
is written in waves of groups: wave *n* holds the *n*-th group of every slot, one unordered
bulk write per collection (the collections concurrently). Usually every slot is one group,
so a batch costs one view write, one positions read and one positions write, however many
events each aggregate has in it.

Why it is safe
--------------
Every update has a *guard value*: its event's aggregate version; when one event updates
the same document k times, its j-th update (from 0) but the last gets
``version - 1 + (j + 1) / k``, so the updates of a slot have strictly increasing guard
values. A group whose updates carry guard values ``first .. last`` is one upsert filtered
on ``_applied.<key>`` not ≥ ``first``, which sets it to ``last``: it matches only a
document holding none of the group's updates, and then applies them all at once (a single
document update is atomic). A document holding some of them already (the view was
written but the positions were lost in a crash, and the events came back, perhaps cut
into other batches) does not match, and the upsert fails with a duplicate key. Refused
groups are replayed one update per wave, each guarded by its own guard value, in order:
the updates the document already holds are refused again, the others applied once. A
duplicate key during that replay is final, since the first refusal proved the document
exists; so the replay also settles two writers inserting the same new document at once.

Merging is exact on the documents' values (but for the clock ``$currentDate`` reads). It
may differ in what no value comparison sees: the order of fields first created by
different updates of a group (MongoDB creates the fields of one update in name order), the
BSON width of integers (int32 or int64), and the last bit of a double field when it
receives merged integer ``$inc`` s (double ``$inc`` operands are never merged). And an
update MongoDB would refuse for the value it finds (an ``$inc`` of a text field) is not
refused if a later ``$set`` of that path absorbed it.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Hashable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from crm_backbone.records import Document

_Effect = tuple[str, Any]
"""What one update does to one path: its operator and operand."""

_COMPOSABLE = frozenset(
    {"$set", "$unset", "$inc", "$max", "$min", "$push", "$addToSet", "$setOnInsert"}
)
"""Operators that may be merged with others (:func:`_then` says when on the same path)."""
_SIDE_BY_SIDE = frozenset({"$mul", "$pull", "$pullAll", "$pop", "$bit", "$currentDate"})
"""Operators merged only with operators on other paths (or replaced by a later ``$set``)."""
_MERGEABLE = _COMPOSABLE | _SIDE_BY_SIDE


def _ancestors(path: str) -> list[str]:
    """``"a.b.c"`` → ``["a", "a.b"]``: the paths that contain ``path``."""
    if "." not in path:
        return []
    parts = path.split(".")
    return [".".join(parts[:end]) for end in range(1, len(parts))]


def _effects(update: Mapping[str, Any]) -> dict[str, _Effect] | None:
    """Path → effect of one update; None if it cannot take part in a merge.

    That is when it uses an operator outside :data:`_COMPOSABLE` and :data:`_SIDE_BY_SIDE`
    (``$rename`` touches two paths), a positional path (``a.$``), or paths that conflict
    with one another (MongoDB rejects such an update, and must go on rejecting it).
    """
    effects: dict[str, _Effect] = {}
    dotted = False
    for operator, fields in update.items():
        if operator not in _MERGEABLE:
            return None
        if type(fields) is not dict and not isinstance(fields, Mapping):
            return None
        for path, operand in fields.items():
            if type(path) is not str or not path or "$" in path or path in effects:
                return None
            if "." in path:
                dotted = True
            effects[path] = (operator, operand)
    if dotted and len(effects) > 1:
        ancestors = {ancestor for path in effects for ancestor in _ancestors(path)}
        if not ancestors.isdisjoint(effects):
            return None
    return effects


def _is_int(value: Any) -> bool:
    return type(value) is int or (isinstance(value, int) and not isinstance(value, bool))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _ordered(a: Any, b: Any) -> bool:
    """Whether Python orders ``a`` and ``b`` as MongoDB does (numbers, or like datetimes)."""
    if _is_number(a) and _is_number(b):
        return not (math.isnan(a) or math.isnan(b))
    if isinstance(a, datetime) and isinstance(b, datetime):
        return (a.tzinfo is None) == (b.tzinfo is None)
    return False


def _each(operand: Any, modifiers: frozenset[str]) -> tuple[list[Any], dict[str, Any]] | None:
    """A ``$push``/``$addToSet`` operand as (items, modifiers); None with other modifiers."""
    if isinstance(operand, Mapping) and any(str(name).startswith("$") for name in operand):
        items = operand.get("$each")
        rest = {name: value for name, value in operand.items() if name != "$each"}
        if not isinstance(items, list) or not modifiers.issuperset(rest):
            return None
        return items, rest
    return [operand], {}


_NO_MODIFIERS: frozenset[str] = frozenset()
_SLICE: frozenset[str] = frozenset({"$slice"})


def _then(path: str, first: _Effect, second: _Effect) -> _Effect | None:
    """The effect of ``first`` then ``second`` on ``path``, if one operator has it."""
    operator, then = first[0], second[0]
    if then == "$set":
        return second
    if then == "$unset":
        # Unless it is an $unset too, the first may have created the path's parents: an
        # $unset of ``a.b`` would leave ``a: {}`` behind, where an $unset alone leaves nothing.
        return second if operator == "$unset" or "." not in path else None
    if operator == "$unset":
        return _on_absent(path, second)
    if operator == "$set":
        return _on_value(first[1], second)
    return _repeated(first[1], second) if operator == then else None


def _on_absent(path: str, second: _Effect) -> _Effect | None:
    """``second`` on a path an ``$unset`` removed: what creates it, as a ``$set``."""
    then, operand = second
    if "." in path and any(part.isdigit() for part in path.split(".")):
        return None  # an array element, which $unset sets to null
    if (then == "$inc" and _is_number(operand)) or then in ("$max", "$min"):
        return ("$set", operand)
    if then == "$push" and (plain := _each(operand, _NO_MODIFIERS)) is not None:
        return ("$set", plain[0])
    return None


def _on_value(value: Any, second: _Effect) -> _Effect | None:
    """``second`` on a path a ``$set`` gave ``value``: the ``$set`` of the result."""
    then, operand = second
    if then == "$inc" and _is_int(value) and _is_int(operand):
        return ("$set", value + operand)
    if then in ("$max", "$min") and _ordered(value, operand):
        return ("$set", _extreme(then, value, operand))
    if then == "$push" and isinstance(value, list):
        plain = _each(operand, _NO_MODIFIERS)
        return ("$set", [*value, *plain[0]]) if plain is not None else None
    return None


def _repeated(before: Any, second: _Effect) -> _Effect | None:
    """An operator following itself on one path: operand ``before``, then ``second``'s."""
    then, operand = second
    if then == "$inc" and _is_int(before) and _is_int(operand):
        return ("$inc", before + operand)
    if then in ("$max", "$min") and _ordered(before, operand):
        return (then, _extreme(then, before, operand))
    if then in ("$push", "$addToSet"):
        allowed = _SLICE if then == "$push" else _NO_MODIFIERS
        items, more = _each(before, allowed), _each(operand, allowed)
        if items is not None and more is not None and items[1] == more[1]:
            return (then, {"$each": [*items[0], *more[0]], **items[1]})
    return None


def _extreme(operator: str, value: Any, operand: Any) -> Any:
    """What ``$max`` or ``$min`` of ``operand`` leaves of ``value``."""
    wins = operand > value if operator == "$max" else operand < value
    return operand if wins else value


def _update_of(effects: Mapping[str, _Effect]) -> Document:
    update: Document = {}
    for path, (operator, operand) in effects.items():
        update.setdefault(operator, {})[path] = operand
    return update


def compose(first: Mapping[str, Any], second: Mapping[str, Any]) -> Document | None:
    """One update with the effect of ``first`` then ``second``; None if they do not compose."""
    effects = _effects(first)
    if effects is None:
        return None
    group = _Merge(effects)
    return _update_of(group.effects) if group.absorb(second) else None


class _Merge:
    """The effects of a run of updates on one document, growing while updates compose."""

    __slots__ = ("ancestors", "effects")

    def __init__(self, effects: dict[str, _Effect]) -> None:
        self.effects = effects
        self.ancestors = {ancestor for path in effects for ancestor in _ancestors(path)}

    def absorb(self, update: Mapping[str, Any]) -> bool:
        """Fold ``update`` in after the others; False (and unchanged) if it does not compose."""
        new = _effects(update)
        if new is None:
            return False
        effects = self.effects
        for path, effect in new.items():  # ``new`` becomes the changes to make
            current = effects.get(path)
            if current is None:
                if effect[0] == "$setOnInsert" or path in self.ancestors:
                    return False
                if "." in path and any(a in effects for a in _ancestors(path)):
                    return False
            elif (combined := _then(path, current, effect)) is not None:
                new[path] = combined
            else:
                return False
        for path in new:
            if "." in path and path not in effects:
                self.ancestors.update(_ancestors(path))
        effects.update(new)
        return True


def guard_values(documents: Sequence[Hashable], version: int) -> list[float]:
    """The guard value of each update of one event, given the document each one updates
    (see the module docstring)."""
    if len(documents) < 2:
        return [version] * len(documents)
    counts: dict[Hashable, int] = defaultdict(int)
    for document in documents:
        counts[document] += 1
    if len(counts) == len(documents):
        return [version] * len(documents)
    seen: dict[Hashable, int] = defaultdict(int)
    guards: list[float] = []
    for document in documents:
        count, index = counts[document], seen[document]
        seen[document] += 1
        guards.append(version if index == count - 1 else version - 1 + (index + 1) / count)
    return guards


Write = tuple[Document, Document]
"""The filter and update of one guarded upsert."""


def _guarded(document_id: str, guard: str, first: float, last: float, update: Document) -> Write:
    """An upsert of ``update`` that applies only if the document has nothing from ``first`` on."""
    update.setdefault("$set", {})[guard] = last
    return {"_id": document_id, guard: {"$not": {"$gte": first}}}, update


class Group:
    """Consecutive updates of one slot, written as one guarded upsert when they compose."""

    __slots__ = ("document_id", "guard", "merge", "steps")

    def __init__(self, document_id: str, guard: str, update: Document, value: float) -> None:
        self.document_id = document_id
        self.guard = guard  # the guard field, _applied.<key>
        self.steps: list[tuple[Document, float]] = [(update, value)]  # (update, guard value)
        effects = _effects(update)
        self.merge = _Merge(effects) if effects is not None else None

    def absorb(self, update: Document, value: float) -> bool:
        """Take ``update`` (guard value ``value``) if it composes with the group's updates."""
        if self.merge is None or not self.merge.absorb(update):
            return False
        self.steps.append((update, value))
        return True

    def write(self) -> Write:
        """All the group's updates as one upsert, guarded from the first to the last."""
        first, last = self.steps[0][1], self.steps[-1][1]
        if self.merge is None:
            update = {operator: dict(fields) for operator, fields in self.steps[0][0].items()}
        else:
            update = _update_of(self.merge.effects)
        return _guarded(self.document_id, self.guard, first, last, update)

    def replay(self) -> list[Write]:
        """The updates one by one, each guarded by its own value: the refusal fallback."""
        return [
            _guarded(
                self.document_id,
                self.guard,
                value,
                value,
                {operator: dict(fields) for operator, fields in update.items()},
            )
            for update, value in self.steps
        ]


Slot = tuple[str, str, str]
"""(collection, document id, guard field): the updates of one document from one aggregate."""


class Folding:
    """A batch's updates, the consecutive updates of each slot folded into groups."""

    __slots__ = ("slots",)

    def __init__(self) -> None:
        self.slots: dict[Slot, list[Group]] = {}

    def add(
        self, collection: str, document_id: str, guard: str, update: Document, value: float
    ) -> None:
        """Fold in the next update of a slot: guard field ``guard``, guard value ``value``."""
        slot = (collection, document_id, guard)
        groups = self.slots.get(slot)
        if groups is None:
            self.slots[slot] = [Group(document_id, guard, update, value)]
        elif not groups[-1].absorb(update, value):
            groups.append(Group(document_id, guard, update, value))

    def waves(self) -> Iterator[list[tuple[str, Group]]]:
        """The groups wave by wave: wave *n* holds the *n*-th group of every slot that has
        one, each with its collection."""
        depth = max((len(groups) for groups in self.slots.values()), default=0)
        for n in range(depth):
            yield [(slot[0], groups[n]) for slot, groups in self.slots.items() if len(groups) > n]
