"""A relationship manager's day across three services, on the genuine servers.

The customer, opportunity and contact-log services run side by side (each its own store,
database and consumer groups), validating the genuine Keycloak's tokens and knowing the
simulated bank's organisation. Core banking registers the customer, the branch manager
assigns it, and the manager (``rm-0007``) works only through the HTTP APIs; the
customer service's single customer view must then show the same opportunities, contacts
and open tasks as the services that own them, and the pipeline and task list hold the
figures the test expects. Waiting is on read-your-writes and the views' positions.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from crm_backbone.readmodel import wait_until_applied
from crm_backbone.settings import ServiceSettings
from crm_contactlog import api as contact_api
from crm_contactlog import bootstrap as contact_boot
from crm_contactlog.task_inputs import TaskInputs
from crm_customer import api as customer_api
from crm_customer import bootstrap as customer_boot
from crm_opportunity import api as opportunity_api
from crm_opportunity import bootstrap as opportunity_boot
from local_infra.harness import serving
from local_infra.pytest_plugin import Servers
from local_infra.tokens import RealmTokens
from pymongo import AsyncMongoClient

from tests.integration.conftest import SettingsFor, publish_organisation

pytestmark = pytest.mark.integration

MANAGER, BRANCH_MANAGER, BRANCH = "RM-0007", "BM-0002", "BR-002"
"""A relationship manager of the simulated bank, their branch and its manager."""
Clients = dict[str, httpx.AsyncClient]


@pytest.fixture
async def services(
    crm_servers: Servers,
    realm_tokens: RealmTokens,
    unique_name: Callable[[str], str],
    topic_prefix: str,
    settings_for: SettingsFor,
) -> AsyncIterator[tuple[Clients, Any]]:
    """The three services on topics of the test's own (they read no other test's
    records), once each knows where the organisation places the manager; the clients
    call as the manager."""
    namespace = unique_name("day")[:30]
    customer = customer_boot.bootstrap(
        settings_for(customer_boot.CustomerSettings, namespace=namespace)
    )
    contact_log = contact_boot.bootstrap(
        settings_for(contact_boot.ContactLogSettings, namespace=namespace)
    )
    apps = {
        "customer": customer_api.create_app(customer),
        "opportunity": opportunity_api.create_app(
            opportunity_boot.bootstrap(
                settings_for(opportunity_boot.OpportunitySettings, namespace=namespace)
            )
        ),
        "contact-log": contact_api.create_app(contact_log),
    }
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(crm_servers.mongo_uri)
    databases = [mongo[ServiceSettings(namespace=namespace).mongo_database(n)] for n in apps]
    manager = realm_tokens.staff(MANAGER.lower())
    async with AsyncExitStack() as stack:
        clients: Clients = {}
        for name, app in apps.items():
            url = await stack.enter_async_context(serving(app))
            clients[name] = await stack.enter_async_context(
                httpx.AsyncClient(base_url=url, headers=manager, timeout=30)
            )
        await publish_organisation(crm_servers.kafka_bootstrap, topic_prefix)
        placed = {"_id": {"$in": [MANAGER, BRANCH_MANAGER]}}
        async with asyncio.timeout(60):
            for database in databases:
                while True:
                    if await database["org_staff"].count_documents(placed) == 2:
                        break
                    await asyncio.sleep(0.1)
        yield clients, (customer, contact_log)
    for database in databases:
        await mongo.drop_database(database.name)
    await mongo.close()


async def once_known(client: httpx.AsyncClient, path: str, json: Any) -> httpx.Response:
    """POST a record about the customer, once the service knows the customer is the
    manager's (it learns it from the customer service's events: until then, 404)."""
    async with asyncio.timeout(30):
        while True:
            answer = await client.post(path, json=json)
            if answer.status_code != 404:
                return answer
            await asyncio.sleep(0.2)


async def test_the_customer_view_shows_what_the_other_services_own(
    services: tuple[Clients, Any], realm_tokens: RealmTokens, unique_name: Callable[[str], str]
) -> None:
    clients, (customer_service, contact_log) = services
    customer_id = f"C-{unique_name('')[-8:]}"
    created = await clients["customer"].post(
        "/customers",
        json={
            "customer_id": customer_id,
            "customer_type": "individual",
            "name": {"full_name": "Sun Li"},
            "status": "active",
            "branch_id": BRANCH,
        },
        headers=realm_tokens.service("core-banking"),
    )
    assert created.status_code == 201, created.text
    assigned = await clients["customer"].put(
        f"/customers/{customer_id}/manager",
        json={"manager_id": MANAGER, "branch_id": BRANCH},
        headers=realm_tokens.staff(BRANCH_MANAGER.lower()),
    )
    assert assigned.status_code == 200, assigned.text

    opportunity = clients["opportunity"]
    deals = {"OPP-A": "300000.00", "OPP-B": "80000.00", "OPP-C": "50000.00"}
    for suffix, value in deals.items():
        opened = await once_known(
            opportunity,
            "/opportunities",
            json={
                "opportunity_id": f"{suffix}-{customer_id}",
                "customer_id": customer_id,
                "title": f"Deal {suffix}",
                "products": ["WM-GROWTH"],
                "expected_value": {"amount": value, "currency": "CNY"},
                "expected_close_date": "2027-02-28",
                "manager_id": MANAGER,
                "branch_id": BRANCH,
                "source": "relationship_manager",
            },
        )
        assert opened.status_code == 201, opened.text
    moved = await opportunity.post(
        f"/opportunities/OPP-A-{customer_id}/stage", json={"stage": "negotiation"}
    )
    lost = await opportunity.post(
        f"/opportunities/OPP-C-{customer_id}/stage",
        json={"stage": "closed_lost", "lost_reason": "went elsewhere"},
    )
    assert moved.status_code == lost.status_code == 200

    now = datetime.now(UTC)
    contacts = clients["contact-log"]
    logged = await once_known(
        contacts,
        "/contacts",
        json={
            "contact_id": f"CT-{customer_id}",
            "customer_id": customer_id,
            "category": "visit",
            "summary": "Reviewed the wealth plan",
            "called": False,
            "outcome": "interested",
            "manager_id": MANAGER,
            "opportunity_id": f"OPP-A-{customer_id}",
            "started_at": (now - timedelta(hours=1)).isoformat(),
        },
    )
    planned = await once_known(
        contacts,
        "/activities",
        json={
            "activity_id": f"ACT-{customer_id}",
            "customer_id": customer_id,
            "category": "follow_up",
            "description": "Send the term sheet",
            "priority": "high",
            "started_at": now.isoformat(),
            "due_at": (now + timedelta(days=2)).isoformat(),
            "assignee_id": MANAGER,
        },
    )
    assert logged.status_code == planned.status_code == 201, (logged.text, planned.text)

    # Read-your-writes in the owning services.
    for path, version in [
        (f"/opportunities/OPP-A-{customer_id}", 2),
        (f"/opportunities/OPP-C-{customer_id}", 2),
    ]:
        read = await opportunity.get(path, params={"min_version": version, "wait_ms": 10_000})
        assert read.status_code == 200, read.text
    pipeline = (await opportunity.get("/pipeline", params={"manager_id": MANAGER})).json()
    activity = await contacts.get(
        f"/activities/ACT-{customer_id}", params={"min_version": 1, "wait_ms": 10_000}
    )
    assert activity.status_code == 200, activity.text
    derived = contact_log.mongo[contact_log.settings.mongo_database("contact-log")]
    assert await wait_until_applied(
        derived[f"{TaskInputs.name}__positions"], "/crm/customer", customer_id, 2, within=30
    )
    tasks = (await contacts.get(f"/managers/{MANAGER}/tasks")).json()

    # The customer service has composed the same picture from their events.
    positions = customer_service.queries.positions
    for source, aggregate, version in [
        ("/crm/opportunity", f"OPP-A-{customer_id}", 2),
        ("/crm/opportunity", f"OPP-B-{customer_id}", 1),
        ("/crm/opportunity", f"OPP-C-{customer_id}", 2),
        ("/crm/contact-log", f"CT-{customer_id}", 1),
        ("/crm/contact-log", f"ACT-{customer_id}", 1),
    ]:
        assert await wait_until_applied(positions, source, aggregate, version, within=30)
    view = (await clients["customer"].get(f"/customers/{customer_id}/view")).json()

    open_deals = {o["opportunity_id"] for o in view["opportunities"]["items"]}
    assert open_deals == {f"OPP-A-{customer_id}", f"OPP-B-{customer_id}"}
    weighted = Decimal("300000.00") * 80 / 100 + Decimal("80000.00") * 20 / 100
    assert Decimal(view["opportunities"]["weighted_value"]["CNY"]) == weighted
    assert Decimal(pipeline["open"]["weighted_value"]["CNY"]) == weighted
    assert pipeline["open"]["count"] == 2
    assert pipeline["closed_lost"] == 1
    assert [c["contact_id"] for c in view["last_contacts"]] == [f"CT-{customer_id}"]
    assert [t["activity_id"] for t in view["next_tasks"]] == [f"ACT-{customer_id}"]
    listed = [t for group in ("overdue", "today", "this_week", "upcoming") for t in tasks[group]]
    assert f"ACT-{customer_id}" in [t["task_id"] for t in listed], listed
    assert "introduction" in [t["kind"] for t in listed]  # the customer was just assigned
