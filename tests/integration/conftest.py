"""Fixtures the integration tests share (servers, topics and databases come from
``local_infra.pytest_plugin``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

import pytest
from crm_backbone.eventstore import EventStoreConfig
from crm_backbone.settings import ServiceSettings
from crm_backbone.topic_names import TopicNames
from crm_simulator.feed import organisation_feed
from local_infra.harness import produce_plain
from local_infra.pytest_plugin import IdentityProvider, Servers
from local_infra.tokens import RealmTokens

ORGANISATION_DATE = datetime(2026, 1, 5, tzinfo=UTC)
SettingsT = TypeVar("SettingsT", bound=ServiceSettings)


class SettingsFor(Protocol):
    def __call__(self, kind: type[SettingsT], **overrides: Any) -> SettingsT: ...


@pytest.fixture
def settings_for(
    crm_servers: Servers,
    tmp_path: Path,
    unique_name: Callable[[str], str],
    topic_prefix: str,
    oidc_issuer: str,
) -> SettingsFor:
    """A service's settings on the test servers and Keycloak, with the test's own topics,
    databases (namespace) and folder; ``overrides`` replace any of them."""

    def settings(kind: type[SettingsT], **overrides: Any) -> SettingsT:
        values: dict[str, Any] = {
            "oidc_issuer": oidc_issuer,
            "kafka_bootstrap": crm_servers.kafka_bootstrap,
            "mongo_uri": crm_servers.mongo_uri,
            "data_dir": tmp_path,
            "namespace": unique_name("ns")[:40],
            "topic_prefix": topic_prefix,
        }
        return kind(**(values | overrides))

    return settings


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventStoreConfig]:
    """An event store of this test's own: run once on SQLite, once on PostgreSQL."""
    if request.param == "sqlite":
        yield EventStoreConfig(sqlite_path=tmp_path / "customers.sqlite")
    else:
        yield EventStoreConfig(postgres_dsn=request.getfixturevalue("postgres_database"))


@pytest.fixture(scope="session")
def realm_tokens(identity_provider: IdentityProvider) -> RealmTokens:
    """Bearer tokens of the genuine Keycloak's demo users and clients (local realm)."""
    return RealmTokens(identity_provider.issuer, identity_provider.secrets)


async def publish_organisation(bootstrap: str, topic_prefix: str) -> int:
    """Publish the simulated bank's organisation (HR's events: the realm's staff placed in
    their branches and regions) to the topics of ``topic_prefix``; the number of events."""
    route = TopicNames(topic_prefix).of_event
    records = [
        (event.topic, (event.record.key or b"", event.record.value, event.record.headers))
        for event in organisation_feed(start=ORGANISATION_DATE, route=route)
    ]
    await produce_plain(bootstrap, records)
    return len(records)
