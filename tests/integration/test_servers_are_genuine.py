"""Smoke tests: the servers the harness provides are the genuine ones, with the features we use."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.protocol.admin import ApiVersionRequest
from crm_backbone.kafka_acls import ADMIN
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event
from local_infra.pytest_plugin import Servers, kafka_login
from pymongo import AsyncMongoClient

pytestmark = pytest.mark.integration

TopicFactory = Callable[..., Awaitable[str]]

FETCH_API_KEY = 1
SHARE_GROUP_HEARTBEAT_API_KEY = 76


async def test_kafka_is_apache_kafka_4(crm_servers: Servers) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=crm_servers.kafka_bootstrap, **kafka_login(ADMIN))
    await admin.start()
    try:
        cluster = await admin.describe_cluster()
        broker = cluster["brokers"][0]
        response = await admin._client.send(broker["node_id"], ApiVersionRequest())
    finally:
        await admin.close()
    versions = {key: (low, high) for key, low, high in response.api_versions}
    # Kafka 4.0 dropped Fetch v0-v3 (KIP-896): a 3.x broker still offers v0.
    assert versions[FETCH_API_KEY][0] >= 4, versions[FETCH_API_KEY]
    # Share groups (KIP-932) are answered by 4.x brokers only.
    assert SHARE_GROUP_HEARTBEAT_API_KEY in versions
    assert cluster["controller_id"] >= 0


async def test_idempotent_and_transactional_producers(
    crm_servers: Servers, kafka_topics: TopicFactory
) -> None:
    topic = await kafka_topics("smoke")
    idempotent = AIOKafkaProducer(
        bootstrap_servers=crm_servers.kafka_bootstrap,
        **kafka_login(ADMIN),
        enable_idempotence=True,
        acks="all",
    )
    await idempotent.start()
    try:
        sent = await idempotent.send_and_wait(topic, b"plain", key=b"k")
    finally:
        await idempotent.stop()
    transactional = AIOKafkaProducer(
        bootstrap_servers=crm_servers.kafka_bootstrap,
        **kafka_login(ADMIN),
        transactional_id=f"smoke-{uuid.uuid4()}",
    )
    await transactional.start()
    try:
        async with transactional.transaction():
            await transactional.send(topic, b"committed", key=b"k")
        await transactional.begin_transaction()
        await transactional.send(topic, b"aborted", key=b"k")
        await transactional.abort_transaction()
    finally:
        await transactional.stop()

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=crm_servers.kafka_bootstrap,
        **kafka_login(ADMIN),
        isolation_level="read_committed",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        seen: list[bytes] = []
        while len(seen) < 2:
            batch = await consumer.getmany(timeout_ms=5000)
            assert batch, f"no records after {seen}"
            seen += [record.value for records in batch.values() for record in records]
    finally:
        await consumer.stop()
    assert sent.partition == TopicPartition(topic, sent.partition).partition
    assert seen == [b"plain", b"committed"]


async def test_consumer_group_resumes_from_its_commit(
    crm_servers: Servers, kafka_topics: TopicFactory
) -> None:
    topic = await kafka_topics("resume", partitions=1)
    group = f"group-{uuid.uuid4().hex}"
    producer = AIOKafkaProducer(
        bootstrap_servers=crm_servers.kafka_bootstrap, **kafka_login(ADMIN), acks="all"
    )
    await producer.start()
    try:
        for number in range(10):
            await producer.send_and_wait(topic, str(number).encode())
    finally:
        await producer.stop()

    async def consume(count: int, commit: bool) -> list[bytes]:
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=crm_servers.kafka_bootstrap,
            **kafka_login(ADMIN),
            group_id=group,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        try:
            values: list[bytes] = []
            while len(values) < count:
                record = await consumer.getone()
                values.append(record.value)
            if commit:
                await consumer.commit()
            return values
        finally:
            await consumer.stop()

    first = await consume(4, commit=True)
    second = await consume(6, commit=False)
    assert first == [b"0", b"1", b"2", b"3"]
    assert second == [str(n).encode() for n in range(4, 10)]


async def test_mongodb_transaction_and_change_stream(
    crm_servers: Servers, mongo_database: str
) -> None:
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(crm_servers.mongo_uri)
    try:
        db = client[mongo_database]
        await db.create_collection("accounts")
        await db.create_collection("audit")
        async with await db.accounts.watch() as stream:
            async with client.start_session() as session, await session.start_transaction():
                await db.accounts.insert_one({"_id": "a1", "balance": 100}, session=session)
                await db.audit.insert_one({"_id": "x1", "account": "a1"}, session=session)
            change = await stream.next()
        assert change["operationType"] == "insert"
        assert change["documentKey"] == {"_id": "a1"}

        async with client.start_session() as session:
            await session.start_transaction()
            await db.accounts.insert_one({"_id": "a2"}, session=session)
            await session.abort_transaction()
        assert await db.accounts.count_documents({}) == 1
        assert await db.audit.count_documents({}) == 1
    finally:
        await client.close()


class Account(Aggregate):
    @event("Opened")
    def __init__(self, owner: str) -> None:
        self.owner = owner
        self.balance = 0

    @event("Deposited")
    def deposit(self, amount: int) -> None:
        self.balance += amount


def test_eventsourcing_postgres_recorder_round_trips(postgres_database: str) -> None:
    dsn = urlsplit(postgres_database)
    app = Application[uuid.UUID](
        env={
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": dsn.path.lstrip("/"),
            "POSTGRES_HOST": dsn.hostname or "",
            "POSTGRES_PORT": str(dsn.port),
            "POSTGRES_USER": dsn.username or "",
            "POSTGRES_PASSWORD": dsn.password or "",
        }
    )
    try:
        account = Account(owner="Li Wei")
        account.deposit(250)
        app.save(account)
        loaded: Account = app.repository.get(account.id)
        notifications = app.recorder.select_notifications(start=None, limit=10)
    finally:
        app.close()
    assert (loaded.owner, loaded.balance, loaded.version) == ("Li Wei", 250, 2)
    assert [n.topic.rsplit(".", 1)[-1] for n in notifications] == ["Opened", "Deposited"]
