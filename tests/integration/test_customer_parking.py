"""Two customer-service instances park core banking's changes for customers not registered yet.

Instance one is the whole service (relay, customer view, policies); instance two is a
second application on the same PostgreSQL event store with its own policy consumer in
the same consumer group, subscribed to core banking's topic only: a customer's changes
and its registration are then consumed by different instances (as they are while a
rebalance moves partitions, or when the topics' partitions do not line up). Instance two
is slow to park (as after a pause of its process): between finding a customer unknown
and parking the change, the registration can be written and consumed by instance one,
the race that used to leave changes parked forever.

Core banking's ``data_changed`` records and the registrations of their customers (on
either instance) come in generated orders; afterwards nothing is parked and every
customer's aggregate and view hold every change, each applied once and in order.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import psycopg
import pytest
from crm_backbone.context import command_context
from crm_backbone.kafka import KafkaDeadLetters, kafka_broker, reliable_producer, subscribe
from crm_backbone.kafka_acls import principal_of
from crm_backbone.parking import PARKING_COLLECTION
from crm_backbone.policy import NotYet, PolicyConsumer
from crm_backbone.readmodel import wait_until_applied
from crm_backbone.testing import interleave
from crm_customer.application import CustomerApplication
from crm_customer.bootstrap import CustomerService, CustomerSettings, bootstrap
from crm_customer.ownership import WHOLE_BOOK
from crm_customer.policies import CustomerPolicies
from crm_events.envelope import Envelope
from crm_events.registry import EventPayload
from crm_events.topics import COREBANKING_CUSTOMERS, Service
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from local_infra.harness import cloudevent
from local_infra.pytest_plugin import Servers, kafka_login
from pymongo import AsyncMongoClient

pytestmark = pytest.mark.integration


class SlowToPark(CustomerPolicies):
    """Pauses between finding this test's customer unknown and parking the change.

    This test's customers' ids start with ``prefix`` (the topics hold other tests' too).
    """

    def __init__(self, application: CustomerApplication, prefix: str) -> None:
        super().__init__(application)
        self.prefix = prefix
        self.pausing: Counter[str] = Counter()

    async def apply(self, envelope: Envelope[EventPayload]) -> None:
        try:
            await super().apply(envelope)
        except NotYet:
            customer_id = envelope.aggregateid
            if customer_id.startswith(self.prefix):
                self.pausing[customer_id] += 1
                await asyncio.sleep(0.5)
                self.pausing[customer_id] -= 1
            raise


Instances = tuple[CustomerService, SlowToPark]


@pytest.fixture
async def instances(
    crm_servers: Servers, unique_name: Callable[[str], str], topic_prefix: str
) -> AsyncIterator[Instances]:
    config = CustomerSettings(
        topic_prefix=topic_prefix,
        kafka_bootstrap=crm_servers.kafka_bootstrap,
        mongo_uri=crm_servers.mongo_uri,
        event_store="postgres",
        postgres_dsn=crm_servers.postgres_dsn,
        namespace=unique_name("ns")[:40],
    )
    first = bootstrap(config)
    await first.runtime.start()
    second = CustomerApplication(  # sealing as the first: the same keys, the same fields
        env=config.event_store_config("customer").environment(),
        sealing=first.application.sealing,
    )
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(crm_servers.mongo_uri)
    login = config.kafka_client_options(principal_of(Service.CUSTOMER))
    producer = reliable_producer(crm_servers.kafka_bootstrap, **login)
    await producer.start()
    policy = SlowToPark(second, f"PK-{uuid.uuid4().hex[:8]}-")
    consumer = PolicyConsumer(
        policy,
        KafkaDeadLetters(producer, config.topic_names().dead_letter),
        first.runtime.group(policy.name),
        mongo[config.mongo_database("customer")],
        sealer=first.runtime.sealer,
    )
    await consumer.setup()
    broker = kafka_broker(crm_servers.kafka_bootstrap, login, logger=None)
    subscribe(broker, consumer, [config.topic_names()(COREBANKING_CUSTOMERS.name)])
    await broker.start()
    try:
        yield first, policy
    finally:
        await broker.stop()
        await producer.stop()
        second.close()
        await first.close()
        await mongo.drop_database(config.mongo_database("customer"))
        await mongo.close()
        with psycopg.connect(crm_servers.postgres_dsn, autocommit=True) as conn:
            name = config.mongo_database("customer")
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def registration() -> dict[str, Any]:
    """The registration's fields, as the API hands them to the application."""
    return {
        "customer_type": "individual",
        "name": {"full_name": "Parked Customer", "family_name": None, "given_name": None},
        "status": "active",
        "id_documents": [],
        "birth_date": "1985-06-30",
        "phone": None,
        "email": None,
        "address": None,
        "occupation": None,
        "industry": None,
        "branch_id": "BR-001",
        "preferred_channel": None,
    }


def data_changed(customer_id: str, version: int) -> dict[str, Any]:
    """Version 1 sets the phone, every version the e-mail: an older version lost shows."""
    change: dict[str, Any] = {"email": f"v{version}@bank.example"}
    if version == 1:
        change["phone"] = "+86 138 0000 0001"
    return change


@settings(
    max_examples=4,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    customers=st.lists(
        st.tuples(
            st.integers(min_value=1, max_value=3),  # core banking's versions
            st.integers(min_value=0, max_value=3),  # how many come before the registration
            st.booleans(),  # which instance registers the customer
        ),
        min_size=3,
        max_size=10,
    ),
    seed=st.integers(min_value=0, max_value=2**32),
)
async def test_two_instances_leave_nothing_parked(
    instances: Instances, crm_servers: Servers, customers: list[tuple[int, int, bool]], seed: int
) -> None:
    first, slow = instances
    parked = first.runtime.components.database[PARKING_COLLECTION]

    async def found_unknown(customer_id: str, sent: int) -> None:
        """Until each change sent is parked, or being parked by the slow instance."""
        async with (
            asyncio.timeout(60),
            await parked.watch(max_await_time_ms=20) as inserts,
        ):
            while (
                await parked.count_documents({"hold": customer_id}) + slow.pausing[customer_id]
                < sent
            ):
                await inserts.try_next()

    token = uuid.uuid4().hex[:8]
    ids = [f"{slow.prefix}{token}-{n}" for n in range(len(customers))]
    streams: list[list[tuple[str, int]]] = []
    for customer_id, (versions, before, _) in zip(ids, customers, strict=True):
        steps = [(customer_id, version) for version in range(1, versions + 1)]
        steps.insert(min(before, versions), (customer_id, 0))  # 0: the registration
        streams.append(steps)
    registrar = dict(
        zip(
            ids,
            (slow.application if on_second else first.application for _, _, on_second in customers),
            strict=True,
        )
    )
    registered: set[str] = set()
    sent: Counter[str] = Counter()

    producer = reliable_producer(
        crm_servers.kafka_bootstrap, **kafka_login(principal_of(Service.CORE_BANKING))
    )
    await producer.start()
    try:
        for customer_id, version in interleave(streams, random.Random(seed)):
            if version == 0:
                application = registrar[customer_id]
                with command_context("rm-0042"):
                    await asyncio.to_thread(application.register, customer_id, registration())
                registered.add(customer_id)
            else:
                key, value, headers = cloudevent(
                    "bank.corebanking.customer.data_changed",
                    customer_id,
                    version,
                    data_changed(customer_id, version),
                )
                await producer.send_and_wait(
                    first.settings.topic_names()(COREBANKING_CUSTOMERS.name),
                    value,
                    key,
                    headers=headers,
                )
                sent[customer_id] += 1
                if customer_id not in registered:  # register it while its change is parking
                    await found_unknown(customer_id, sent[customer_id])
    finally:
        await producer.stop()

    # Registered (1), then one CoreDataApplied per upstream version, in the view.
    positions = first.queries.positions
    for customer_id, (versions, _, _) in zip(ids, customers, strict=True):
        applied = await wait_until_applied(
            positions, "/crm/customer", customer_id, 1 + versions, within=90
        )
        assert applied, f"{customer_id} did not reach version {1 + versions}"
        customer = await asyncio.to_thread(first.application.get, customer_id)
        assert customer.version == 1 + versions
        assert customer.core_versions == {customer_id: versions}
        assert customer.profile["email"] == f"v{versions}@bank.example"
        assert customer.profile["phone"] == "+86 138 0000 0001"
        view = await first.queries.view(customer_id, WHOLE_BOOK)
        assert view is not None
        assert view.profile["email"] == f"v{versions}@bank.example"
        assert view.profile["phone"] == "+86 138 0000 0001"

    assert await parked.count_documents({"hold": {"$in": ids}}) == 0
