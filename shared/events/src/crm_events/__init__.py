"""Integration-event contracts of the bank CRM: CloudEvents envelope, payloads, topics.

Importing the package registers every payload model.
"""

from crm_events import (
    audit,
    campaign,
    channel_gateway,
    contact_log,
    core_banking,
    credit,
    customer,
    management_accounting,
    opportunity,
    organisation,
)
from crm_events.envelope import Envelope, KafkaRecord, from_kafka, to_kafka
from crm_events.errors import (
    ContractError,
    InvalidEventBody,
    InvalidKey,
    MalformedEvent,
    UnknownEventType,
    UnknownSchemaVersion,
)
from crm_events.registry import EventPayload, registry
from crm_events.topics import TOPICS, Service, Topic, topic_for, topic_specs

__all__ = [
    "TOPICS",
    "ContractError",
    "Envelope",
    "EventPayload",
    "InvalidEventBody",
    "InvalidKey",
    "KafkaRecord",
    "MalformedEvent",
    "Service",
    "Topic",
    "UnknownEventType",
    "UnknownSchemaVersion",
    "audit",
    "campaign",
    "channel_gateway",
    "contact_log",
    "core_banking",
    "credit",
    "customer",
    "from_kafka",
    "management_accounting",
    "opportunity",
    "organisation",
    "registry",
    "to_kafka",
    "topic_for",
    "topic_specs",
]
