"""Personal data sealed: every payload type, through the contracts (``seal_payload``,
``open_payload``, the Kafka envelope) and the event store's mapper (``crm_backbone.sealing``),
with keys and once they are destroyed.

The mapper's property test lives here, beside the strategies of every registered payload.
"""

import json
import uuid
from datetime import UTC, date, datetime
from typing import Any

import pytest
from crm_backbone.aggregate import TracedAggregate
from crm_backbone.keys import KeySealer
from crm_backbone.keys.memory import InMemoryKeys
from crm_backbone.publication import translator
from crm_backbone.sealing import EventSealing, SealingMapper
from crm_events import Envelope, EventPayload, InvalidEventBody, from_kafka, registry, to_kafka
from crm_events.common import Address, CustomerName, CustomerType, IdDocument, IdDocumentKind
from crm_events.customer import CustomerRegistered, CustomerStatus
from crm_events.generate import event_schema
from crm_events.personal import (
    SEALED_SCHEMA,
    PersonalData,
    SealedFields,
    declared_fields,
    is_token,
    open_payload,
    personal_fields,
    seal_payload,
    subject_of,
)
from eventsourcing.persistence import (
    DatetimeAsISO,
    DecimalAsStr,
    JSONTranscoder,
    UUIDAsHex,
)
from hypothesis import given, settings
from hypothesis import strategies as st

MODELS = [registry.model(t, v) for t in registry.event_types() for v in registry.versions(t)]
CURRENT = [registry.model(t) for t in registry.event_types()]
"""What a Kafka record is read as (an older version is upcast to it)."""
SOURCE = "/crm/customer"


def model_id(model: type[EventPayload]) -> str:
    return f"{model.event_type}.v{model.schema_version}"


def sealer() -> tuple[KeySealer, InMemoryKeys]:
    keys = InMemoryKeys()
    return KeySealer(keys), keys


def sealed_fields(model: type[EventPayload], data: dict[str, Any]) -> set[str]:
    """The personal fields of ``data`` that sealing turns into tokens (the set ones)."""
    return {field.name for field in declared_fields(model) if data.get(field.name) is not None}


@pytest.mark.parametrize("model", MODELS, ids=model_id)
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_payload_round_trip_and_erased_forms(model: type[EventPayload], data: Any) -> None:
    payload = data.draw(st.from_type(model))
    clear = payload.model_dump(mode="json")
    fields, keys = sealer()
    subject = subject_of(model, clear, "AGG-1")

    sealed = seal_payload(clear, model, subject, fields)

    personal = sealed_fields(model, clear)
    assert all(is_token(sealed[name]) for name in personal)
    assert {k: v for k, v in sealed.items() if k not in personal} == {
        k: v for k, v in clear.items() if k not in personal
    }
    assert open_payload(sealed, model, subject, fields) == clear
    assert open_payload(sealed, model, subject, None) == sealed

    keys.destroy(subject)
    fields.forget(subject)
    erased = open_payload(sealed, model, subject, fields)
    model.model_validate(erased)  # the erased forms validate
    for field in declared_fields(model):
        if field.name in personal:
            assert erased[field.name] == field.erased
    # Sealed again for an erased subject (a relay republishing): the erased forms, no token.
    assert seal_payload(clear, model, subject, fields) == erased


@pytest.mark.parametrize("model", CURRENT, ids=model_id)
@settings(max_examples=10, deadline=None)
@given(data=st.data())
def test_kafka_round_trip_with_and_without_keys(model: type[EventPayload], data: Any) -> None:
    envelope = Envelope.new(data.draw(st.from_type(model)), "AGG-1", 3, "rm-1", SOURCE)
    fields, keys = sealer()

    record = to_kafka(envelope, fields)

    body = json.loads(record.value)
    assert all(
        is_token(body[name]) for name in sealed_fields(model, envelope.data.model_dump(mode="json"))
    )
    assert from_kafka(*record, fields) == envelope
    blind = from_kafka(*record)  # no keys: the erased forms, never the clear values
    keys.destroy(subject_of(model, body, "AGG-1"))
    fields.forget(subject_of(model, body, "AGG-1"))
    assert from_kafka(*record, fields) == blind


def test_every_personal_kind_is_declared_somewhere() -> None:
    kinds = {kind for model in MODELS for kind in personal_fields(model).values()}
    assert kinds == set(PersonalData)


def test_a_token_moved_to_another_subject_does_not_open() -> None:
    envelope = Envelope.new(registered(), "C-1", 1, "rm-1", SOURCE)
    fields, _ = sealer()
    record = to_kafka(envelope, fields)
    other = to_kafka(Envelope.new(registered(), "C-2", 1, "rm-1", SOURCE), fields)

    moved = other._replace(value=record.value)

    with pytest.raises(InvalidEventBody, match="does not open"):
        from_kafka(*moved, fields)


def registered() -> CustomerRegistered:
    return CustomerRegistered(
        customer_type=CustomerType.INDIVIDUAL,
        name=CustomerName(full_name="Qiu Xiaoyan", family_name="Qiu", given_name="Xiaoyan"),
        status=CustomerStatus.ACTIVE,
        id_documents=[
            IdDocument(
                kind=IdDocumentKind.NATIONAL_ID, number="110105198807071234", issuing_country="CN"
            )
        ],
        birth_date=date(1988, 7, 7),
        phone="+86 139 8765 4321",
        email="qiu.xiaoyan@example.cn",
        address=Address(line1="88 Jinrong Jie", city="Beijing", country="CN"),
        branch_id="BJ-001",
    )


DISTINCTIVE = [
    b"Qiu Xiaoyan",
    b"Xiaoyan",
    b"110105198807071234",
    b"1988-07-07",
    b"139 8765 4321",
    b"qiu.xiaoyan@example.cn",
    b"Jinrong Jie",
]


def test_the_kafka_value_holds_no_clear_personal_value() -> None:
    envelope = Envelope.new(registered(), "C-1", 1, "rm-1", SOURCE)
    fields, _ = sealer()

    sealed = to_kafka(envelope, fields)

    assert all(text in to_kafka(envelope).value for text in DISTINCTIVE)  # unsealed: seen
    assert [text for text in DISTINCTIVE if text in sealed.value] == []


# The event store's mapper ------------------------------------------------------------------


class Stored(TracedAggregate.Event):
    """A stored domain event named as the payload drawn: the mapper sees it as that one."""


def stored_event(payload: EventPayload, subject: str) -> Stored:
    event = object.__new__(Stored)
    state = {
        "originator_id": uuid.uuid4(),
        "originator_version": 2,
        "timestamp": datetime(2026, 5, 1, tzinfo=UTC),
        "actor": "rm-1",
        "client": None,
        "correlation_id": "c-1",
        "causation_id": None,
        "subject": subject,
        **payload.model_dump(mode="json"),
    }
    object.__setattr__(event, "__dict__", state)
    return event


def mapper_for(model: type[EventPayload], fields: KeySealer) -> SealingMapper:
    """A mapper as a service's application makes one, its events named as ``model``."""
    transcoder = JSONTranscoder()
    for transcoding in (UUIDAsHex(), DecimalAsStr(), DatetimeAsISO()):
        transcoder.register(transcoding)
    return SealingMapper(transcoder, EventSealing(fields, {Stored.__qualname__: model}))


def clear_leaves(value: Any) -> list[str]:
    """The texts in a JSON value long enough not to turn up by chance."""
    if isinstance(value, dict):
        return [leaf for item in value.values() for leaf in clear_leaves(item)]
    if isinstance(value, list):
        return [leaf for item in value for leaf in clear_leaves(item)]
    return [value] if isinstance(value, str) and len(value) >= 12 else []


@pytest.mark.parametrize("model", MODELS, ids=model_id)
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_the_store_mapper_round_trips_and_erases(model: type[EventPayload], data: Any) -> None:
    payload = data.draw(st.from_type(model))
    fields, keys = sealer()
    mapper = mapper_for(model, fields)
    event = stored_event(payload, "C-7")
    clear = payload.model_dump(mode="json")

    stored = mapper.to_stored_event(event)

    personal = sealed_fields(model, clear)
    # What the stored event holds besides the personal fields (other fields, ids, the
    # metadata's names), written as the store writes JSON (characters as they are): a
    # personal text equal to one of those is not a leak.
    kept = json.loads(stored.state)
    besides = {k: v for k, v in kept.items() if k not in personal}
    others = json.dumps(besides, ensure_ascii=False).encode()
    leaked = [
        leaf
        for name in personal
        for leaf in clear_leaves(clear[name])
        if leaf.encode() in stored.state and leaf.encode() not in others
    ]
    assert leaked == []
    assert vars(mapper.to_domain_event(stored)) == vars(event)

    subject = subject_of(model, clear, "C-7")
    keys.destroy(subject)
    fields.forget(subject)
    erased = vars(mapper.to_domain_event(stored))
    model.model_validate({name: erased[name] for name in model.model_fields})


@pytest.mark.parametrize("model", CURRENT, ids=model_id)
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_the_relay_publishes_stored_tokens_that_open_as_the_clear_payload(
    model: type[EventPayload], data: Any
) -> None:
    payload = data.draw(st.from_type(model))
    fields, keys = sealer()
    mapper = mapper_for(model, fields)
    stored = mapper.to_stored_event(stored_event(payload, "C-7"))
    translate = translator({Stored.__qualname__: model})

    event, sealed = mapper.to_sealed_domain_event(stored)
    published = translate(event)
    assert published is not None
    record = to_kafka(Envelope.new(published, "C-7", 2, "rm-1", SOURCE), fields, sealed)

    body = json.loads(record.value)
    personal = sealed_fields(model, payload.model_dump(mode="json"))
    assert {name: body[name] for name in personal} == dict(sealed.tokens if sealed else {})
    assert from_kafka(*record, fields).data == model.model_validate(payload.model_dump())
    subject = subject_of(model, body, "C-7")
    keys.destroy(subject)
    fields.forget(subject)
    assert from_kafka(*record, fields) == from_kafka(*record)  # erased: as no keys read it


def test_a_token_published_under_another_subject_is_sealed_again() -> None:
    fields, keys = sealer()
    token = fields.seal("C-1", b'"13800138000"')
    carried = SealedFields("C-1", {"phone": token})

    sealed = seal_payload({"phone": None}, CustomerRegistered, "C-2", fields, carried)

    assert sealed["phone"] != token
    assert fields.open("C-2", sealed["phone"]) == b'"13800138000"'
    keys.destroy("C-1")
    fields.forget("C-1")
    assert seal_payload({}, CustomerRegistered, "C-2", fields, carried) == {"phone": None}


@pytest.mark.parametrize("model", CURRENT, ids=model_id)
def test_only_the_contracts_documents_allow_a_token_for_a_personal_field(
    model: type[EventPayload],
) -> None:
    """An API that reuses a personal type takes clear values only (a fuzzer reading its
    OpenAPI must not send tokens); the topics' documents allow them, field by field."""
    assert SEALED_SCHEMA["pattern"] not in json.dumps(model.model_json_schema())
    contract = event_schema(model)["properties"]
    for field in declared_fields(model):
        assert SEALED_SCHEMA in contract[field.name]["anyOf"], field.name
        assert contract[field.name]["x-personal-data"] == field.kind.value
