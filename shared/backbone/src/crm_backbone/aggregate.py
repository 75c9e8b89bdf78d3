"""The base of every event-sourced aggregate: its events carry the command's context,
and its snapshots give back the state they were taken from, types included."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any, ClassVar, Self

from eventsourcing.domain import Aggregate
from eventsourcing.domain import Snapshot as LibrarySnapshot
from eventsourcing.utils import get_topic, resolve_topic

from crm_backbone.context import current_context

_KEY_NAMESPACE = uuid.UUID("0f5b8a52-6f3e-4c0e-9d1e-2a7c4b1d9e11")


class TracedAggregate(Aggregate):
    """An ``eventsourcing`` aggregate whose events record actor, client, correlation and
    causation.

    The values come from :func:`crm_backbone.context.command_context`, set by the API
    layer from the request, so domain methods stay free of plumbing arguments.

    Every event also carries ``subject``: the id the rest of the bank knows the aggregate
    by (the envelope's subject and Kafka key). It is the aggregate's UUID unless the class
    names a ``natural_key`` field (a customer number, say); then the UUID is derived from
    that key with :func:`uuid_for`, so the key finds the aggregate in the store.
    """

    natural_key: ClassVar[str | None] = None

    class Event(Aggregate.Event):
        actor: str
        client: str | None
        correlation_id: str
        causation_id: str | None
        subject: str

    class Created(Event, Aggregate.Created):
        pass

    class Snapshot(LibrarySnapshot):
        """A snapshot whose state keeps its Python types through the JSON transcoder.

        ``eventsourcing``'s own snapshot hands the aggregate's ``__dict__`` to the
        transcoder, and JSON keeps only JSON's types: a ``StrEnum`` comes back a ``str``
        (the encoder writes ``str`` subclasses as they are, without asking the
        transcodings), a tuple a list, an ``int`` dictionary key a ``str``; a set, a date
        or a dataclass cannot be written at all. Here the state is first written as
        plain JSON values that name the type of every other value (:func:`typed_state`),
        and read back into those types (:func:`untyped_state`).
        """

        @classmethod
        def take(cls, aggregate: Any) -> Self:
            taken = super().take(aggregate)
            object.__setattr__(taken, "state", typed_state(taken.state))
            return taken

        def mutate(self, _: None) -> Any:
            restored = dataclasses.replace(self, state=untyped_state(self.state))
            return LibrarySnapshot.mutate(restored, _)

    @classmethod
    def create_id(cls, *_: Any, **kwargs: Any) -> uuid.UUID:
        if cls.natural_key is None:
            return uuid.uuid4()
        return uuid_for(cls, str(kwargs[cls.natural_key]))

    @property
    def subject(self) -> str:
        return str(getattr(self, self.natural_key) if self.natural_key else self.id)

    def trigger_event(self, event_class: Any, **kwargs: Any) -> None:
        kwargs.setdefault("subject", self.subject)
        super().trigger_event(event_class, **_with_context(kwargs))

    @classmethod
    def _create(cls, event_class: Any, *, id: Any = None, **kwargs: Any) -> Any:
        id = id or cls.create_id(**kwargs)
        subject = kwargs[cls.natural_key] if cls.natural_key else id
        kwargs.setdefault("subject", str(subject))
        return super()._create(event_class, id=id, **_with_context(kwargs))


def uuid_for(aggregate_class: type[TracedAggregate], key: str) -> uuid.UUID:
    """The store id of the aggregate of ``aggregate_class`` known by natural ``key``."""
    return uuid.uuid5(_KEY_NAMESPACE, f"{aggregate_class.__name__}:{key}")


def _with_context(kwargs: dict[str, Any]) -> dict[str, Any]:
    context = current_context()
    kwargs.setdefault("actor", context.actor)
    kwargs.setdefault("client", context.client)
    kwargs.setdefault("correlation_id", context.correlation_id)
    kwargs.setdefault("causation_id", context.causation_id)
    return kwargs


# Snapshot state: Python values as plain JSON values -----------------------------------------

_TYPE = "__crm_type__"
"""Marks a JSON object that stands for a value of another type (its ``value``)."""
_TRANSCODER_MARK = frozenset({"_type_", "_data_"})
"""The keys of an object the ``eventsourcing`` transcoder would read as one of its own."""

_AS_TEXT: dict[type, tuple[str, Callable[[Any], str], Callable[[str], Any]]] = {
    datetime: ("datetime", datetime.isoformat, datetime.fromisoformat),
    date: ("date", date.isoformat, date.fromisoformat),
    time: ("time", time.isoformat, time.fromisoformat),
    Decimal: ("decimal", str, Decimal),
    uuid.UUID: ("uuid", str, uuid.UUID),
}
"""Values written as text, by exact type: name, to text, from text."""
_FROM_TEXT = {name: decode for name, _, decode in _AS_TEXT.values()}


def typed_state(state: dict[str, Any]) -> dict[str, Any]:
    """The aggregate state ``state`` as JSON values only (see :class:`TracedAggregate.Snapshot`).

    JSON's own values stay as they are; any other value becomes an object naming its
    type. Raises ``TypeError`` for a value of a type it cannot restore.
    """
    return {name: _typed(value) for name, value in state.items()}


def untyped_state(state: dict[str, Any]) -> dict[str, Any]:
    """The state :func:`typed_state` was given."""
    return {name: _untyped(value) for name, value in state.items()}


def _typed(value: Any) -> Any:
    kind = type(value)
    if value is None or kind in (str, int, float, bool):
        return value
    if kind is list:
        return [_typed(item) for item in value]
    if kind is dict:
        if (
            all(type(key) is str for key in value)
            and _TYPE not in value
            and (value.keys() != _TRANSCODER_MARK)
        ):
            return {key: _typed(item) for key, item in value.items()}
        return _tagged("dict", [[_typed(k), _typed(v)] for k, v in value.items()])
    if isinstance(value, Enum):
        return _tagged("enum", [get_topic(kind), _typed(value.value)])
    if kind in (set, frozenset):
        return _tagged(kind.__name__, [_typed(item) for item in value])
    if kind is tuple:
        return _tagged("tuple", [_typed(item) for item in value])
    if kind in _AS_TEXT:
        name, encode, _ = _AS_TEXT[kind]
        return _tagged(name, encode(value))
    if kind is timedelta:
        return _tagged("timedelta", [value.days, value.seconds, value.microseconds])
    if dataclasses.is_dataclass(value):
        fields = {f.name: _typed(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return _tagged("dataclass", [get_topic(kind), fields])
    raise TypeError(f"a snapshot cannot keep a {kind.__qualname__}: give it a JSON value")


def _untyped(value: Any) -> Any:
    if type(value) is list:
        return [_untyped(item) for item in value]
    if type(value) is not dict:
        return value
    if _TYPE not in value:
        return {key: _untyped(item) for key, item in value.items()}
    kind, data = value[_TYPE], value["value"]
    if kind == "dict":
        return {_untyped(k): _untyped(v) for k, v in data}
    if kind == "enum":
        return resolve_topic(data[0])(_untyped(data[1]))
    if kind == "set":
        return {_untyped(item) for item in data}
    if kind == "frozenset":
        return frozenset(_untyped(item) for item in data)
    if kind == "tuple":
        return tuple(_untyped(item) for item in data)
    if kind == "timedelta":
        return timedelta(days=data[0], seconds=data[1], microseconds=data[2])
    if kind == "dataclass":
        restored = object.__new__(resolve_topic(data[0]))
        for name, field in data[1].items():
            object.__setattr__(restored, name, _untyped(field))
        return restored
    return _FROM_TEXT[kind](data)


def _tagged(kind: str, data: Any) -> dict[str, Any]:
    return {_TYPE: kind, "value": data}
