"""Payload models registered by (event type, schema version), and upcasters between versions.

The current version of a type is the highest registered. Older versions are read by
upcasting their JSON step by step (N -> N+1 -> ... -> current) and validating the result
against the current model.
"""

from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from crm_events.errors import (
    InvalidEventBody,
    MalformedEvent,
    UnknownEventType,
    UnknownSchemaVersion,
    summarise,
)

JsonObject = dict[str, Any]
Upcaster = Callable[[JsonObject], JsonObject]


class FrozenModel(BaseModel):
    """Immutable model that rejects unknown fields: the base of every contract model."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class EventPayload(FrozenModel):
    """Payload of an integration event; the envelope's subject is the aggregate id.

    ``event_type`` and ``schema_version`` are set by the registering decorator.
    """

    event_type: ClassVar[str]
    schema_version: ClassVar[int]
    subject_field: ClassVar[str | None] = None
    """The field naming whose personal data the payload holds (``crm_events.personal``);
    None, or the field unset: the envelope's aggregate id."""


P = TypeVar("P", bound=EventPayload)
U = TypeVar("U", bound=Upcaster)


class Registry:
    """Payload models by type and version, with the upcasters that connect versions."""

    def __init__(self) -> None:
        self._models: dict[str, dict[int, type[EventPayload]]] = {}
        self._upcasters: dict[tuple[str, int], Upcaster] = {}

    def event(self, event_type: str, version: int = 1) -> Callable[[type[P]], type[P]]:
        """Class decorator registering a payload model as ``version`` of ``event_type``."""

        def register(model: type[P]) -> type[P]:
            versions = self._models.setdefault(event_type, {})
            if version < 1 or version in versions:
                raise ValueError(f"{event_type} v{version} is invalid or already registered")
            model.event_type = event_type
            model.schema_version = version
            versions[version] = model
            return model

        return register

    def upcaster(self, event_type: str, from_version: int) -> Callable[[U], U]:
        """Decorator registering a function turning ``from_version`` JSON into the next's."""

        def register(function: U) -> U:
            key = (event_type, from_version)
            if key in self._upcasters:
                raise ValueError(f"upcaster for {event_type} v{from_version} already registered")
            self._upcasters[key] = function
            return function

        return register

    def event_types(self) -> list[str]:
        """Every registered event type, sorted."""
        return sorted(self._models)

    def versions(self, event_type: str) -> list[int]:
        """Registered versions of ``event_type``, ascending."""
        return sorted(self._versions(event_type))

    def model(self, event_type: str, version: int | None = None) -> type[EventPayload]:
        """The model of ``version`` (default: the current one) of ``event_type``."""
        versions = self._versions(event_type)
        model = versions.get(max(versions) if version is None else version)
        if model is None:
            known = ", ".join(f"v{v}" for v in sorted(versions))
            raise UnknownSchemaVersion(f"{event_type} v{version} is unknown (known: {known})")
        return model

    def upcast(self, event_type: str, version: int, body: JsonObject) -> JsonObject:
        """Upcast ``version`` JSON of ``event_type`` step by step to the current version."""
        current = self.model(event_type).schema_version
        self.model(event_type, version)  # raises for a version never registered
        for step in range(version, current):
            upcaster = self._upcasters.get((event_type, step))
            if upcaster is None:
                raise UnknownSchemaVersion(f"{event_type} has no upcaster from v{step}")
            body = upcaster(body)
        return body

    def decode(self, event_type: str, version: int, body: bytes | JsonObject) -> EventPayload:
        """Validate a body of ``version`` (JSON, or JSON already parsed) into the current
        model of ``event_type``.

        The current version is validated straight from bytes (one parse). An older one is
        validated against its own model, so upcasters always get valid input, then upcast.
        """
        model = self.model(event_type)
        try:
            if version == model.schema_version:
                return _validated(model, body)
            old = _validated(self.model(event_type, version), body)
            return model.model_validate(
                self.upcast(event_type, version, old.model_dump(mode="json"))
            )
        except ValidationError as error:
            if any(e["type"] == "json_invalid" for e in error.errors(include_url=False)):
                raise MalformedEvent(f"body is not JSON: {summarise(error)}") from None
            raise InvalidEventBody(summarise(error)) from None

    def _versions(self, event_type: str) -> dict[int, type[EventPayload]]:
        versions = self._models.get(event_type)
        if versions is None:
            raise UnknownEventType(f"no payload model registered for {event_type!r}")
        return versions


def _validated(model: type[EventPayload], body: bytes | JsonObject) -> EventPayload:
    if isinstance(body, dict):
        return model.model_validate(body)
    return model.model_validate_json(body)


registry = Registry()
event = registry.event
upcaster = registry.upcaster
