"""Every way a record can break the contract maps to one ContractError with its code."""

import json

import pytest
from crm_events import (
    ContractError,
    Envelope,
    InvalidEventBody,
    InvalidKey,
    KafkaRecord,
    MalformedEvent,
    UnknownEventType,
    UnknownSchemaVersion,
    from_kafka,
    to_kafka,
)
from crm_events.common import Channel
from crm_events.customer import ConsentChanged
from crm_events.envelope import REQUIRED_HEADERS


@pytest.fixture
def record() -> KafkaRecord:
    payload = ConsentChanged(channel=Channel.SMS, opted_in=False, reason="replied STOP")
    return to_kafka(Envelope.new(payload, "C-42", 7, actor="rm-1", source="/crm/customer"))


def _read(
    record: KafkaRecord, error: type[ContractError], replaced: dict[str, bytes]
) -> ContractError:
    """Read ``record`` with some headers replaced, expecting ``error``."""
    headers = [(name, replaced.get(name, value)) for name, value in record.headers]
    with pytest.raises(error) as caught:
        from_kafka(record.key, record.value, headers)
    return caught.value


def test_codes_are_short_and_distinct() -> None:
    errors = [MalformedEvent, UnknownEventType, UnknownSchemaVersion, InvalidEventBody]
    assert [e.code for e in errors] == [
        "malformed",
        "unknown_type",
        "unknown_version",
        "invalid_body",
    ]
    assert all(issubclass(e, ContractError) for e in errors)
    assert MalformedEvent("why").reason == str(MalformedEvent("why")) == "why"


@pytest.mark.parametrize("header", REQUIRED_HEADERS.values())
def test_missing_header_is_malformed(record: KafkaRecord, header: str) -> None:
    headers = [(name, value) for name, value in record.headers if name != header]
    with pytest.raises(MalformedEvent, match=f"missing headers: {header}"):
        from_kafka(record.key, record.value, headers)


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({"ce_specversion": b"0.3"}, "expected CloudEvents 1.0"),
        ({"content-type": b"application/avro"}, "expected CloudEvents 1.0 with application/json"),
        ({"ce_schemaversion": b"two"}, "is not an int"),
        ({"ce_time": b"yesterday"}, "time: "),
        ({"ce_time": b"2024-05-01T10:00:00"}, "time: "),
        ({"ce_aggregateversion": b"0"}, "aggregateversion: "),
        ({"ce_source": b"crm customer"}, "source: "),
        ({"ce_subject": b"C-43"}, "subject must equal aggregateid"),
        ({"ce_actor": b"\xff\xfe"}, "header ce_actor is not UTF-8"),
    ],
)
def test_invalid_header_is_malformed(
    record: KafkaRecord, headers: dict[str, bytes], reason: str
) -> None:
    assert reason in _read(record, MalformedEvent, headers).reason


def test_body_not_json_is_malformed(record: KafkaRecord) -> None:
    with pytest.raises(MalformedEvent, match="body is not JSON"):
        from_kafka(record.key, b'{"channel": "sms", ', record.headers)


def test_key_differing_from_aggregate_is_an_invalid_key(record: KafkaRecord) -> None:
    with pytest.raises(InvalidKey, match="differs from ce_aggregateid"):
        from_kafka(b"C-43", record.value, record.headers)


def test_unknown_type(record: KafkaRecord) -> None:
    error = _read(record, UnknownEventType, {"ce_type": b"crm.customer.teleported"})
    assert "crm.customer.teleported" in error.reason


@pytest.mark.parametrize("version", [b"2", b"0", b"-1"])
def test_unknown_version(record: KafkaRecord, version: bytes) -> None:
    error = _read(record, UnknownSchemaVersion, {"ce_schemaversion": version})
    assert "crm.customer.consent_changed" in error.reason
    assert "known: v1" in error.reason


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"opted_in": False}, "channel: Field required"),
        ({"channel": "pigeon", "opted_in": False}, "channel: Input should be"),
        ({"channel": "sms", "opted_in": False, "colour": "red"}, "colour: Extra inputs"),
        ([1, 2], "<root>: Input should be an object"),
    ],
)
def test_invalid_body(record: KafkaRecord, body: object, reason: str) -> None:
    with pytest.raises(InvalidEventBody) as caught:
        from_kafka(record.key, json.dumps(body).encode(), record.headers)
    assert reason in caught.value.reason


def test_invalid_body_reason_is_bounded(record: KafkaRecord) -> None:
    body = {f"extra{i}": i for i in range(9)}
    with pytest.raises(InvalidEventBody) as caught:
        from_kafka(record.key, json.dumps(body).encode(), record.headers)
    assert caught.value.reason.endswith("... and 6 more")
