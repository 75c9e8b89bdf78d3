"""Personal data sealed at rest and on Kafka, clear in the view, on the genuine servers.

A customer with distinctive personal data is registered over HTTP; the bytes of the
service's event store (the SQLite files, or every row of its PostgreSQL database) and the
Kafka record the relay published hold none of it; the single customer view, fed from that
record, shows it in clear.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import psycopg
import pytest
from aiokafka import AIOKafkaConsumer
from crm_backbone.kafka_acls import OPS
from crm_backbone.readmodel import wait_until_applied
from crm_customer.api import create_app
from crm_customer.bootstrap import CustomerService, CustomerSettings, bootstrap
from crm_events.topics import CUSTOMER_EVENTS
from local_infra.harness import serving
from local_infra.pytest_plugin import Servers, kafka_login
from local_infra.tokens import RealmTokens
from psycopg import sql
from pymongo import AsyncMongoClient

from tests.integration.conftest import SettingsFor

pytestmark = pytest.mark.integration

PERSON = {
    "name": "Xiang Yuexin",
    "phone": "+86 135 7913 5791",
    "email": "xiang.yuexin@example.cn",
    "id_number": "440304197703031357",
    "street": "66 Lianhua Lu",
    "birth_date": "1977-03-03",
}


@pytest.fixture(params=["sqlite", "postgres"])
async def service(
    request: pytest.FixtureRequest,
    crm_servers: Servers,
    realm_tokens: RealmTokens,
    settings_for: SettingsFor,
) -> AsyncIterator[tuple[CustomerService, httpx.AsyncClient]]:
    """The whole customer service (relay and views), called as its own service account."""
    settings = settings_for(
        CustomerSettings, event_store=request.param, postgres_dsn=crm_servers.postgres_dsn
    )
    customer_service = bootstrap(settings)
    try:
        async with (
            serving(create_app(customer_service)) as url,
            httpx.AsyncClient(
                base_url=url, headers=realm_tokens.service("crm-customer"), timeout=30
            ) as client,
        ):
            yield customer_service, client
    finally:
        cleaner: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(crm_servers.mongo_uri)
        await cleaner.drop_database(settings.mongo_database("customer"))
        await cleaner.close()
        if request.param == "postgres":
            with psycopg.connect(crm_servers.postgres_dsn, autocommit=True) as conn:
                name = settings.mongo_database("customer")
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def registration(customer_id: str) -> dict[str, Any]:
    return {
        "customer_id": customer_id,
        "customer_type": "individual",
        "name": {"full_name": PERSON["name"], "family_name": "Xiang", "given_name": "Yuexin"},
        "status": "active",
        "id_documents": [
            {"kind": "national_id", "number": PERSON["id_number"], "issuing_country": "CN"}
        ],
        "birth_date": PERSON["birth_date"],
        "phone": PERSON["phone"],
        "email": PERSON["email"],
        "address": {"line1": PERSON["street"], "city": "Shenzhen", "country": "CN"},
        "branch_id": "BR-001",
    }


def found_in(stored: bytes) -> list[str]:
    """The person's values that ``stored`` holds in clear."""
    return [value for value in PERSON.values() if value.encode() in stored]


def event_store_bytes(customer_service: CustomerService) -> bytes:
    """Every byte the service's event store holds: its SQLite files, or every value of
    every table of its PostgreSQL database."""
    store = customer_service.settings.event_store_config("customer")
    if store.sqlite_path is not None:
        files = store.sqlite_path.parent.glob(f"{store.sqlite_path.name}*")
        return b"".join(path.read_bytes() for path in files)
    chunks: list[bytes] = []
    with psycopg.connect(store.postgres_dsn or "") as conn:
        tables = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchall()
        assert tables
        for (table,) in tables:
            for row in conn.execute(sql.SQL("SELECT * FROM {}").format(sql.Identifier(table))):
                chunks += [v if isinstance(v, bytes) else str(v).encode() for v in row]
    return b"".join(chunks)


async def published(bootstrap: str, topic: str, key: bytes, within: float = 60) -> list[bytes]:
    """The values of ``topic``'s records with ``key``, once there is one."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        **kafka_login(OPS),
    )
    await consumer.start()
    values: list[bytes] = []
    try:
        async with asyncio.timeout(within):
            while not values:
                batches = await consumer.getmany(timeout_ms=500)
                values += [
                    r.value or b"" for records in batches.values() for r in records if r.key == key
                ]
    finally:
        await consumer.stop()
    return values


async def test_sealed_in_the_store_and_on_kafka_clear_in_the_view(
    service: tuple[CustomerService, httpx.AsyncClient], crm_servers: Servers
) -> None:
    customer_service, client = service
    customer = f"C-{uuid.uuid4().hex[:12].upper()}"

    created = await client.post("/customers", json=registration(customer))
    assert created.status_code == 201, created.text
    positions = customer_service.queries.positions
    assert await wait_until_applied(positions, "/crm/customer", customer, 1, within=60)

    view = (await client.get(f"/customers/{customer}/view")).json()
    assert view["name"]["full_name"] == PERSON["name"]
    assert view["profile"]["phone"] == PERSON["phone"]
    assert view["profile"]["email"] == PERSON["email"]
    topic = customer_service.settings.topic_names()(CUSTOMER_EVENTS.name)
    records = await published(crm_servers.kafka_bootstrap, topic, customer.encode())
    assert records
    assert [found_in(value) for value in records] == [[] for _ in records]
    assert b'"name":"pd1:' in records[0]
    assert found_in(event_store_bytes(customer_service)) == []
