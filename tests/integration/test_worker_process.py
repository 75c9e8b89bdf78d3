"""`crm-customer work` in a process of its own beside an API without workers, on an SQLite
event store: the worker finds the API process's new events without any nudge (it polls),
publishes them, its consumers fill the view, and its own endpoint answers health,
readiness and metrics. It runs under topic names of the test's own (``CRM_TOPIC_PREFIX``),
and creates exactly those."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from crm_backbone.kafka_acls import ADMIN
from crm_backbone.topic_names import TopicNames
from crm_customer.api import create_app
from crm_customer.bootstrap import CustomerSettings, bootstrap
from crm_events.topics import SUBSCRIPTIONS, Service, written_by
from local_infra.harness import serving
from local_infra.pytest_plugin import Servers, kafka_login
from local_infra.tokens import RealmTokens
from pymongo import AsyncMongoClient

from tests.integration.conftest import SettingsFor

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def wait_ready(url: str, worker: asyncio.subprocess.Process, within: float = 120) -> None:
    """Until the worker answers ready (a bound against hanging, not a timing assertion)."""
    deadline = time.monotonic() + within
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            assert worker.returncode is None, "the worker process ended"
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(f"{url}/readyz")).status_code == 200:
                    return
            await asyncio.sleep(0.2)
    pytest.fail(f"the worker was not ready within {within:g} s")


async def topics_named(bootstrap: str, prefix: str) -> set[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **kafka_login(ADMIN))
    await admin.start()
    try:
        return {topic for topic in await admin.list_topics() if topic.startswith(prefix)}
    finally:
        await admin.close()


async def test_the_worker_process_publishes_and_projects_what_the_api_process_writes(
    crm_servers: Servers,
    tmp_path: Path,
    unique_name: Callable[[str], str],
    topic_prefix: str,
    realm_tokens: RealmTokens,
    settings_for: SettingsFor,
) -> None:
    namespace = unique_name("wk")[:30]
    env = os.environ | {
        "CRM_KAFKA_BOOTSTRAP": crm_servers.kafka_bootstrap,
        "CRM_MONGO_URI": crm_servers.mongo_uri,
        "CRM_EVENT_STORE": "sqlite",
        "CRM_DATA_DIR": str(tmp_path),
        "CRM_NAMESPACE": namespace,
        "CRM_TOPIC_PREFIX": topic_prefix,
        "CRM_LOG_FORMAT": "console",
    }
    port = free_port()
    worker_url = f"http://127.0.0.1:{port}"
    script = Path(sys.executable).parent / "crm-customer"
    worker = await asyncio.create_subprocess_exec(
        *[str(script), "work", "--port", str(port)],
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    settings = settings_for(CustomerSettings, namespace=namespace)
    customer_id = f"C-{namespace[-8:]}"
    try:
        await wait_ready(worker_url, worker)
        api_app = create_app(bootstrap(settings), run_workers=False)
        async with (
            serving(api_app) as api_url,
            httpx.AsyncClient(
                base_url=api_url, headers=realm_tokens.service("crm-customer"), timeout=30
            ) as api,
        ):
            created = await api.post(
                "/customers",
                json={
                    "customer_id": customer_id,
                    "customer_type": "individual",
                    "name": {"full_name": "Worker Test"},
                    "branch_id": "BR-001",
                },
            )
            assert created.status_code == 201, created.text
            view = await api.get(
                f"/customers/{customer_id}/view",
                params={"min_version": 1, "wait_ms": 10_000},
            )
            assert view.status_code == 200, view.text
            api_checks = (await api.get("/readyz")).json()["checks"]
        async with httpx.AsyncClient(base_url=worker_url) as client:
            assert (await client.get("/healthz")).status_code == 200
            worker_checks = (await client.get("/readyz")).json()["checks"]
            metrics = (await client.get("/metrics")).text
        topics = await topics_named(crm_servers.kafka_bootstrap, topic_prefix)
    finally:
        worker.send_signal(signal.SIGTERM)
        _, errors = await asyncio.wait_for(worker.communicate(), 30)
        cleaner: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(crm_servers.mongo_uri)
        await cleaner.drop_database(settings.mongo_database("customer"))
        await cleaner.close()
    # The API process runs no workers, so it checks only what it uses.
    assert set(api_checks) == {"event_store", "mongodb"}
    assert set(worker_checks) >= {"event_store", "mongodb", "kafka", "relay", "consumers"}
    assert "crm_relay_last_success_timestamp_seconds" in metrics
    assert 'outcome="applied"' in metrics
    # It creates the topics its own principal may: those the service writes and reads.
    used = {
        topic.name for topic in (*written_by(Service.CUSTOMER), *SUBSCRIPTIONS[Service.CUSTOMER])
    }
    assert topics == {spec.name for spec in TopicNames(topic_prefix).specs(used)}
    # Stopped gracefully (uvicorn re-raises the SIGTERM it handled once it has shut down).
    assert worker.returncode in (0, -signal.SIGTERM)
    assert b"Traceback" not in errors, errors.decode(errors="replace")[-3000:]
