"""Every Kafka topic in one table: owner, event types, partitions, retention, cleanup.

Also which service consumes which topics. Topic creation lives elsewhere and uses
``topic_specs()``.
"""

from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple

from crm_events.registry import registry

DAY_MS = 24 * 60 * 60 * 1000


class Service(StrEnum):
    """A producer or consumer of events; upstream systems included."""

    CUSTOMER = "customer"
    OPPORTUNITY = "opportunity"
    CAMPAIGN = "campaign"
    CONTACT_LOG = "contact-log"
    CORE_BANKING = "core-banking"
    CHANNEL_GATEWAY = "channel-gateway"
    HR = "hr"
    CREDIT = "credit"
    MANAGEMENT_ACCOUNTING = "mis"

    @property
    def source(self) -> str:
        """CloudEvents ``source`` of the events this service produces."""
        upstream = self in _UPSTREAM
        return f"/{'bank' if upstream else 'crm'}/{self.value}"


_UPSTREAM = frozenset(
    {
        Service.CORE_BANKING,
        Service.CHANNEL_GATEWAY,
        Service.HR,
        Service.CREDIT,
        Service.MANAGEMENT_ACCOUNTING,
    }
)
"""The bank's systems feeding the CRM (their events' source is ``/bank/...``)."""


@dataclass(frozen=True)
class Topic:
    """A topic and the event types on it: those whose type starts with one of the prefixes."""

    name: str
    owner: Service | None
    type_prefixes: tuple[str, ...]
    description: str
    retention_ms: int = -1
    partitions: int = 6
    cleanup_policy: str = "delete"

    def event_types(self) -> list[str]:
        """Registered event types that go on this topic."""
        return [t for t in registry.event_types() if t.startswith(self.type_prefixes)]


CUSTOMER_EVENTS = Topic(
    "crm.customer.events",
    Service.CUSTOMER,
    ("crm.customer.",),
    "Customer lifecycle, profile, segment, manager, groups, relationships, consent, merges.",
)
OPPORTUNITY_EVENTS = Topic(
    "crm.opportunity.events",
    Service.OPPORTUNITY,
    ("crm.lead.", "crm.opportunity.", "crm.need."),
    "Leads, opportunities through the sales funnel, customer needs and complaints.",
)
CAMPAIGN_EVENTS = Topic(
    "crm.campaign.events",
    Service.CAMPAIGN,
    ("crm.campaign.",),
    "Campaign lifecycle, frozen target lists, responses, call lists, opt-out requests.",
)
CONTACTLOG_EVENTS = Topic(
    "crm.contactlog.events",
    Service.CONTACT_LOG,
    ("crm.contact.", "crm.activity."),
    "Contacts with customers and the activities and tasks of relationship managers.",
)
COREBANKING_ACCOUNTS = Topic(
    "bank.corebanking.accounts",
    Service.CORE_BANKING,
    ("bank.corebanking.account.",),
    "Upstream: accounts opened and closed, balances, product maturities.",
)
COREBANKING_CUSTOMERS = Topic(
    "bank.corebanking.customers",
    Service.CORE_BANKING,
    ("bank.corebanking.customer.",),
    "Upstream: KYC reviews and customer master data changed in core banking.",
)
CHANNEL_GATEWAY_RESPONSES = Topic(
    "channel.gateway.responses",
    Service.CHANNEL_GATEWAY,
    ("channel.gateway.",),
    "Upstream: delivery and response of campaign messages; recorded as campaign responses.",
    retention_ms=30 * DAY_MS,
)
HR_ORGANISATION = Topic(
    "bank.hr.organisation",
    Service.HR,
    ("bank.hr.",),
    "Upstream: regions, branches and staff positions (who manages whom); kept for ever, "
    "never compacted, so an organisation view replays from the start.",
)
CREDIT_FACILITIES = Topic(
    "bank.credit.facilities",
    Service.CREDIT,
    ("bank.credit.facility.",),
    "Upstream: credit facilities granted, changed, drawn, repaid and matured, with their "
    "guarantors; each event carries the facility as it stands after it.",
)
MIS_CONTRIBUTION = Topic(
    "bank.mis.contribution",
    Service.MANAGEMENT_ACCOUNTING,
    ("bank.mis.contribution.",),
    "Upstream: each customer's monthly revenue, cost and contribution from management "
    "accounting; a restatement is a later version of the month's statement.",
)
DEAD_LETTER = Topic(
    "crm.deadletter",
    None,
    (),
    "Records a consumer could not read, with the reason; written by every consumer.",
    retention_ms=30 * DAY_MS,
)
PERSONAL_DATA_READS = Topic(
    "crm.audit.reads",
    None,
    ("crm.audit.",),
    "Reads of customers' personal data through the CRM's APIs: who read whose, through "
    "which client; written by every CRM service's API, projected into the audit trail, "
    "kept for ever.",
)

TOPICS: tuple[Topic, ...] = (
    CUSTOMER_EVENTS,
    OPPORTUNITY_EVENTS,
    CAMPAIGN_EVENTS,
    CONTACTLOG_EVENTS,
    COREBANKING_ACCOUNTS,
    COREBANKING_CUSTOMERS,
    CHANNEL_GATEWAY_RESPONSES,
    HR_ORGANISATION,
    CREDIT_FACILITIES,
    MIS_CONTRIBUTION,
    DEAD_LETTER,
    PERSONAL_DATA_READS,
)

_COREBANKING = (COREBANKING_ACCOUNTS, COREBANKING_CUSTOMERS)
SUBSCRIPTIONS: dict[Service, tuple[Topic, ...]] = {
    Service.CUSTOMER: (
        *_COREBANKING,
        OPPORTUNITY_EVENTS,
        CONTACTLOG_EVENTS,
        CAMPAIGN_EVENTS,
        HR_ORGANISATION,
        PERSONAL_DATA_READS,
        CREDIT_FACILITIES,
        MIS_CONTRIBUTION,
    ),
    Service.OPPORTUNITY: (CAMPAIGN_EVENTS, *_COREBANKING, CUSTOMER_EVENTS, HR_ORGANISATION),
    Service.CAMPAIGN: (
        CUSTOMER_EVENTS,
        OPPORTUNITY_EVENTS,
        *_COREBANKING,
        CHANNEL_GATEWAY_RESPONSES,
        HR_ORGANISATION,
    ),
    Service.CONTACT_LOG: (
        *_COREBANKING,
        CUSTOMER_EVENTS,
        OPPORTUNITY_EVENTS,
        CAMPAIGN_EVENTS,
        HR_ORGANISATION,
    ),
}
"""Topics each service consumes; upstream systems consume none."""

DEAD_LETTER_HEADERS: dict[str, str] = {
    "dlq_code": "ContractError code (malformed, unknown_type, unknown_version, invalid_body) "
    "or handler_error",
    "dlq_reason": "Human-readable reason",
    "dlq_topic": "Topic the record was read from",
    "dlq_partition": "Partition it was read from",
    "dlq_offset": "Its offset there",
    "dlq_consumer": "Consumer group that gave up on it",
    "dlq_time": "When it was set aside (RFC 3339)",
}
"""Headers a consumer adds to a dead-lettered record (original key, value, headers kept)."""


class TopicSpec(NamedTuple):
    """Arguments of a Kafka admin client's NewTopic."""

    name: str
    num_partitions: int
    replication_factor: int
    topic_configs: dict[str, str]


def topic_for(event_type: str) -> Topic:
    """The topic that carries ``event_type``."""
    for topic in TOPICS:
        if event_type.startswith(topic.type_prefixes):
            return topic
    raise KeyError(f"no topic carries {event_type!r}")


def produced_by(service: Service) -> tuple[Topic, ...]:
    """Topics ``service`` owns (and so produces to)."""
    return tuple(topic for topic in TOPICS if topic.owner is service)


def written_by(service: Service) -> tuple[Topic, ...]:
    """Topics ``service`` writes: those it owns and, for a CRM service, the dead-letter
    topic (its consumers) and the personal-data reads (its API)."""
    shared = (DEAD_LETTER, PERSONAL_DATA_READS) if service in SUBSCRIPTIONS else ()
    return produced_by(service) + shared


def topic_specs(replication_factor: int = 1) -> list[TopicSpec]:
    """Creation specs of every topic."""
    return [
        TopicSpec(
            topic.name,
            topic.partitions,
            replication_factor,
            {"cleanup.policy": topic.cleanup_policy, "retention.ms": str(topic.retention_ms)},
        )
        for topic in TOPICS
    ]
