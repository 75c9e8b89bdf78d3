"""A customer past its snapshot interval reads and takes commands over HTTP, on both event
stores, also when its store still holds a snapshot written before typed snapshots."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import psycopg
import pytest
from crm_backbone.context import command_context
from crm_customer.api import create_app
from crm_customer.application import CustomerApplication
from crm_customer.bootstrap import CustomerService, CustomerSettings, bootstrap
from eventsourcing.domain import Snapshot as LibrarySnapshot
from local_infra.harness import serving
from local_infra.pytest_plugin import Servers
from local_infra.tokens import RealmTokens

pytestmark = pytest.mark.integration

INTERVAL = max(CustomerApplication.snapshotting_intervals.values())


@pytest.fixture(params=["sqlite", "postgres"])
async def service(
    request: pytest.FixtureRequest,
    crm_servers: Servers,
    tmp_path: Path,
    unique_name: Callable[[str], str],
    oidc_issuer: str,
    realm_tokens: RealmTokens,
) -> AsyncIterator[tuple[CustomerService, httpx.AsyncClient]]:
    settings = CustomerSettings(
        oidc_issuer=oidc_issuer,
        kafka_bootstrap=crm_servers.kafka_bootstrap,
        mongo_uri=crm_servers.mongo_uri,
        event_store=request.param,
        postgres_dsn=crm_servers.postgres_dsn,
        data_dir=tmp_path,
        namespace=unique_name("ns")[:40],
    )
    customer_service = bootstrap(settings)
    try:
        async with (
            serving(create_app(customer_service, run_workers=False)) as url,
            httpx.AsyncClient(
                base_url=url, headers=realm_tokens.service("crm-customer"), timeout=30
            ) as client,
        ):
            yield customer_service, client
    finally:
        if request.param == "postgres":
            with psycopg.connect(crm_servers.postgres_dsn, autocommit=True) as conn:
                name = settings.mongo_database("customer")
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def register(client: httpx.AsyncClient, customer_id: str) -> None:
    created = await client.post(
        "/customers",
        json={
            "customer_id": customer_id,
            "customer_type": "individual",
            "name": {"full_name": "Long Lived"},
            "status": "active",
            "branch_id": "BR-001",
        },
    )
    assert created.status_code == 201, created.text


async def toggle_status(client: httpx.AsyncClient, customer_id: str, times: int) -> int:
    """Move the customer between dormant and active ``times`` times; its last version."""
    version = 1
    for step in range(times):
        status = "dormant" if step % 2 == 0 else "active"
        answer = await client.post(
            f"/customers/{customer_id}/status",
            json={"status": status, "reason": "review", "expected_version": version},
        )
        assert answer.status_code == 200, answer.text
        version = answer.json()["version"]
    return version


async def test_a_customer_past_its_snapshot_interval_reads_and_takes_commands(
    service: tuple[CustomerService, httpx.AsyncClient], unique_name: Callable[[str], str]
) -> None:
    customer_service, client = service
    customer_id = unique_name("C")[-12:]
    await register(client, customer_id)
    version = await toggle_status(client, customer_id, 2 * INTERVAL + 3)
    assert version == 2 * INTERVAL + 4
    assert customer_service.application.snapshots is not None

    current = await client.get(f"/customers/{customer_id}")
    assert current.status_code == 200, current.text
    assert (current.json()["version"], current.json()["status"]) == (version, "dormant")
    answer = await client.post(
        f"/customers/{customer_id}/status",
        json={"status": "active", "reason": "back", "expected_version": version},
    )
    assert answer.status_code == 200, answer.text
    refused = await client.post(
        f"/customers/{customer_id}/status", json={"status": "prospect", "reason": "no"}
    )
    assert refused.status_code == 422, refused.text
    after = await client.get(f"/customers/{customer_id}")
    assert (after.json()["version"], after.json()["status"]) == (version + 1, "active")


async def test_a_snapshot_written_before_typed_snapshots_is_passed_over(
    service: tuple[CustomerService, httpx.AsyncClient], unique_name: Callable[[str], str]
) -> None:
    customer_service, client = service
    application = customer_service.application
    customer_id = unique_name("C")[-12:]
    await register(client, customer_id)
    version = await toggle_status(client, customer_id, 5)
    customer = application.get(customer_id)
    assert application.snapshots is not None
    with command_context(actor="earlier-release"):
        application.snapshots.put([LibrarySnapshot.take(customer)])

    current = await client.get(f"/customers/{customer_id}")
    assert current.status_code == 200, current.text
    assert current.json()["status"] == "dormant"
    answer = await client.post(
        f"/customers/{customer_id}/status",
        json={"status": "active", "reason": "back", "expected_version": version},
    )
    assert answer.status_code == 200, answer.text
