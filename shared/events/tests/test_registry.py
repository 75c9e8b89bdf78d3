"""Registry: versions, upcasting step by step, and every old version reading as the current."""

import json
from datetime import date

import pytest
from crm_events import Envelope, InvalidEventBody, UnknownSchemaVersion, from_kafka, registry
from crm_events.common import CustomerName, CustomerType, IdDocument, IdDocumentKind
from crm_events.customer import CustomerRegistered, CustomerRegisteredV1, CustomerStatus
from crm_events.envelope import to_kafka
from crm_events.registry import EventPayload, JsonObject, Registry
from hypothesis import given, settings
from hypothesis import strategies as st

REGISTERED = "crm.customer.registered"
V1_BODY = {
    "customer_type": "individual",
    "name": "李娜",
    "status": "active",
    "id_documents": [
        {"kind": "national_id", "number": "11010119900307123X", "issuing_country": "CN"}
    ],
    "birth_date": "1990-03-07",
    "phone": "+86 138 0000 0000",
    "branch": "BJ-001",
}
OLD_VERSIONS = [(t, v) for t in registry.event_types() for v in registry.versions(t)[:-1]]


def _as_v1(body: bytes) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """A customer.registered record as a v1 producer sent it, with ``body``."""
    payload = CustomerRegistered(
        customer_type=CustomerType.CORPORATE,
        name=CustomerName(full_name="x"),
        status=CustomerStatus.PROSPECT,
        branch_id="x",
    )
    record = to_kafka(Envelope.new(payload, "C-7", 1, actor="rm-1", source="/crm/customer"))
    headers = [(n, b"1" if n == "ce_schemaversion" else v) for n, v in record.headers]
    return record.key, body, headers


def test_v1_customer_registered_reads_as_v2() -> None:
    envelope = from_kafka(*_as_v1(json.dumps(V1_BODY).encode()))

    assert envelope.schemaversion == 2
    assert envelope.data == CustomerRegistered(
        customer_type=CustomerType.INDIVIDUAL,
        name=CustomerName(full_name="李娜"),
        status=CustomerStatus.ACTIVE,
        id_documents=[
            IdDocument(
                kind=IdDocumentKind.NATIONAL_ID, number="11010119900307123X", issuing_country="CN"
            )
        ],
        birth_date=date(1990, 3, 7),
        phone="+86 138 0000 0000",
        branch_id="BJ-001",
    )
    assert dict(to_kafka(envelope).headers)["ce_schemaversion"] == b"2"


def test_invalid_v1_body_is_reported_in_v1_terms() -> None:
    body = {k: v for k, v in V1_BODY.items() if k != "branch"}
    with pytest.raises(InvalidEventBody, match="branch: Field required"):
        from_kafka(*_as_v1(json.dumps(body).encode()))


@settings(max_examples=50, deadline=None)
@given(old=st.from_type(CustomerRegisteredV1))
def test_v1_upcast_keeps_every_field(old: CustomerRegisteredV1) -> None:
    new = registry.decode(REGISTERED, 1, old.model_dump_json().encode())

    assert isinstance(new, CustomerRegistered)
    assert new.name == CustomerName(full_name=old.name)
    assert new.branch_id == old.branch
    unchanged = old.model_dump(exclude={"name", "branch"})
    assert new.model_dump(include=set(unchanged)) == unchanged


@pytest.mark.parametrize(("event_type", "version"), OLD_VERSIONS)
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_every_old_version_reads_as_current(
    event_type: str, version: int, data: st.DataObject
) -> None:
    old = data.draw(st.from_type(registry.model(event_type, version)))
    new = registry.decode(event_type, version, old.model_dump_json().encode())
    assert type(new) is registry.model(event_type)


@pytest.fixture
def things() -> tuple[Registry, list[int], type[EventPayload]]:
    """A registry with three versions of test.thing and the upcasters between them."""
    things, steps = Registry(), []

    @things.event("test.thing", version=1)
    class ThingV1(EventPayload):
        n: int

    @things.event("test.thing", version=2)
    class ThingV2(EventPayload):
        count: int

    @things.event("test.thing", version=3)
    class Thing(EventPayload):
        count: int
        unit: str

    @things.upcaster("test.thing", from_version=1)
    def rename(body: JsonObject) -> JsonObject:
        steps.append(1)
        return {"count": body["n"]}

    @things.upcaster("test.thing", from_version=2)
    def add_unit(body: JsonObject) -> JsonObject:
        steps.append(2)
        return body | {"unit": "each"}

    return things, steps, Thing


def test_upcasts_step_by_step(things: tuple[Registry, list[int], type[EventPayload]]) -> None:
    reg, steps, thing = things
    assert reg.versions("test.thing") == [1, 2, 3]
    assert reg.model("test.thing") is thing
    assert (thing.event_type, thing.schema_version) == ("test.thing", 3)

    assert reg.decode("test.thing", 1, b'{"n": 3}') == thing.model_validate(
        {"count": 3, "unit": "each"}
    )
    assert steps == [1, 2]
    assert reg.decode("test.thing", 2, b'{"count": 4}') == thing.model_validate(
        {"count": 4, "unit": "each"}
    )
    assert steps == [1, 2, 2]
    with pytest.raises(UnknownSchemaVersion, match="v4 is unknown"):
        reg.decode("test.thing", 4, b"{}")


def test_missing_upcaster_is_unknown_version() -> None:
    reg = Registry()
    for version in (1, 2):

        @reg.event("test.gap", version=version)
        class Gap(EventPayload):
            pass

    with pytest.raises(UnknownSchemaVersion, match="no upcaster from v1"):
        reg.decode("test.gap", 1, b"{}")


def test_registration_is_unique(things: tuple[Registry, list[int], type[EventPayload]]) -> None:
    reg, _, _ = things
    with pytest.raises(ValueError, match="already registered"):
        reg.event("test.thing", version=2)(type("Again", (EventPayload,), {}))
    with pytest.raises(ValueError, match="already registered"):
        reg.upcaster("test.thing", from_version=1)(lambda body: body)
    with pytest.raises(ValueError, match="invalid"):
        reg.event("test.other", version=0)(type("Zero", (EventPayload,), {}))
