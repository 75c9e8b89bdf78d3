"""The audit trail: who did what to which customer, when, through which client, in every
CRM service, and who read their personal data.

One document per event of the four CRM services' topics and of the personal-data reads
(``crm_events.audit``), made from the event's metadata: its actor (the token's subject),
client (absent for a worker's event), time, correlation id, aggregate and version, and
the customers it names. A customer event names its subject; any event names the
customers of its top-level ``customer_id`` and ``*_customer_id`` fields (a relationship's
other party, a merge's survivor) and its ``customer_ids`` list (a call list, the
customers a read showed). An event naming no customer (a campaign created, a lead without
a customer yet) is kept too, found by actor, service or time. No document holds personal
data: only ids, event types and the endpoint a read went through.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import ClassVar, Literal

from crm_backbone.projection import Document, Handler, Projection, ViewUpdate
from crm_events.audit import PersonalDataRead
from crm_events.envelope import Envelope
from crm_events.registry import EventPayload
from crm_events.topics import (
    CAMPAIGN_EVENTS,
    CONTACTLOG_EVENTS,
    CUSTOMER_EVENTS,
    OPPORTUNITY_EVENTS,
    PERSONAL_DATA_READS,
    Service,
    topic_for,
)
from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

AUDIT_TRAIL = "audit_trail"
"""The collection: one document per event, its id the event's id."""
AUDITED_TOPICS = (
    CUSTOMER_EVENTS,
    OPPORTUNITY_EVENTS,
    CAMPAIGN_EVENTS,
    CONTACTLOG_EVENTS,
    PERSONAL_DATA_READS,
)
AuditKind = Literal["change", "read"]
FILTERS = ("customer_ids", "actor", "service", "kind", "event_type")
"""Fields ``GET /audit`` filters on (``event_type``: the data protection officer's erasures);
each has an index with the time order after it."""
IN_ORDER = [("time", ASCENDING), ("_id", ASCENDING)]
"""The trail's order: by time, then by event id."""
_SERVICES_BY_SOURCE = {service.source: service.value for service in Service}


def customers_named(envelope: Envelope[EventPayload]) -> list[str]:
    """The customers an event is about (see the module's docstring), each once."""
    named = [envelope.aggregateid] if topic_for(envelope.type) is CUSTOMER_EVENTS else []
    for field_name, value in envelope.data:
        if field_name == "customer_id" or field_name.endswith("_customer_id"):
            named.extend([value] if isinstance(value, str) else [])
        elif field_name == "customer_ids" or field_name.endswith("_customer_ids"):
            named.extend(value)
    return list(dict.fromkeys(named))


def entry_of(envelope: Envelope[EventPayload]) -> Document:
    """The audit trail's document of one event (its ``_id`` the event id)."""
    data = envelope.data
    kind: AuditKind = "read" if isinstance(data, PersonalDataRead) else "change"
    entry: Document = {
        "kind": kind,
        "customer_ids": customers_named(envelope),
        "service": _SERVICES_BY_SOURCE.get(envelope.source, envelope.source),
        "event_type": envelope.type,
        "actor": envelope.actor,
        "client": envelope.client,
        "time": envelope.time,
        "correlation_id": envelope.correlationid,
        "aggregate_id": envelope.aggregateid,
        "aggregate_version": envelope.aggregateversion,
    }
    if isinstance(data, PersonalDataRead):
        entry |= {"endpoint": data.endpoint, "staff_id": data.staff_id, "masked": data.masked}
    return entry


def record_entry(envelope: Envelope[EventPayload]) -> Iterator[ViewUpdate]:
    yield ViewUpdate(AUDIT_TRAIL, envelope.id, {"$set": entry_of(envelope)})


class AuditTrail(Projection):
    """Every change and every read of personal data, by customer, actor, service, time."""

    name: ClassVar[str] = AUDIT_TRAIL
    topics: ClassVar[tuple[str, ...]] = tuple(topic.name for topic in AUDITED_TOPICS)

    def handlers(self) -> Mapping[str, Handler]:
        return {
            event_type: record_entry
            for topic in AUDITED_TOPICS
            for event_type in topic.event_types()
        }

    async def setup(self, database: AsyncDatabase[Document]) -> None:
        await database[AUDIT_TRAIL].create_indexes(
            [IndexModel(IN_ORDER), *(IndexModel([(f, ASCENDING), *IN_ORDER]) for f in FILTERS)]
        )
