"""The base of every event-sourced aggregate: its events carry the command's context."""

from __future__ import annotations

from typing import Any

from eventsourcing.domain import Aggregate

from crm_backbone.context import current_context


class TracedAggregate(Aggregate):
    """An ``eventsourcing`` aggregate whose events record actor, correlation and causation.

    The values come from :func:`crm_backbone.context.command_context`, set by the API
    layer from the request, so domain methods stay free of plumbing arguments.
    """

    class Event(Aggregate.Event):
        actor: str
        correlation_id: str
        causation_id: str | None

    class Created(Event, Aggregate.Created):
        pass

    def trigger_event(self, event_class: Any, **kwargs: Any) -> None:
        super().trigger_event(event_class, **_with_context(kwargs))

    @classmethod
    def _create(cls, event_class: Any, *, id: Any = None, **kwargs: Any) -> Any:
        return super()._create(event_class, id=id, **_with_context(kwargs))


def _with_context(kwargs: dict[str, Any]) -> dict[str, Any]:
    context = current_context()
    kwargs.setdefault("actor", context.actor)
    kwargs.setdefault("correlation_id", context.correlation_id)
    kwargs.setdefault("causation_id", context.causation_id)
    return kwargs
