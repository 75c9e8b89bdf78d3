"""Fixtures the integration tests share (servers, topics and databases come from
``local_infra.pytest_plugin``)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from crm_backbone.eventstore import EventStoreConfig
from crm_backbone.topic_names import TopicNames
from crm_simulator.feed import organisation_feed
from local_infra.harness import produce_plain
from local_infra.tokens import RealmTokens

ORGANISATION_DATE = datetime(2026, 1, 5, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventStoreConfig]:
    """An event store of this test's own: run once on SQLite, once on PostgreSQL."""
    if request.param == "sqlite":
        yield EventStoreConfig(sqlite_path=tmp_path / "customers.sqlite")
    else:
        yield EventStoreConfig(postgres_dsn=request.getfixturevalue("postgres_database"))


@pytest.fixture(scope="session")
def realm_tokens(oidc_issuer: str) -> RealmTokens:
    """Bearer tokens of the genuine Keycloak's demo users and clients (local realm)."""
    return RealmTokens(oidc_issuer)


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
