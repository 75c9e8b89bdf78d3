"""Personal data in the contracts: which fields hold it, whose it is, and how it is sealed.

A contract type marks what is personal with :class:`Personal` in its annotation
(``Annotated[str, Personal(PersonalData.PHONE)]``); :func:`personal_fields` finds the
marked top-level fields of a payload (a field holding an object or a list that holds
personal data is marked, and sealed, whole).

The data subject, whose data it is: the envelope's aggregate id (a customer's events, a
lead's), unless the payload names it in another field (``subject_field``: the
``customer_id`` of an opportunity, a need, a contact); :func:`subject_of`.

Sealed, each personal field's JSON value is one token string (``pd1:...``) that only the
subject's data key opens (:class:`FieldSealer`, implemented by ``crm_backbone.keys``).
Opened once the key is destroyed, a field takes its ERASED FORM: ``None`` (or its
default) when the field is optional, else the fixed value its marker declares, which
validates and says nothing of the person; a marker on the field itself
(``Annotated[Notes | None, Personal(...)]``) declares it for an optional field too.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache
from typing import Annotated, Any, Protocol, TypeGuard, get_args, get_origin

from pydantic import BaseModel, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, from_json, to_json

TOKEN_PREFIX = "pd1:"
"""How a sealed value starts (version 1 of the token format)."""

ERASED = "[erased]"
"""The erased form of a required text field."""

JsonObject = dict[str, Any]


class PersonalData(StrEnum):
    """The kinds of personal data the CRM holds (``crm_backbone.masking`` has each one's mask)."""

    NAME = "name"
    PHONE = "phone"
    EMAIL = "email"
    ID_DOCUMENT = "id_document"
    ADDRESS = "address"
    BIRTH_DATE = "birth_date"
    FREE_TEXT = "free_text"
    """A note written about a person: it may say anything."""


@dataclass(frozen=True)
class Personal:
    """Marks a contract type as personal data of ``kind``; ``erased`` is the JSON value a
    required field of this type takes once its subject's key is destroyed."""

    kind: PersonalData
    erased: Any = field(default=ERASED, hash=False)

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        """The clear value's schema, named by kind (the contracts' documents also allow
        a token, ``sealable_schema``: an API takes and gives only clear values)."""
        return {**handler(core_schema), "x-personal-data": self.kind.value}


SEALED_SCHEMA: JsonSchemaValue = {
    "type": "string",
    "pattern": f"^{TOKEN_PREFIX}[A-Za-z0-9_-]+=*$",
    "description": "The value sealed under the data subject's key (the CRM's own topics)",
}


def sealable_schema(model: type[BaseModel], schema: JsonSchemaValue) -> JsonSchemaValue:
    """``schema``, the JSON Schema of ``model``, with each personal field's value allowed
    as a token too: what the CRM's topics carry (each field sealed whole)."""
    properties = dict(schema.get("properties", {}))
    for declared in declared_fields(model):
        if declared.name in properties:
            clear = dict(properties[declared.name])
            annotations = {key: clear.pop(key) for key in FIELD_ANNOTATIONS if key in clear}
            properties[declared.name] = {
                "anyOf": [clear, SEALED_SCHEMA],
                **annotations,
                "x-personal-data": declared.kind.value,
            }
    return {**schema, "properties": properties}


FIELD_ANNOTATIONS = ("title", "description", "default", "examples")
"""What says something of the field rather than of its clear value."""


class KeyDestroyed(Exception):
    """What :meth:`FieldSealer.seal` raises once the subject's key is destroyed."""


class FieldSealer(Protocol):
    """Encrypts and decrypts values under a data subject's own key."""

    def seal(self, subject: str, plaintext: bytes) -> str:
        """A token (``pd1:...``) of ``plaintext`` that only ``subject``'s key opens;
        :class:`KeyDestroyed` once the subject is erased."""
        ...

    def open(self, subject: str, token: str) -> bytes | None:
        """The plaintext of ``token``; None when ``subject``'s key is destroyed (erased).

        Raises ``ValueError`` for a token that was not sealed under ``subject``'s key.
        """
        ...


class OpensNothing:
    """A sealer without keys: every token opens to its erased form; it seals nothing."""

    def seal(self, subject: str, plaintext: bytes) -> str:
        raise RuntimeError("this reader has no keys: it cannot seal")

    def open(self, subject: str, token: str) -> bytes | None:
        return None


OPENS_NOTHING = OpensNothing()


def is_token(value: object) -> TypeGuard[str]:
    """Whether ``value`` is a sealed value."""
    return isinstance(value, str) and value.startswith(TOKEN_PREFIX)


@dataclass(frozen=True)
class PersonalField:
    """One top-level field holding personal data, and what it becomes once erased."""

    name: str
    kind: PersonalData
    erased: Any


def _markers(annotation: Any) -> Iterator[Personal]:
    """Every :class:`Personal` in ``annotation``, however deep (unions, lists, ...)."""
    if get_origin(annotation) is Annotated:
        yield from (meta for meta in annotation.__metadata__ if isinstance(meta, Personal))
    for argument in get_args(annotation):
        yield from _markers(argument)


@cache
def declared_fields(model: type[BaseModel]) -> tuple[PersonalField, ...]:
    """The personal fields of ``model`` with their erased forms."""
    declared: list[PersonalField] = []
    for name, info in model.model_fields.items():
        on_field = next((m for m in info.metadata if isinstance(m, Personal)), None)
        marker = on_field or next(_markers(info.annotation), None)
        if marker is None:
            continue
        erased = marker.erased
        if on_field is None and not info.is_required():
            erased = _as_json(info.get_default(call_default_factory=True))
        declared.append(PersonalField(name, marker.kind, erased))
    return tuple(declared)


def _as_json(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def personal_fields(model: type[BaseModel]) -> Mapping[str, PersonalData]:
    """The top-level fields of ``model`` that hold personal data, by kind."""
    return {declared.name: declared.kind for declared in declared_fields(model)}


def subject_of(model: type[BaseModel], data: Mapping[str, Any], aggregate_id: str) -> str:
    """Whose personal data ``data`` (a payload of ``model``) holds: the value of the
    model's ``subject_field`` when it names one and it is set, else ``aggregate_id``."""
    named_by = getattr(model, "subject_field", None)
    named = data.get(named_by) if named_by else None
    return str(named) if named else aggregate_id


def encode_json(value: Any) -> bytes:
    """Compact UTF-8 JSON of a JSON value (pydantic's encoder: several times faster than
    the standard library's, and this runs for every personal field sealed). The plaintext
    of every token, in the event store as on Kafka: a stored token is a Kafka token."""
    return to_json(value)


def decode_json(plaintext: bytes) -> Any:
    """The JSON value of an opened token."""
    return from_json(plaintext)


@dataclass(frozen=True)
class SealedFields:
    """Personal fields already sealed (tokens read from an event store) under ``subject``'s
    key: published as they are, never opened on the way."""

    subject: str
    tokens: Mapping[str, str]


def seal_payload(
    data: JsonObject,
    model: type[BaseModel],
    subject: str,
    sealer: FieldSealer,
    sealed: SealedFields | None = None,
) -> JsonObject:
    """``data`` (JSON values) with each personal field's value sealed into a token; a
    null field stays null. An erased subject's fields take their erased forms: nothing of
    theirs is written again (a relay republishing their events, a late event about them).

    A field in ``sealed`` takes its token instead of its value in ``data``: as it is when
    sealed under ``subject``'s key, else opened and sealed again under ``subject``'s."""
    out = dict(data)
    tokens = sealed.tokens if sealed else {}
    for declared in declared_fields(model):
        token = tokens.get(declared.name)
        if token is not None:
            assert sealed is not None
            out[declared.name] = _carried(sealer, sealed.subject, subject, token, declared)
            continue
        value = out.get(declared.name)
        if value is not None:
            out[declared.name] = seal_value(sealer, subject, encode_json(value), declared)
    return out


def _carried(
    sealer: FieldSealer, sealed_for: str, subject: str, token: str, field: PersonalField
) -> Any:
    if sealed_for == subject:
        return token
    plaintext = sealer.open(sealed_for, token)
    return field.erased if plaintext is None else seal_value(sealer, subject, plaintext, field)


def seal_value(sealer: FieldSealer, subject: str, plaintext: bytes, field: PersonalField) -> Any:
    """The token of one field's ``plaintext``, or its erased form once the subject is erased."""
    try:
        return sealer.seal(subject, plaintext)
    except KeyDestroyed:
        return field.erased


def open_payload(
    data: JsonObject, model: type[BaseModel], subject: str, sealer: FieldSealer | None
) -> JsonObject:
    """``data`` with each token opened: the clear value, or the field's erased form when
    the subject's key is destroyed. Without a sealer, tokens stay as they are."""
    if sealer is None:
        return data
    opened = dict(data)
    for declared in declared_fields(model):
        value = opened.get(declared.name)
        if is_token(value):
            plaintext = sealer.open(subject, value)
            opened[declared.name] = declared.erased if plaintext is None else decode_json(plaintext)
    return opened


def holds_tokens(data: Mapping[str, Any], model: type[BaseModel]) -> bool:
    """Whether any personal field of ``data`` is sealed."""
    return any(is_token(data.get(declared.name)) for declared in declared_fields(model))
