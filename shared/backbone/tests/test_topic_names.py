"""A deployment's topic names: the contract's names behind ``CRM_TOPIC_PREFIX``, the same
for every part of the deployment (relay, subscriptions, dead letters, topic creation)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from crm_backbone.runtime import ServiceComponents, ServiceRuntime
from crm_backbone.settings import ServiceSettings
from crm_backbone.testing import Customers, translate
from crm_backbone.topic_names import TOPIC_NAME_MAX_LENGTH, TopicNames
from crm_events.registry import registry
from crm_events.topics import DEAD_LETTER, TOPICS, Service, topic_for, topic_specs
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError
from pymongo import AsyncMongoClient

PREFIXES = st.from_regex(r"[A-Za-z0-9._-]{0,60}", fullmatch=True)
EVENT_TYPES = st.sampled_from(registry.event_types())
KAFKA_TOPIC_NAME = r"[A-Za-z0-9._-]{1,249}"
NOT_ALLOWED = st.text(min_size=1).filter(
    lambda text: any(not (c.isascii() and (c.isalnum() or c in "._-")) for c in text)
)


def test_without_a_prefix_the_names_are_the_contracts() -> None:
    names = TopicNames()
    assert names.specs() == topic_specs()
    assert names.dead_letter == DEAD_LETTER.name
    assert all(names.of_event(t) == topic_for(t).name for t in registry.event_types())
    assert ServiceSettings().topic_names() == names


@given(prefix=PREFIXES, event_type=EVENT_TYPES)
def test_every_name_is_the_contracts_behind_the_prefix(prefix: str, event_type: str) -> None:
    names = TopicNames(prefix)
    assert names.of_event(event_type) == prefix + topic_for(event_type).name
    assert names.dead_letter == prefix + DEAD_LETTER.name
    assert names.of([t.name for t in TOPICS]) == [prefix + t.name for t in TOPICS]


@given(prefix=PREFIXES, replication=st.integers(min_value=1, max_value=5))
def test_specs_change_only_the_names_and_kafka_accepts_them(prefix: str, replication: int) -> None:
    specs = TopicNames(prefix).specs(replication_factor=replication)
    contract = topic_specs(replication)
    assert [s._replace(name=c.name) for s, c in zip(specs, contract, strict=True)] == contract
    assert [s.name for s in specs] == [prefix + c.name for c in contract]
    assert len({s.name for s in specs}) == len(TOPICS)
    assert all(re.fullmatch(KAFKA_TOPIC_NAME, s.name) for s in specs)


@given(prefix=PREFIXES, only=st.sets(st.sampled_from([t.name for t in TOPICS])))
def test_specs_of_some_topics(prefix: str, only: set[str]) -> None:
    specs = TopicNames(prefix).specs(only)
    assert {s.name for s in specs} == {prefix + name for name in only}


@given(prefix=NOT_ALLOWED)
def test_a_prefix_kafka_would_refuse_is_a_settings_error(prefix: str) -> None:
    with pytest.raises(ValueError, match="may hold only"):
        TopicNames(prefix)
    with pytest.raises(ValidationError, match="topic_prefix"):
        ServiceSettings(topic_prefix=prefix)


def test_a_prefix_making_names_too_long_is_refused() -> None:
    longest = max(len(topic.name) for topic in TOPICS)
    TopicNames("p" * (TOPIC_NAME_MAX_LENGTH - longest))
    with pytest.raises(ValueError, match="longer than Kafka's"):
        TopicNames("p" * (TOPIC_NAME_MAX_LENGTH - longest + 1))


def test_the_setting_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_TOPIC_PREFIX", "bench.1234.")
    assert ServiceSettings().topic_names() == TopicNames("bench.1234.")


@given(prefix=PREFIXES, event_type=EVENT_TYPES)
def test_the_runtime_publishes_under_the_deployments_names(prefix: str, event_type: str) -> None:
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        "mongodb://127.0.0.1:1", connect=False
    )
    app = Customers(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    components = ServiceComponents(Service.CUSTOMER, app, translate, mongo["unit"])
    runtime = ServiceRuntime(components, "127.0.0.1:1", topics=TopicNames(prefix))
    assert runtime.relay.route(event_type) == prefix + topic_for(event_type).name
