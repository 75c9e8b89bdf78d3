"""The base of every event-sourced aggregate: its events carry the command's context."""

from __future__ import annotations

import uuid
from typing import Any, ClassVar

from eventsourcing.domain import Aggregate

from crm_backbone.context import current_context

_KEY_NAMESPACE = uuid.UUID("0f5b8a52-6f3e-4c0e-9d1e-2a7c4b1d9e11")


class TracedAggregate(Aggregate):
    """An ``eventsourcing`` aggregate whose events record actor, correlation and causation.

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
        correlation_id: str
        causation_id: str | None
        subject: str

    class Created(Event, Aggregate.Created):
        pass

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
    kwargs.setdefault("correlation_id", context.correlation_id)
    kwargs.setdefault("causation_id", context.causation_id)
    return kwargs
