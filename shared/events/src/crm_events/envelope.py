"""The envelope of every event on Kafka: CloudEvents 1.0 in Kafka binary content mode.

Each attribute travels as a ``ce_<name>`` header (``datacontenttype`` as ``content-type``),
the body is the payload's JSON and the message key is the aggregate id.

Given a sealer (``crm_events.personal``), :func:`to_kafka` writes each personal field of
the body as a token under the data subject's key and :func:`from_kafka` opens them; a
reader without one gets the fields' erased forms, never the person's data.
"""

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Generic, Literal, NamedTuple, Self
from uuid import uuid4

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PositiveInt,
    SerializeAsAny,
    StringConstraints,
    ValidationError,
    model_validator,
)

from crm_events.common import Id
from crm_events.errors import InvalidEventBody, InvalidKey, MalformedEvent, summarise
from crm_events.personal import (
    OPENS_NOTHING,
    TOKEN_PREFIX,
    FieldSealer,
    SealedFields,
    declared_fields,
    encode_json,
    open_payload,
    seal_payload,
    subject_of,
)
from crm_events.registry import EventPayload, JsonObject, P, registry

SPECVERSION: Final = "1.0"
CONTENT_TYPE: Final = "application/json"

SourceUri = Annotated[
    str,
    StringConstraints(pattern=r"^/[a-z0-9\-/]+$"),
    Field(description="Producer, e.g. /crm/customer or /bank/core-banking"),
]


class KafkaRecord(NamedTuple):
    """What a producer sends: key = aggregate id, value = payload JSON, CloudEvents headers."""

    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


class Envelope(BaseModel, Generic[P]):
    """CloudEvents attributes, our extensions (aggregateid ... schemaversion) and the payload.

    ``schemaversion`` is that of ``data``: an upcast payload carries its current version.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    specversion: Literal["1.0"] = SPECVERSION
    id: Annotated[Id, Field(description="Unique event id (the deduplication key)")]
    source: SourceUri
    type: Annotated[Id, Field(description="Event type, e.g. crm.customer.registered")]
    time: Annotated[AwareDatetime, Field(description="When it happened (RFC 3339)")]
    subject: Annotated[Id, Field(description="The aggregate id")]
    datacontenttype: Literal["application/json"] = CONTENT_TYPE
    aggregateid: Annotated[Id, Field(description="Aggregate id, also the message key")]
    aggregateversion: Annotated[PositiveInt, Field(description="Aggregate version after it")]
    correlationid: Annotated[Id, Field(description="Id of the root event of the flow")]
    causationid: Annotated[Id, Field(description="Id of the event or command that caused it")]
    actor: Annotated[Id, Field(description="User or system behind the change")]
    client: Annotated[
        Id | None,
        Field(description="Client application the change came through (its OAuth client id)"),
    ] = None
    schemaversion: Annotated[PositiveInt, Field(description="Schema version of the payload")]
    data: SerializeAsAny[P]

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.subject != self.aggregateid:
            raise ValueError("subject must equal aggregateid")
        if (self.type, self.schemaversion) != (self.data.event_type, self.data.schema_version):
            raise ValueError(
                f"type/schemaversion {self.type} v{self.schemaversion} do not match data "
                f"({self.data.event_type} v{self.data.schema_version})"
            )
        return self

    @classmethod
    def new(
        cls,
        payload: P,
        aggregate_id: str,
        aggregate_version: int,
        actor: str,
        source: str,
        client: str | None = None,
        correlation_id: str | None = None,
        causation_id: str | None = None,
        event_id: str | None = None,
        time: datetime | None = None,
    ) -> "Envelope[P]":
        """Wrap ``payload``; type and schema version come from its class.

        A root event (no correlation or causation given) correlates with and is caused by
        itself; the id defaults to a random UUID and the time to now (UTC).
        """
        event_id = event_id or str(uuid4())
        return cls(
            id=event_id,
            source=source,
            type=payload.event_type,
            time=time or datetime.now(UTC),
            subject=aggregate_id,
            aggregateid=aggregate_id,
            aggregateversion=aggregate_version,
            correlationid=correlation_id or event_id,
            causationid=causation_id or event_id,
            actor=actor,
            client=client,
            schemaversion=payload.schema_version,
            data=payload,
        )


HEADERS: dict[str, str] = {
    name: "content-type" if name == "datacontenttype" else f"ce_{name}"
    for name in Envelope.model_fields
    if name != "data"
}
"""Kafka header name of each envelope attribute."""
_ATTRIBUTES = {header: name for name, header in HEADERS.items()}
REQUIRED_HEADERS = {
    name: header
    for name, header in HEADERS.items()
    if Envelope.model_fields[name].default is not None
}
"""The headers every record must carry (``ce_client`` is optional: workers have none)."""


def to_kafka(
    envelope: Envelope[P], sealer: FieldSealer | None = None, sealed: SealedFields | None = None
) -> KafkaRecord:
    """The Kafka record (binary content mode) of ``envelope``; with ``sealer``, its
    personal fields sealed under the data subject's key, those in ``sealed`` (tokens from
    the event store, the payload holding their erased forms) as they were sealed."""
    attributes = envelope.model_dump(mode="json", exclude={"data"}, exclude_none=True)
    return KafkaRecord(
        key=envelope.aggregateid.encode(),
        value=_body(envelope, sealer, sealed),
        headers=[(HEADERS[name], str(value).encode()) for name, value in attributes.items()],
    )


def _body(envelope: Envelope[P], sealer: FieldSealer | None, sealed: SealedFields | None) -> bytes:
    model = type(envelope.data)
    if sealer is None or not declared_fields(model):
        if sealed is not None:
            raise ValueError("tokens are published only by a sealing producer")
        return envelope.data.model_dump_json().encode()
    data = envelope.data.model_dump(mode="json")
    subject = subject_of(model, data, envelope.aggregateid)
    return encode_json(seal_payload(data, model, subject, sealer, sealed))


def from_kafka(
    key: bytes | None,
    value: bytes,
    headers: Iterable[tuple[str, bytes]],
    sealer: FieldSealer | None = None,
) -> Envelope[EventPayload]:
    """Read a Kafka record into an envelope, upcasting an older payload to its current model.

    Sealed personal fields are opened with ``sealer``: the clear value, or the field's
    erased form once the subject's key is destroyed; without a sealer, the erased forms.

    Unknown headers are ignored; a CloudEvents header given twice is malformed (which one
    would be meant?), and so is a key other than the aggregate id (no key included: the key
    is what keeps an aggregate's events in order). Raises a ``ContractError`` subclass:
    ``MalformedEvent``, ``InvalidKey``, ``UnknownEventType``, ``UnknownSchemaVersion`` or
    ``InvalidEventBody``.
    """
    fields: dict[str, Any] = {}
    for header, raw in headers:
        name = _ATTRIBUTES.get(header)
        if name is not None:
            if name in fields:
                raise MalformedEvent(f"header {header} appears more than once")
            try:
                fields[name] = raw.decode()
            except (AttributeError, UnicodeDecodeError):
                raise MalformedEvent(f"header {header} is not UTF-8 text") from None
    missing = [header for name, header in REQUIRED_HEADERS.items() if name not in fields]
    if missing:
        raise MalformedEvent(f"missing headers: {', '.join(missing)}")
    if fields["specversion"] != SPECVERSION or fields["datacontenttype"] != CONTENT_TYPE:
        raise MalformedEvent(
            f"expected CloudEvents {SPECVERSION} with {CONTENT_TYPE}, got "
            f"{fields['specversion']!r} with {fields['datacontenttype']!r}"
        )
    if key is None:
        raise InvalidKey("the record has no key; the key must be the aggregate id")
    if key != fields["aggregateid"].encode():
        raise InvalidKey(f"the key differs from ce_aggregateid {fields['aggregateid']!r}")
    try:
        version = int(fields["schemaversion"])
    except ValueError:
        raise MalformedEvent(
            f"ce_schemaversion {fields['schemaversion']!r} is not an int"
        ) from None
    body: bytes | JsonObject = value
    if TOKEN_PREFIX.encode() in value:
        body = _opened(fields["type"], version, value, fields["aggregateid"], sealer)
    data = registry.decode(fields["type"], version, body)
    fields["schemaversion"] = data.schema_version
    fields["data"] = data
    try:
        envelope: Envelope[EventPayload] = Envelope.model_validate(fields)
    except ValidationError as error:
        raise MalformedEvent(f"invalid headers: {summarise(error)}") from None
    return envelope


def _opened(
    event_type: str, version: int, value: bytes, aggregate_id: str, sealer: FieldSealer | None
) -> JsonObject:
    """The body ``value`` with its tokens opened (see :func:`from_kafka`)."""
    model = registry.model(event_type, version)
    try:
        data = json.loads(value)
    except ValueError:
        raise MalformedEvent("body is not JSON") from None
    if not isinstance(data, dict):
        raise InvalidEventBody("the body is not a JSON object")
    subject = subject_of(model, data, aggregate_id)
    try:
        return open_payload(data, model, subject, sealer or OPENS_NOTHING)
    except ValueError:
        raise InvalidEventBody("a personal field does not open under its subject's key") from None
