"""Who may do what on Kafka: every principal's ACLs, generated from the event contracts.

One table for every place that grants access: the local launcher, the test harness,
``crm-ops kafka-access`` (docker-compose), and later Helm/Strimzi ``KafkaUser`` resources.
It follows ``crm_events.topics`` (owners, subscriptions, the dead-letter topic) under a
deployment's topic names (``TopicNames``, its prefix) and consumer groups (its namespace):

- a CRM service (principal ``crm-<service>``) writes its own topics, the dead-letter topic
  and the personal-data reads (``written_by``), reads the topics it subscribes to, and uses
  the consumer groups ``<namespace>.<service>.`` (PREFIXED); it may create those topics
  when they are missing;
- an upstream system (``core-banking``, ``channel-gateway``, ``hr``: the names of its
  Keycloak client; ``credit``, ``mis``: the credit and management-accounting systems,
  which only publish) writes its own ``bank.*`` topics and nothing else;
- ``crm-ops`` reads every topic (the dead-letter topic included), writes every topic but
  the dead-letter one (a redriven letter goes back to its topic), creates and describes
  them, and reads every group of the namespace (lag, replay, rebuild);
- ``crm-admin`` is the broker's only super user: it creates credentials and ACLs.

Nothing else is allowed (``allow.everyone.if.no.acl.found=false``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from crm_events.topics import (
    DEAD_LETTER,
    SUBSCRIPTIONS,
    TOPICS,
    Service,
    Topic,
    produced_by,
    written_by,
)

from crm_backbone.topic_names import TopicNames

ADMIN = "crm-admin"
"""The launcher's administrator: the broker's super user, creates credentials and ACLs."""
OPS = "crm-ops"
"""The operators' toolkit (``crm-ops``): rebuild, replay, dead letters, topics, lag."""
CRM_SERVICES: tuple[Service, ...] = tuple(SUBSCRIPTIONS)
UPSTREAM_SYSTEMS: tuple[Service, ...] = tuple(s for s in Service if s not in SUBSCRIPTIONS)


def principal_of(service: Service) -> str:
    """The Kafka principal (SCRAM user) of a CRM service or an upstream system: the name
    of its Keycloak client."""
    return service.value if service in UPSTREAM_SYSTEMS else f"crm-{service.value}"


PRINCIPALS: tuple[str, ...] = (*(principal_of(s) for s in Service), OPS, ADMIN)
"""Every principal with a credential; only ``ADMIN`` is a super user."""


class Resource(StrEnum):
    TOPIC = "topic"
    GROUP = "group"


class Pattern(StrEnum):
    LITERAL = "literal"
    PREFIXED = "prefixed"


class Operation(StrEnum):
    READ = "read"
    WRITE = "write"
    CREATE = "create"
    DESCRIBE = "describe"
    DESCRIBE_CONFIGS = "describe_configs"


WRITES = (Operation.WRITE, Operation.DESCRIBE, Operation.CREATE)
READS = (Operation.READ, Operation.DESCRIBE, Operation.CREATE)
GROUP_MEMBER = (Operation.READ, Operation.DESCRIBE)
OPS_TOPIC_OPERATIONS = (*READS, Operation.DESCRIBE_CONFIGS, Operation.WRITE)
"""What ``crm-ops`` does to a topic (the dead-letter topic: all but write)."""


@dataclass(frozen=True, order=True)
class Acl:
    """One ALLOW rule: ``principal`` may ``operation`` on the resource (any host)."""

    principal: str
    resource: Resource
    pattern: Pattern
    name: str
    operation: Operation


def _topic_acls(
    principal: str, topics: Iterable[Topic], names: TopicNames, operations: Iterable[Operation]
) -> list[Acl]:
    chosen = tuple(operations)
    return [
        Acl(principal, Resource.TOPIC, Pattern.LITERAL, names(topic.name), operation)
        for topic in topics
        for operation in chosen
    ]


def service_acls(service: Service, names: TopicNames, namespace: str) -> list[Acl]:
    """A CRM service's own and shared topics written, its subscriptions and its own topics
    read (its views are projected from its own events), its consumer groups used."""
    principal = principal_of(service)
    group = f"{namespace}.{service.value}."
    consumed = (*produced_by(service), *SUBSCRIPTIONS[service])
    return [
        *_topic_acls(principal, written_by(service), names, WRITES),
        *_topic_acls(principal, consumed, names, READS),
        *(
            Acl(principal, Resource.GROUP, Pattern.PREFIXED, group, operation)
            for operation in GROUP_MEMBER
        ),
    ]


def upstream_acls(system: Service, names: TopicNames) -> list[Acl]:
    """An upstream system writes its own topics and nothing else."""
    return _topic_acls(principal_of(system), produced_by(system), names, WRITES)


def ops_acls(names: TopicNames, namespace: str) -> list[Acl]:
    """The operators' toolkit: every topic read, described and created, every topic but
    the dead-letter one written (redrive), every group of the namespace."""
    return [
        *(
            acl
            for topic in TOPICS
            for acl in _topic_acls(OPS, (topic,), names, OPS_TOPIC_OPERATIONS)
            if topic is not DEAD_LETTER or acl.operation is not Operation.WRITE
        ),
        *(
            Acl(OPS, Resource.GROUP, Pattern.PREFIXED, f"{namespace}.", operation)
            for operation in GROUP_MEMBER
        ),
    ]


def acl_table(names: TopicNames, namespace: str) -> list[Acl]:
    """Every ACL of a deployment (topic names ``names``, consumer groups under
    ``namespace``), sorted, without duplicates. The admin needs none: it is a super user."""
    acls = {
        *(acl for service in CRM_SERVICES for acl in service_acls(service, names, namespace)),
        *(acl for system in UPSTREAM_SYSTEMS for acl in upstream_acls(system, names)),
        *ops_acls(names, namespace),
    }
    return sorted(acls)
