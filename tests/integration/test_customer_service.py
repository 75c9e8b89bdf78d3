"""The customer service end to end on the genuine Kafka, MongoDB and SQLite store.

A customer is created over HTTP; core banking (a plain producer writing CloudEvents by
hand) opens accounts and changes the customer's data; the opportunity and contact-log
streams add an opportunity and a contact; the composed view is read over HTTP. Waiting is
on MongoDB change streams (read-your-writes), never on sleeps.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from crm_backbone.kafka_acls import OPS
from crm_backbone.readmodel import wait_until_applied
from crm_customer.api import create_app
from crm_customer.bootstrap import CustomerService, CustomerSettings, bootstrap
from local_infra.harness import cloudevent, produce_plain, serving
from local_infra.pytest_plugin import Servers, kafka_login
from local_infra.tokens import RealmTokens
from pymongo import AsyncMongoClient

from tests.integration.conftest import SettingsFor

pytestmark = pytest.mark.integration

CORE = "/bank/core-banking"


@pytest.fixture
async def service(
    crm_servers: Servers,
    realm_tokens: RealmTokens,
    settings_for: SettingsFor,
) -> AsyncIterator[tuple[CustomerService, httpx.AsyncClient]]:
    """The service, and a client calling it as its own service account (whole book)."""
    settings = settings_for(CustomerSettings)
    customer_service = bootstrap(settings)
    async with (
        serving(create_app(customer_service)) as url,
        httpx.AsyncClient(
            base_url=url, headers=realm_tokens.service("crm-customer"), timeout=30
        ) as client,
    ):
        yield customer_service, client
    cleaner: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(crm_servers.mongo_uri)
    await cleaner.drop_database(settings.mongo_database("customer"))
    await cleaner.close()


def registration(customer_id: str, name: str) -> dict[str, Any]:
    return {
        "customer_id": customer_id,
        "customer_type": "individual",
        "name": {"full_name": name},
        "status": "active",
        "birth_date": "1985-06-30",
        "branch_id": "BR-001",
    }


async def test_a_customer_composed_from_every_stream(
    service: tuple[CustomerService, httpx.AsyncClient],
    crm_servers: Servers,
    unique_name: Callable[[str], str],
) -> None:
    customer_service, client = service
    suffix = unique_name("")[-8:]
    customer, stranger = f"C-{suffix}", f"C-{suffix}-X"
    account, loan, opportunity, contact = (f"{p}-{suffix}" for p in ("ACC", "LN", "OPP", "CT"))

    created = await client.post("/customers", json=registration(customer, "Zhou Xun"))
    assert created.status_code == 201, created.text

    def account_opened(number: str, product_type: str) -> Any:
        return cloudevent(
            "bank.corebanking.account.opened",
            number,
            1,
            {
                "customer_id": customer,
                "product_code": "P-" + product_type,
                "product_name": product_type,
                "product_type": product_type,
                "currency": "CNY",
                "branch_id": "BR-001",
                "opened_on": "2026-03-01",
            },
        )

    def balance(number: str, product_type: str, amount: str) -> Any:
        return cloudevent(
            "bank.corebanking.account.balance_changed",
            number,
            2,
            {
                "customer_id": customer,
                "product_type": product_type,
                "previous_balance": {"amount": "0", "currency": "CNY"},
                "balance": {"amount": amount, "currency": "CNY"},
                "changed_at": "2026-11-20T10:00:00+00:00",
            },
        )

    poison = cloudevent("bank.corebanking.account.opened", f"BAD-{suffix}", 1, {"customer_id": 7})
    await produce_plain(
        crm_servers.kafka_bootstrap,
        [
            ("bank.corebanking.accounts", account_opened(account, "savings")),
            ("bank.corebanking.accounts", balance(account, "savings", "250000.00")),
            ("bank.corebanking.accounts", account_opened(loan, "loan")),
            ("bank.corebanking.accounts", balance(loan, "loan", "90000.00")),
            ("bank.corebanking.accounts", poison),
            (
                "bank.corebanking.customers",
                cloudevent(
                    "bank.corebanking.customer.data_changed",
                    customer,
                    1,
                    {"phone": "+86 138 0000 1234", "name": {"full_name": "Zhou Xun (legal)"}},
                ),
            ),
            # Core banking knows this customer before the CRM does: the change is parked.
            (
                "bank.corebanking.customers",
                cloudevent(
                    "bank.corebanking.customer.data_changed", stranger, 1, {"email": "x@bank.cn"}
                ),
            ),
            (
                "crm.opportunity.events",
                cloudevent(
                    "crm.opportunity.created",
                    opportunity,
                    1,
                    {
                        "customer_id": customer,
                        "title": "Pension plan",
                        "products": ["PEN-1"],
                        "probability": 40,
                        "expected_value": {"amount": "50000", "currency": "CNY"},
                        "start_date": "2026-11-01",
                        "expected_close_date": "2027-01-31",
                        "manager_id": "RM-0042",
                        "branch_id": "BR-001",
                        "source": "relationship_manager",
                    },
                    source="/crm/opportunity",
                ),
            ),
            (
                "crm.contactlog.events",
                cloudevent(
                    "crm.contact.logged",
                    contact,
                    1,
                    {
                        "customer_id": customer,
                        "category": "visit",
                        "summary": "Annual review",
                        "called": False,
                        "outcome": "interested",
                        "manager_id": "RM-0042",
                        "started_at": "2026-11-21T09:00:00+00:00",
                    },
                    source="/crm/contact-log",
                ),
            ),
        ],
        name=customer_service.settings.topic_names(),
    )

    # Core banking's data applied (2) by the service's own policy, then read over HTTP at
    # that version (a version not yet stored would be refused at once: 409).
    positions = customer_service.queries.positions
    assert await wait_until_applied(positions, "/crm/customer", customer, 2, within=60)
    composed = await read_own_write(client, customer, 2)
    assert composed.status_code == 200, composed.text
    for source, aggregate, version in [
        (CORE, account, 2),
        (CORE, loan, 2),
        ("/crm/opportunity", opportunity, 1),
        ("/crm/contact-log", contact, 1),
    ]:
        assert await wait_until_applied(positions, source, aggregate, version, within=60)
    view = (await client.get(f"/customers/{customer}/view")).json()

    assert view["name"]["full_name"] == "Zhou Xun (legal)"
    assert view["profile"]["phone"] == "+86 138 0000 1234"
    assert view["holdings"]["assets_under_management"] == {"CNY": "250000.00"}
    assert view["holdings"]["liabilities"] == {"CNY": "90000.00"}
    assert view["holdings"]["open_accounts"] == 2
    assert view["opportunities"]["open_count"] == 1
    assert view["opportunities"]["weighted_value"] == {"CNY": "20000"}
    assert view["last_contacts"][0]["summary"] == "Annual review"
    assert view["signals"]["last_contact_at"].startswith("2026-11-21")

    found = await client.get("/customers", params={"name": "zhou", "branch_id": "BR-001"})
    assert customer in [item["customer_id"] for item in found.json()["items"]]

    # The parked change lands once the customer registers.
    registered = await client.post("/customers", json=registration(stranger, "New Comer"))
    assert registered.json()["version"] == 1
    assert await wait_until_applied(positions, "/crm/customer", stranger, 2, within=60)
    late = await read_own_write(client, stranger, 2)
    assert late.status_code == 200, late.text
    assert late.json()["profile"]["email"] == "x@bank.cn"

    # Each consumer of the accounts' topic dead-letters the broken record once.
    consumers = ("balance_history", "customer_view", "manager_performance")
    letters = await own_dead_letters(
        customer_service, crm_servers, f"BAD-{suffix}".encode(), len(consumers)
    )
    assert sorted(letter["dlq_consumer"] for letter in letters) == [
        f"{customer_service.settings.namespace}.customer.{name}" for name in consumers
    ]
    assert {letter["dlq_code"] for letter in letters} == {"invalid_body"}
    assert all("customer_id" in letter["dlq_reason"] for letter in letters)

    ready = await client.get("/readyz")
    assert ready.status_code == 200, ready.text


async def read_own_write(client: httpx.AsyncClient, customer: str, version: int) -> httpx.Response:
    """GET the view at ``version``, retrying a 503 view-behind as a client would (bounded)."""
    for _ in range(6):
        response = await client.get(
            f"/customers/{customer}/view", params={"min_version": version, "wait_ms": 10_000}
        )
        if response.status_code != 503:
            break
    return response


async def own_dead_letters(
    service: CustomerService, servers: Servers, key: bytes, consumers: int
) -> list[dict[str, str]]:
    """The dead letters of ``key`` by the service's consumers (other tests' services,
    running meanwhile, read the same topics), once ``consumers`` of them wrote theirs."""
    namespace = service.settings.namespace
    for _ in range(120):
        letters = [
            letter
            for letter in await dead_letters_for(
                servers.kafka_bootstrap, service.settings.topic_names().dead_letter, key
            )
            if letter["dlq_consumer"].startswith(namespace)
        ]
        if len({letter["dlq_consumer"] for letter in letters}) >= consumers:
            return letters
        await asyncio.sleep(0.5)
    return letters


async def dead_letters_for(
    bootstrap: str, topic: str, key: bytes, within: float = 60
) -> list[dict[str, str]]:
    """Headers of the dead letters with ``key`` in ``topic``, once there is one and the topic
    is read."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        **kafka_login(OPS),
    )
    await consumer.start()
    found: list[dict[str, str]] = []
    try:
        async with asyncio.timeout(within):
            while True:
                batches = await consumer.getmany(timeout_ms=500)
                for records in batches.values():
                    found += [
                        {name: value.decode() for name, value in r.headers}
                        for r in records
                        if r.key == key
                    ]
                partitions = list(consumer.assignment())
                ends = await consumer.end_offsets(partitions) if partitions else {}
                caught_up = all([await consumer.position(tp) >= end for tp, end in ends.items()])
                if found and caught_up:
                    return found
    finally:
        await consumer.stop()
