"""From a service's stored domain events to the integration events it publishes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from crm_events.registry import EventPayload

from crm_backbone.relay import Translate


def translator(payloads: Mapping[str, type[EventPayload]]) -> Translate:
    """Translate by name: ``payloads`` maps a domain event class's qualified name
    (``Customer.Registered``) to its payload model, whose fields are read from the event's
    attributes of the same names. Events not in ``payloads`` stay private (None)."""

    def translate(domain_event: Any) -> EventPayload | None:
        model = payloads.get(type(domain_event).__qualname__)
        if model is None:
            return None
        return model.model_validate(
            {name: getattr(domain_event, name) for name in model.model_fields}
        )

    return translate
