"""The Kafka ACL table follows the event contracts, under any deployment's names."""

from __future__ import annotations

from pathlib import Path

import pytest
from crm_backbone.kafka_acls import (
    ADMIN,
    CRM_SERVICES,
    OPS,
    PRINCIPALS,
    UPSTREAM_SYSTEMS,
    Acl,
    Operation,
    Pattern,
    Resource,
    acl_table,
    principal_of,
)
from crm_backbone.settings import ServiceSettings
from crm_backbone.topic_names import CONTRACT_NAMES, TopicNames
from crm_events.topics import (
    CUSTOMER_EVENTS,
    DEAD_LETTER,
    HR_ORGANISATION,
    SUBSCRIPTIONS,
    TOPICS,
    Service,
    produced_by,
    written_by,
)
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

prefixes = st.from_regex(r"[A-Za-z0-9._-]{0,20}", fullmatch=True).map(TopicNames)
namespaces = st.from_regex(r"[a-z][a-z0-9_]{0,15}", fullmatch=True)


def topics_allowed(
    acls: list[Acl], principal: str, operation: Operation, pattern: Pattern = Pattern.LITERAL
) -> set[str]:
    return {
        acl.name
        for acl in acls
        if acl.principal == principal
        and acl.resource is Resource.TOPIC
        and acl.operation is operation
        and acl.pattern is pattern
    }


def groups_allowed(acls: list[Acl], principal: str) -> set[tuple[Pattern, str, Operation]]:
    return {
        (acl.pattern, acl.name, acl.operation)
        for acl in acls
        if acl.principal == principal and acl.resource is Resource.GROUP
    }


@given(prefixes, namespaces)
def test_a_service_writes_its_own_topics_and_reads_what_it_subscribes_to(
    names: TopicNames, namespace: str
) -> None:
    acls = acl_table(names, namespace)
    for service in CRM_SERVICES:
        principal = principal_of(service)
        assert topics_allowed(acls, principal, Operation.WRITE) == set(
            names.of(t.name for t in written_by(service))
        )
        consumed = (*produced_by(service), *SUBSCRIPTIONS[service])  # its views: its own too
        assert topics_allowed(acls, principal, Operation.READ) == set(
            names.of(t.name for t in consumed)
        )
        group = f"{namespace}.{service.value}."
        assert groups_allowed(acls, principal) == {
            (Pattern.PREFIXED, group, Operation.READ),
            (Pattern.PREFIXED, group, Operation.DESCRIBE),
        }


@given(prefixes, namespaces)
def test_an_upstream_system_writes_only_its_own_topics_and_reads_nothing(
    names: TopicNames, namespace: str
) -> None:
    acls = acl_table(names, namespace)
    for system in UPSTREAM_SYSTEMS:
        principal = principal_of(system)
        own = set(names.of(t.name for t in produced_by(system)))
        assert own
        assert topics_allowed(acls, principal, Operation.WRITE) == own
        assert not topics_allowed(acls, principal, Operation.READ)
        assert not groups_allowed(acls, principal)
        assert all(name.startswith(names("bank.")) or "channel" in name for name in own)


@given(prefixes, namespaces)
def test_ops_reads_every_topic_and_redrives_to_all_but_the_dead_letter_topic(
    names: TopicNames, namespace: str
) -> None:
    acls = acl_table(names, namespace)
    every = set(names.of(t.name for t in TOPICS))
    assert topics_allowed(acls, OPS, Operation.READ) == every
    assert topics_allowed(acls, OPS, Operation.WRITE) == every - {names.dead_letter}
    assert groups_allowed(acls, OPS) == {
        (Pattern.PREFIXED, f"{namespace}.", Operation.READ),
        (Pattern.PREFIXED, f"{namespace}.", Operation.DESCRIBE),
    }


@given(prefixes, namespaces)
def test_only_ops_reads_the_dead_letter_topic_and_every_service_writes_it(
    names: TopicNames, namespace: str
) -> None:
    acls = acl_table(names, namespace)
    readers = {a.principal for a in acls if a.name == names.dead_letter and a.operation == "read"}
    writers = {a.principal for a in acls if a.name == names.dead_letter and a.operation == "write"}
    assert readers == {OPS}
    assert writers == {principal_of(s) for s in CRM_SERVICES}


@given(prefixes, namespaces)
def test_every_rule_names_a_deployment_topic_and_a_known_principal_but_never_the_admin(
    names: TopicNames, namespace: str
) -> None:
    acls = acl_table(names, namespace)
    assert acls == sorted(set(acls))
    every = set(names.of(t.name for t in TOPICS))
    assert {a.name for a in acls if a.resource is Resource.TOPIC} <= every
    assert {a.principal for a in acls} == set(PRINCIPALS) - {ADMIN}
    assert all(a.pattern is Pattern.LITERAL for a in acls if a.resource is Resource.TOPIC)


def test_no_two_services_share_a_consumer_group_prefix() -> None:
    groups = [
        name
        for service in CRM_SERVICES
        for _, name, _ in groups_allowed(acl_table(CONTRACT_NAMES, "crm"), principal_of(service))
    ]
    assert not [(a, b) for a in set(groups) for b in set(groups) if a != b and b.startswith(a)]


@pytest.mark.parametrize(
    ("principal", "topic"),
    [
        ("core-banking", CUSTOMER_EVENTS.name),
        ("core-banking", HR_ORGANISATION.name),
        ("hr", "bank.corebanking.accounts"),
        ("crm-customer", "crm.opportunity.events"),
        ("crm-opportunity", DEAD_LETTER.name + ".read"),
    ],
)
def test_a_forged_producer_is_not_in_the_table(principal: str, topic: str) -> None:
    assert topic not in topics_allowed(acl_table(CONTRACT_NAMES, "crm"), principal, Operation.WRITE)


def test_principals_are_the_keycloak_client_names() -> None:
    assert principal_of(Service.CUSTOMER) == "crm-customer"
    assert principal_of(Service.CONTACT_LOG) == "crm-contact-log"
    assert principal_of(Service.CORE_BANKING) == "core-banking"
    assert set(PRINCIPALS) == {
        *(f"crm-{s.value}" for s in CRM_SERVICES),
        "core-banking",
        "channel-gateway",
        "hr",
        "credit",  # the credit and management-accounting systems only publish: no client
        "mis",
        OPS,
        ADMIN,
    }


def settings_in(secrets_dir: Path) -> ServiceSettings:
    """Settings reading passwords from ``secrets_dir`` only, whatever the environment of
    the test run says."""
    return ServiceSettings(
        secrets_dir=secrets_dir, kafka_username=None, kafka_password=None, kafka_secrets_dir=None
    )


def test_no_configured_password_means_no_login(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    assert settings.kafka_client_options("crm-customer") == {}


def test_the_password_file_of_the_principal_is_its_login(tmp_path: Path) -> None:
    (tmp_path / "kafka").mkdir()
    (tmp_path / "kafka" / "crm-customer").write_text("s3cret\n")
    settings = settings_in(tmp_path)
    assert settings.kafka_client_options("crm-customer") == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "crm-customer",
        "sasl_plain_password": "s3cret",
    }
    assert settings.kafka_client_options("crm-ops") == {}


def test_a_configured_username_and_password_win(tmp_path: Path) -> None:
    settings = ServiceSettings(
        kafka_username="prod-crm-customer",
        kafka_password=SecretStr("from-vault"),
        kafka_secrets_dir=tmp_path,
    )
    options = settings.kafka_client_options("crm-customer")
    assert options["sasl_plain_username"] == "prod-crm-customer"
    assert options["sasl_plain_password"] == "from-vault"
