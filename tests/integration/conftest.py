"""Fixtures the integration tests share (servers, topics and databases come from
``local_infra.pytest_plugin``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import httpx
import psycopg
import pytest
from crm_backbone.credentials import KEY_STORE
from crm_backbone.eventstore import EventStoreConfig
from crm_backbone.runtime import ServiceHandle
from crm_backbone.settings import ServiceSettings
from crm_backbone.topic_names import TopicNames
from crm_campaign import api as campaign_api
from crm_campaign import bootstrap as campaign_boot
from crm_contactlog import api as contact_api
from crm_contactlog import bootstrap as contact_boot
from crm_customer import api as customer_api
from crm_customer import bootstrap as customer_boot
from crm_opportunity import api as opportunity_api
from crm_opportunity import bootstrap as opportunity_boot
from crm_simulator.feed import organisation_feed
from fastapi import FastAPI
from local_infra.harness import produce_plain, serving
from local_infra.pytest_plugin import Servers
from local_infra.pytest_trust import IdentityProvider
from local_infra.tokens import RealmTokens
from pymongo import AsyncMongoClient

if TYPE_CHECKING:
    from tests.integration.erasure_support import Bank

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


CREATE_APP: dict[str, Callable[[Any], FastAPI]] = {
    "customer": customer_api.create_app,
    "opportunity": opportunity_api.create_app,
    "contact-log": contact_api.create_app,
    "campaign": campaign_api.create_app,
}
"""Each service's API, by the service's name."""


async def eventually(done: Callable[[], Awaitable[bool]], what: str) -> None:
    """Wait (bounded: a minute) until ``done``; fail naming ``what`` never happened."""
    for _ in range(600):
        if await done():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"never: {what}")


@asynccontextmanager
async def served_services(
    handles: Mapping[str, ServiceHandle],
    bootstrap: str,
    topic_prefix: str,
    staff_known: Callable[[ServiceHandle], Awaitable[bool]],
) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    """Each service's API served on a port of its own, and a client of it by name, once
    the organisation, published to the test's topics, reached every service."""
    async with AsyncExitStack() as stack:
        clients = {
            name: await stack.enter_async_context(
                httpx.AsyncClient(
                    base_url=await stack.enter_async_context(serving(CREATE_APP[name](handle))),
                    timeout=30,
                )
            )
            for name, handle in handles.items()
        }
        await publish_organisation(bootstrap, topic_prefix)
        for handle in handles.values():
            await eventually(partial(staff_known, handle), "the organisation reached a service")
        yield clients


@pytest.fixture
async def bank(
    request: pytest.FixtureRequest,
    crm_servers: Servers,
    unique_name: Callable[[str], str],
    topic_prefix: str,
    realm_tokens: RealmTokens,
    settings_for: SettingsFor,
) -> AsyncIterator[Bank]:
    """The four services on the test's own topics and namespace, once each knows the
    organisation; their event stores on SQLite, or PostgreSQL when the test parametrizes
    ``bank`` indirectly with ``"postgres"``. Their databases are dropped afterwards."""
    # The erasure tests' helpers import this module's fixtures' types: imported here.
    from tests.integration.erasure_support import Bank, staff_known

    event_store = getattr(request, "param", "sqlite")
    namespace = unique_name("erasure")[:30]
    overrides = {
        "namespace": namespace,
        "event_store": event_store,
        "postgres_dsn": crm_servers.postgres_dsn,
    }
    customer = customer_boot.bootstrap(settings_for(customer_boot.CustomerSettings, **overrides))
    opportunity = opportunity_boot.bootstrap(
        settings_for(opportunity_boot.OpportunitySettings, **overrides)
    )
    contact_log = contact_boot.bootstrap(settings_for(contact_boot.ContactLogSettings, **overrides))
    campaign = campaign_boot.bootstrap(settings_for(campaign_boot.CampaignSettings, **overrides))
    handles: dict[str, ServiceHandle] = {
        "customer": customer,
        "opportunity": opportunity,
        "contact-log": contact_log,
        "campaign": campaign,
    }
    async with served_services(handles, crm_servers.kafka_bootstrap, topic_prefix, staff_known) as (
        clients
    ):
        yield Bank(
            clients,
            handles,
            realm_tokens,
            crm_servers.kafka_bootstrap,
            topic_prefix,
            "".join(c for c in unique_name("") if c.isdigit())[-6:].rjust(6, "3"),
        )
    settings = ServiceSettings(namespace=namespace)
    cleaner: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(crm_servers.mongo_uri)
    for name in handles:
        await cleaner.drop_database(settings.mongo_database(name))
    await cleaner.close()
    if event_store == "postgres":
        with psycopg.connect(crm_servers.postgres_dsn, autocommit=True) as conn:
            for name in [*handles, KEY_STORE]:
                database = settings.mongo_database(name)
                conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
