"""Personal data sealed in the event store: the ``eventsourcing`` mapper of every service.

A stored domain event keeps each personal field (those of its integration payload, which
it names as the payload does: ``publication.translator``) as a token under the data
subject's key; a snapshot of an aggregate that holds personal data keeps its whole state
as one token. Reading opens them: a field whose subject's key is destroyed reads as its
erased form, so an erased customer's aggregate still loads, and a snapshot that no longer
opens is passed over (``eventstore.SnapshotStore``): the aggregate is replayed from its
events instead.

The subject of an event's data is the payload's ``subject_field`` (an opportunity's
customer) or else the aggregate's subject (``TracedAggregate``: a customer's events, the
customer id); of a snapshot, the same field of the aggregate's state.

A field is sealed as the contract's JSON value of it, as on Kafka (``crm_events.personal``):
a stored token is the token the relay publishes, so the relay never opens personal data
(:meth:`SealingMapper.to_sealed_domain_event`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any
from uuid import UUID

from crm_events.personal import (
    FieldSealer,
    PersonalField,
    SealedFields,
    declared_fields,
    decode_json,
    encode_json,
    is_token,
    seal_value,
    subject_of,
)
from crm_events.registry import EventPayload
from eventsourcing.domain import DomainEventProtocol
from eventsourcing.domain import Snapshot as LibrarySnapshot
from eventsourcing.persistence import Cipher, Compressor, Mapper, StoredEvent, Transcoder
from eventsourcing.utils import resolve_topic

SEALED_STATE = "__crm_sealed__"
"""The key of a snapshot state sealed whole; ``subject`` beside it names whose key."""


class ErasedSnapshot(Exception):
    """A snapshot whose subject's key is destroyed: restore from the events instead."""


@dataclass(frozen=True, eq=False)
class EventSealing:
    """A service's sealer and what is personal in its stored events.

    ``payloads`` is the service's ``publication.PAYLOADS``: domain event class (qualified
    name, ``Customer.Registered``) -> the payload model its attributes are named after.
    """

    sealer: FieldSealer
    payloads: Mapping[str, type[EventPayload]]

    def event_fields(
        self, event_class: type[Any]
    ) -> tuple[type[EventPayload] | None, tuple[PersonalField, ...]]:
        """The payload model of ``event_class`` and its personal fields (none: private)."""
        model = self.payloads.get(event_class.__qualname__)
        return model, (declared_fields(model) if model else ())

    def personal_payload_of(self, aggregate_class: type[Any]) -> type[EventPayload] | None:
        """A payload of ``aggregate_class``'s events that holds personal data (its
        ``subject_field`` names the subject of the aggregate's state); None: the
        aggregate holds none, its snapshots are not sealed."""
        return _personal_payload(self, aggregate_class.__name__)


@cache
def _personal_payload(sealing: EventSealing, aggregate_name: str) -> type[EventPayload] | None:
    return next(
        (
            model
            for qualname, model in sealing.payloads.items()
            if qualname.split(".")[0] == aggregate_name and declared_fields(model)
        ),
        None,
    )


class SealingMapper(Mapper[UUID]):
    """``eventsourcing``'s mapper, sealing personal data on write and opening it on read."""

    def __init__(
        self,
        transcoder: Transcoder,
        sealing: EventSealing,
        compressor: Compressor | None = None,
        cipher: Cipher | None = None,
    ) -> None:
        super().__init__(transcoder, compressor=compressor, cipher=cipher)
        self.sealing = sealing

    def to_stored_event(self, domain_event: DomainEventProtocol[UUID]) -> StoredEvent:
        sealed = object.__new__(type(domain_event))
        object.__setattr__(sealed, "__dict__", self._sealed_state(domain_event))
        return super().to_stored_event(sealed)

    def to_domain_event(self, stored_event: StoredEvent) -> DomainEventProtocol[UUID]:
        domain_event = super().to_domain_event(stored_event)
        state = vars(domain_event)
        if isinstance(domain_event, LibrarySnapshot):
            self._open_snapshot(state)
        else:
            self._open_fields(type(domain_event), state)
        return domain_event

    def to_sealed_domain_event(
        self, stored_event: StoredEvent
    ) -> tuple[DomainEventProtocol[UUID], SealedFields | None]:
        """The stored event with its personal data left sealed, for a relay that publishes
        the tokens as they are and never opens them: each token is taken out (the field
        reads as its erased form, which the contract accepts) and returned with its
        subject. A snapshot is not published: it has no such reading."""
        domain_event = super().to_domain_event(stored_event)
        model, fields = self.sealing.event_fields(type(domain_event))
        if model is None or not fields:
            return domain_event, None
        state = vars(domain_event)
        tokens: dict[str, str] = {}
        for field in fields:
            value = state.get(field.name)
            if is_token(value):
                tokens[field.name] = value
                state[field.name] = field.erased
        if not tokens:
            return domain_event, None
        return domain_event, SealedFields(subject_of(model, state, _own_subject(state)), tokens)

    # Domain events --------------------------------------------------------------------

    def _sealed_state(self, domain_event: Any) -> dict[str, Any]:
        state = dict(vars(domain_event))
        if isinstance(domain_event, LibrarySnapshot):
            return self._sealed_snapshot(state)
        model, fields = self.sealing.event_fields(type(domain_event))
        if model is None or not fields:
            return state
        subject = subject_of(model, state, _own_subject(state))
        for field in fields:
            value = state.get(field.name)
            if value is not None:
                plaintext = encode_json(_json_value(domain_event, field.name, value))
                state[field.name] = seal_value(self.sealing.sealer, subject, plaintext, field)
        return state

    def _open_fields(self, event_class: type[Any], state: dict[str, Any]) -> None:
        model, fields = self.sealing.event_fields(event_class)
        if model is None:
            return
        subject = subject_of(model, state, _own_subject(state))
        for field in fields:
            value = state.get(field.name)
            if is_token(value):
                plaintext = self.sealing.sealer.open(subject, value)
                state[field.name] = field.erased if plaintext is None else decode_json(plaintext)

    # Snapshots: the state sealed whole ------------------------------------------------

    def _sealed_snapshot(self, state: dict[str, Any]) -> dict[str, Any]:
        aggregate_class = resolve_topic(state["topic"])
        model = self.sealing.personal_payload_of(aggregate_class)
        if model is None:
            return state
        aggregate_state = state["state"]
        own_subject = _aggregate_subject(aggregate_class, aggregate_state, state)
        subject = subject_of(model, aggregate_state, own_subject)
        token = self.sealing.sealer.seal(subject, self.transcoder.encode(aggregate_state))
        return state | {"state": {SEALED_STATE: token, "subject": subject}}

    def _open_snapshot(self, state: dict[str, Any]) -> None:
        sealed = state["state"]
        if not (isinstance(sealed, dict) and SEALED_STATE in sealed):
            return
        plaintext = self.sealing.sealer.open(sealed["subject"], sealed[SEALED_STATE])
        if plaintext is None:
            raise ErasedSnapshot(f"snapshot of {state['originator_id']}: its subject is erased")
        state["state"] = self.transcoder.decode(plaintext)


def _json_value(domain_event: Any, name: str, value: Any) -> Any:
    """``value`` when it is a JSON value, as the contract's JSON form of the field is:
    sealed as such, a stored token is the very token the relay publishes."""
    if not _is_json(value):
        raise TypeError(
            f"{type(domain_event).__qualname__}.{name} holds a {type(value).__name__}: "
            "personal data is stored as the contract's JSON value"
        )
    return value


def _is_json(value: Any) -> bool:
    if value is None or isinstance(value, str | bool | int | float):
        return True
    if isinstance(value, list):
        return all(_is_json(item) for item in value)
    if isinstance(value, dict):
        return all(isinstance(key, str) and _is_json(item) for key, item in value.items())
    return False


def _own_subject(state: Mapping[str, Any]) -> str:
    """The aggregate's subject (``TracedAggregate``), else its id."""
    return str(state.get("subject") or state["originator_id"])


def _aggregate_subject(
    aggregate_class: type[Any], aggregate_state: Mapping[str, Any], snapshot: Mapping[str, Any]
) -> str:
    """The subject of a snapshot's aggregate: its natural key's value, else its id."""
    natural_key = getattr(aggregate_class, "natural_key", None)
    if natural_key and aggregate_state.get(natural_key):
        return str(aggregate_state[natural_key])
    return str(snapshot["originator_id"])
