"""Poison records: corrupted copies of a core-banking record that a consumer must dead-letter.

A poison record is broken in any way a plain Kafka producer can (:class:`Poison`): body,
type, version, header bytes, duplicated headers, no key or another key, empty or non-object
values. It carries its own event id, so it never advances an aggregate.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import NamedTuple

from crm_events import (
    ContractError,
    InvalidEventBody,
    InvalidKey,
    MalformedEvent,
    UnknownEventType,
    UnknownSchemaVersion,
    registry,
)


class Poison(StrEnum):
    """How a poison record breaks the contract."""

    MALFORMED_JSON = "malformed_json"
    """The body is cut off mid-record."""
    UNKNOWN_TYPE = "unknown_type"
    """An event type nobody registered, on the right topic."""
    UNKNOWN_VERSION = "unknown_version"
    """A schema version newer than any registered (producer deployed before consumers)."""
    INVALID_BODY = "invalid_body"
    """A field the model does not have (a change made without a version bump)."""
    HEADER_NOT_UTF8 = "header_not_utf8"
    """``ce_id`` holds bytes that are not UTF-8 (a lone surrogate's encoding)."""
    NO_KEY = "no_key"
    """No key at all: nothing keeps the aggregate's records in one partition."""
    WRONG_KEY = "wrong_key"
    """A key other than the aggregate id (likely another partition)."""
    DUPLICATED_HEADER = "duplicated_header"
    """``ce_type`` given twice."""
    EMPTY_VALUE = "empty_value"
    """A value of no bytes."""
    NON_OBJECT_VALUE = "non_object_value"
    """A JSON value that is not an object (the payload in a list)."""

    @property
    def error(self) -> type[ContractError]:
        """What ``crm_events.from_kafka`` raises for such a record."""
        return {
            Poison.MALFORMED_JSON: MalformedEvent,
            Poison.UNKNOWN_TYPE: UnknownEventType,
            Poison.UNKNOWN_VERSION: UnknownSchemaVersion,
            Poison.INVALID_BODY: InvalidEventBody,
            Poison.HEADER_NOT_UTF8: MalformedEvent,
            Poison.NO_KEY: InvalidKey,
            Poison.WRONG_KEY: InvalidKey,
            Poison.DUPLICATED_HEADER: MalformedEvent,
            Poison.EMPTY_VALUE: MalformedEvent,
            Poison.NON_OBJECT_VALUE: InvalidEventBody,
        }[self]


class UpstreamRecord(NamedTuple):
    """A record as core banking's producer sends it: a contract's ``KafkaRecord``, or a
    poison record, which may even have no key."""

    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]


def poisoned_copy(kind: Poison, record: UpstreamRecord, event_id: str) -> UpstreamRecord:
    """A copy of ``record`` under its own id, broken the ``kind`` way."""
    headers = dict(record.headers)
    for name in ("ce_id", "ce_correlationid", "ce_causationid"):
        headers[name] = event_id.encode()
    key = record.key
    value = record.value
    event_type = headers["ce_type"].decode()
    extra: list[tuple[str, bytes]] = []
    if kind is Poison.MALFORMED_JSON:
        value = value[: len(value) // 2]
    elif kind is Poison.UNKNOWN_TYPE:
        headers["ce_type"] = f"{event_type.rpartition('.')[0]}.reclassified".encode()
    elif kind is Poison.UNKNOWN_VERSION:
        headers["ce_schemaversion"] = str(registry.versions(event_type)[-1] + 1).encode()
    elif kind is Poison.INVALID_BODY:
        value = json.dumps(json.loads(value) | {"legacy_reference": "X-0001"}).encode()
    elif kind is Poison.HEADER_NOT_UTF8:
        headers["ce_id"] = b"\xed\xa0\x80" + event_id.encode()
    elif kind is Poison.NO_KEY:
        key = None
    elif kind is Poison.WRONG_KEY:
        key = (record.key or b"") + b"-0"
    elif kind is Poison.DUPLICATED_HEADER:
        extra = [("ce_type", headers["ce_type"])]
    elif kind is Poison.EMPTY_VALUE:
        value = b""
    else:
        value = json.dumps([json.loads(value)]).encode()
    return UpstreamRecord(key, value, [*headers.items(), *extra])
