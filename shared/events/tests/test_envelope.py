"""Envelope: Kafka round trip of every event type, and CloudEvents SDKs reading our records."""

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from cloudevents.core.bindings import kafka as ce_kafka
from cloudevents.core.formats.json import JSONFormat
from cloudevents.v1 import kafka as ce_v1_kafka
from crm_events import Envelope, EventPayload, KafkaRecord, from_kafka, registry, to_kafka
from crm_events.common import CustomerName, CustomerType
from crm_events.customer import CustomerRegistered, CustomerStatus
from crm_events.envelope import HEADERS
from crm_events.topics import Service
from hypothesis import given, settings
from hypothesis import strategies as st

EXTENSIONS = ("aggregateid", "aggregateversion", "correlationid", "causationid", "actor")


def envelopes(payload: st.SearchStrategy[EventPayload]) -> st.SearchStrategy[Envelope[Any]]:
    """Envelopes around ``payload`` with random ids, versions, actors and times."""
    ids = st.uuids().map(str)
    return st.builds(
        Envelope.new,
        payload=payload,
        aggregate_id=ids,
        aggregate_version=st.integers(1, 2**40),
        actor=st.sampled_from(["rm-0042", "system:core-banking-sync"]),
        client=st.none() | st.sampled_from(["crm-console", "core-banking"]),
        source=st.sampled_from([service.source for service in Service]),
        correlation_id=st.none() | ids,
        causation_id=st.none() | ids,
        event_id=st.none() | ids,
        time=st.none() | st.datetimes(timezones=st.just(UTC)),
    )


@pytest.mark.parametrize("event_type", registry.event_types())
@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_round_trip(event_type: str, data: st.DataObject) -> None:
    envelope = data.draw(envelopes(st.from_type(registry.model(event_type))))
    record = to_kafka(envelope)

    assert record.key == envelope.aggregateid.encode()
    assert json.loads(record.value) == envelope.data.model_dump(mode="json")
    expected = [h for name, h in HEADERS.items() if name != "client" or envelope.client]
    assert [name for name, _ in record.headers] == expected
    assert from_kafka(*record) == envelope


def test_new_defaults_root_event_ids_and_time() -> None:
    payload = CustomerRegistered(
        customer_type=CustomerType.INDIVIDUAL,
        name=CustomerName(full_name="王芳"),
        status=CustomerStatus.PROSPECT,
        branch_id="BJ-001",
    )
    before = datetime.now(UTC)
    envelope = Envelope.new(payload, "C-1", 1, actor="rm-7", source="/crm/customer")

    assert envelope.type == "crm.customer.registered"
    assert envelope.schemaversion == 2
    assert envelope.subject == envelope.aggregateid == "C-1"
    assert envelope.correlationid == envelope.causationid == envelope.id
    assert before <= envelope.time <= datetime.now(UTC)
    assert envelope.data is payload


def _read_core(record: KafkaRecord) -> dict[str, Any]:
    message = ce_kafka.KafkaMessage(
        headers=dict(record.headers), key=record.key, value=record.value
    )
    event = ce_kafka.from_binary(message, JSONFormat())
    return {**event.get_attributes(), "data": event.get_data()}


def _read_v1(record: KafkaRecord) -> dict[str, Any]:
    message = ce_v1_kafka.KafkaMessage(
        headers=dict(record.headers), key=record.key, value=record.value
    )
    event = ce_v1_kafka.from_binary(message)
    return {**event.get_attributes(), "data": event.get_data()}


@pytest.mark.parametrize("read", [_read_core, _read_v1], ids=["sdk-core", "sdk-v1-compat"])
@pytest.mark.parametrize("event_type", registry.event_types())
@settings(max_examples=3, deadline=None)
@given(data=st.data())
def test_cloudevents_sdk_reads_our_records(event_type: str, read: Any, data: st.DataObject) -> None:
    envelope = data.draw(envelopes(st.from_type(registry.model(event_type))))
    event = read(to_kafka(envelope))

    assert event["specversion"] == "1.0"
    assert (event["id"], event["source"], event["type"]) == (
        envelope.id,
        envelope.source,
        envelope.type,
    )
    assert event["subject"] == envelope.aggregateid
    assert event["datacontenttype"] == "application/json"
    assert datetime.fromisoformat(str(event["time"])) == envelope.time
    for name in EXTENSIONS:
        assert event[name] == str(getattr(envelope, name))
    assert event["schemaversion"] == str(envelope.schemaversion)
    assert event["partitionkey"] in (envelope.aggregateid, envelope.aggregateid.encode())
    assert event["data"] == envelope.data.model_dump(mode="json")
