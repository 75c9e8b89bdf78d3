"""``make run``'s scripted day on the genuine servers: every call with the token of whoever
makes it (core banking's and the channel gateway's service accounts, branch managers,
relationship managers as themselves), and none refused by the services' access rules."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from typing import Any

import pytest
from crm_backbone.settings import ServiceSettings
from crm_campaign import api as campaign_api
from crm_campaign import bootstrap as campaign_boot
from crm_contactlog import api as contact_api
from crm_contactlog import bootstrap as contact_boot
from crm_customer import api as customer_api
from crm_customer import bootstrap as customer_boot
from crm_opportunity import api as opportunity_api
from crm_opportunity import bootstrap as opportunity_boot
from crm_simulator.day import scripted_day
from crm_simulator.logins import Logins
from crm_simulator.population import population
from fastapi import FastAPI
from local_infra.harness import serving
from local_infra.pytest_plugin import Servers
from local_infra.pytest_trust import IdentityProvider
from pymongo import AsyncMongoClient

from tests.integration.conftest import SettingsFor, publish_organisation

pytestmark = pytest.mark.integration

SEED, CUSTOMERS = 7, 6


@pytest.fixture
async def urls(
    crm_servers: Servers,
    unique_name: Callable[[str], str],
    topic_prefix: str,
    settings_for: SettingsFor,
) -> AsyncIterator[dict[str, str]]:
    """The four services on the test's own topics, once each knows the simulated bank's
    organisation."""
    namespace = unique_name("sd")[:30]
    apps: dict[str, FastAPI] = {
        "customer": customer_api.create_app(
            customer_boot.bootstrap(
                settings_for(customer_boot.CustomerSettings, namespace=namespace)
            )
        ),
        "opportunity": opportunity_api.create_app(
            opportunity_boot.bootstrap(
                settings_for(opportunity_boot.OpportunitySettings, namespace=namespace)
            )
        ),
        "contact-log": contact_api.create_app(
            contact_boot.bootstrap(
                settings_for(contact_boot.ContactLogSettings, namespace=namespace)
            )
        ),
        "campaign": campaign_api.create_app(
            campaign_boot.bootstrap(
                settings_for(campaign_boot.CampaignSettings, namespace=namespace)
            )
        ),
    }
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(crm_servers.mongo_uri)
    databases = [mongo[ServiceSettings(namespace=namespace).mongo_database(n)] for n in apps]
    staff = {c.manager_id for c in population(SEED, CUSTOMERS)}
    async with AsyncExitStack() as stack:
        served = {name: await stack.enter_async_context(serving(app)) for name, app in apps.items()}
        await publish_organisation(crm_servers.kafka_bootstrap, topic_prefix)
        async with asyncio.timeout(60):
            for database in databases:
                while True:
                    placed = {"_id": {"$in": sorted(staff)}}
                    if await database["org_staff"].count_documents(placed) == len(staff):
                        break
                    await asyncio.sleep(0.2)
        yield served
    for database in databases:
        await mongo.drop_database(database.name)
    await mongo.close()


async def test_the_day_runs_with_everyone_s_own_token_and_nothing_refused(
    urls: dict[str, str], identity_provider: IdentityProvider
) -> None:
    customers = population(SEED, CUSTOMERS)
    logins = Logins.from_secrets(identity_provider.issuer, identity_provider.secrets.folder)
    reports = await scripted_day(urls, customers, SEED, logins)
    assert set(reports) == set(urls)
    for name, report in reports.items():
        assert report.calls > 0, name
        assert report.refused == {}, (name, report.refused)
    # A second run finds its work done and resumes: the registrations answer 409.
    again = await scripted_day(urls, customers, SEED, logins)
    assert again["customer"].refused == {"/problems/conflict": CUSTOMERS + 1}, again
