"""The topic table: every event type has exactly one topic, settings as agreed."""

import pytest
from crm_events import TOPICS, Service, registry, topic_for, topic_specs
from crm_events.topics import (
    DEAD_LETTER,
    PERSONAL_DATA_READS,
    SUBSCRIPTIONS,
    produced_by,
    written_by,
)

DAY_MS = 86_400_000


@pytest.mark.parametrize("event_type", registry.event_types())
def test_every_event_type_has_exactly_one_topic_someone_writes(event_type: str) -> None:
    carriers = [topic for topic in TOPICS if event_type in topic.event_types()]
    assert carriers == [topic_for(event_type)]
    assert carriers[0].owner is not None or carriers[0] is PERSONAL_DATA_READS


def test_every_crm_service_writes_the_dead_letters_and_the_personal_data_reads() -> None:
    for service in Service:
        shared = {DEAD_LETTER, PERSONAL_DATA_READS} if service in SUBSCRIPTIONS else set()
        assert set(written_by(service)) == set(produced_by(service)) | shared
    assert PERSONAL_DATA_READS.event_types() == ["crm.audit.personal_data_read"]
    assert PERSONAL_DATA_READS.retention_ms == -1
    assert PERSONAL_DATA_READS in SUBSCRIPTIONS[Service.CUSTOMER]  # the audit trail


def test_unknown_type_has_no_topic() -> None:
    with pytest.raises(KeyError):
        topic_for("crm.nothing.happened")


def test_topic_settings() -> None:
    names = [topic.name for topic in TOPICS]
    assert len(set(names)) == len(names)
    assert all(topic.partitions == 6 and topic.cleanup_policy == "delete" for topic in TOPICS)
    crm_event_topics = [t for t in TOPICS if t.owner and t.owner.source.startswith("/crm/")]
    assert {t.name for t in crm_event_topics} == {
        "crm.customer.events",
        "crm.opportunity.events",
        "crm.campaign.events",
        "crm.contactlog.events",
    }
    assert all(topic.retention_ms == -1 for topic in crm_event_topics)
    assert DEAD_LETTER.name == "crm.deadletter"
    assert DEAD_LETTER.retention_ms == 30 * DAY_MS
    assert DEAD_LETTER.event_types() == []


def test_topic_specs() -> None:
    specs = {spec.name: spec for spec in topic_specs()}
    assert list(specs) == [topic.name for topic in TOPICS]
    assert specs["crm.customer.events"]._asdict() == {
        "name": "crm.customer.events",
        "num_partitions": 6,
        "replication_factor": 1,
        "topic_configs": {"cleanup.policy": "delete", "retention.ms": "-1"},
    }
    assert specs["crm.deadletter"].topic_configs["retention.ms"] == str(30 * DAY_MS)
    assert {spec.replication_factor for spec in topic_specs(3)} == {3}


def test_services() -> None:
    assert [s.source for s in Service] == [
        "/crm/customer",
        "/crm/opportunity",
        "/crm/campaign",
        "/crm/contact-log",
        "/bank/core-banking",
        "/bank/channel-gateway",
        "/bank/hr",
        "/bank/credit",
        "/bank/mis",
    ]
    for service in Service:
        assert produced_by(service), f"{service} produces nothing"
        consumed = SUBSCRIPTIONS.get(service, ())
        assert not set(consumed) & set(produced_by(service))
        assert DEAD_LETTER not in consumed
        assert set(consumed) <= set(TOPICS)
    assert set(SUBSCRIPTIONS) == {
        Service.CUSTOMER,
        Service.OPPORTUNITY,
        Service.CAMPAIGN,
        Service.CONTACT_LOG,
    }
