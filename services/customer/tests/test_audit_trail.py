"""The audit trail's projection: one entry per event, from its metadata, naming the
customers it is about, holding no personal data; over generated events and metadata."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from crm_customer.audit_trail import AUDIT_TRAIL, AuditTrail, entry_of, record_entry
from crm_events import registry
from crm_events.audit import PersonalDataRead
from crm_events.campaign import CallListAssigned, CampaignCreated, CampaignKind, Segment
from crm_events.common import Channel, CustomerName, Money, ValueBand
from crm_events.contact_log import ActivityCancelled
from crm_events.customer import (
    CustomerMergedInto,
    CustomersMerged,
    RelationshipAdded,
    RelationshipType,
)
from crm_events.envelope import Envelope
from crm_events.registry import EventPayload
from crm_events.topics import Service, topic_for
from hypothesis import given
from hypothesis import strategies as st

ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:@~-]{0,20}", fullmatch=True)
some_ids = st.lists(ids, min_size=1, max_size=5)
Case = tuple[EventPayload, Service, list[str]]
"""A payload, its producer, and the customers it names besides a customer event's subject."""


@st.composite
def cases(draw: st.DrawFn) -> Case:
    customer, customers = draw(ids), draw(some_ids)
    maybe_customer = draw(st.none() | ids)
    choices: list[Case] = [
        (RelationshipAdded(related_customer_id=customer, relationship_type=RelationshipType.SPOUSE),
         Service.CUSTOMER, [customer]),
        (CustomerMergedInto(survivor_customer_id=customer, reason="duplicate"),
         Service.CUSTOMER, [customer]),
        (CallListAssigned(manager_id="RM-0001", customer_ids=customers, due_on=date(2026, 1, 9)),
         Service.CAMPAIGN, customers),
        (ActivityCancelled(customer_id=maybe_customer, reason="done"),
         Service.CONTACT_LOG, [maybe_customer] if maybe_customer else []),
        (CampaignCreated(
            name="Spring deposits", kind=CampaignKind.SMS, channels=[Channel.SMS],
            target_segments=[Segment(value_band=ValueBand.HIGH)], owner_manager_ids=["RM-0001"],
            budget=Money(amount=Decimal(1000), currency="CNY"),
            planned_start=date(2026, 3, 1), planned_end=date(2026, 4, 1)),
         Service.CAMPAIGN, []),
        (PersonalDataRead(customer_ids=customers, endpoint="GET /customers/{customer_id}/view",
                          staff_id=draw(st.none() | ids), masked=draw(st.booleans())),
         draw(st.sampled_from([Service.CUSTOMER, Service.CONTACT_LOG])), customers),
    ]  # fmt: skip
    return draw(st.sampled_from(choices))


@st.composite
def envelopes(draw: st.DrawFn) -> tuple[Envelope[EventPayload], list[str]]:
    """An event of any kind the trail records, with generated metadata, and the customers
    it names."""
    payload, producer, named = draw(cases())
    subject = draw(ids)
    envelope = Envelope.new(
        payload,
        subject,
        draw(st.integers(1, 10_000)),
        actor=draw(ids),
        source=producer.source,
        client=draw(st.none() | ids),
        correlation_id=draw(st.none() | ids),
        time=draw(st.datetimes(timezones=st.just(UTC), min_value=datetime(2000, 1, 1))),
    )
    own = (
        [subject]
        if producer is Service.CUSTOMER and payload.event_type.startswith("crm.customer.")
        else []
    )
    return envelope, list(dict.fromkeys(own + named))


@given(envelopes())
def test_an_entry_is_the_events_metadata_and_the_customers_it_names(
    generated: tuple[Envelope[EventPayload], list[str]],
) -> None:
    envelope, customers = generated
    read = isinstance(envelope.data, PersonalDataRead)
    expected = {
        "kind": "read" if read else "change",
        "customer_ids": customers,
        "service": envelope.source.rsplit("/", 1)[-1],
        "event_type": envelope.type,
        "actor": envelope.actor,
        "client": envelope.client,
        "time": envelope.time,
        "correlation_id": envelope.correlationid,
        "aggregate_id": envelope.aggregateid,
        "aggregate_version": envelope.aggregateversion,
    }
    if isinstance(envelope.data, PersonalDataRead):
        expected |= {
            "endpoint": envelope.data.endpoint,
            "staff_id": envelope.data.staff_id,
            "masked": envelope.data.masked,
        }
    assert entry_of(envelope) == expected
    (update,) = record_entry(envelope)
    assert (update.collection, update.document_id) == (AUDIT_TRAIL, envelope.id)
    assert update.update == {"$set": expected}


def test_a_merge_is_recorded_without_the_personal_data_it_carries() -> None:
    merged = CustomersMerged(
        merged_customer_id="C2",
        reason="same person",
        merged_name=CustomerName(full_name="Wang Fang"),
        merged_phone="+86 139 1234 5678",
        merged_email="wang.fang@example.com",
    )
    envelope: Envelope[EventPayload] = Envelope.new(
        merged, "C1", 7, actor="u-1", source="/crm/customer", client="crm-console"
    )
    entry = entry_of(envelope)
    assert entry["customer_ids"] == ["C1", "C2"]
    assert all(text not in str(entry) for text in ("Wang", "1234", "example.com"))


def test_the_trail_records_every_event_of_the_crm_services_and_every_read() -> None:
    recorded = set(AuditTrail().handlers())
    audited = {
        event_type
        for event_type in registry.event_types()
        if topic_for(event_type).owner in (Service.CUSTOMER, Service.OPPORTUNITY,
                                           Service.CAMPAIGN, Service.CONTACT_LOG)
    } | {PersonalDataRead.event_type}  # fmt: skip
    assert recorded == audited
