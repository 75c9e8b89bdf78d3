"""Kafka refuses who may not: no login, a wrong password, another system's topic, a topic
a service does not consume, another service's consumer group; and lets the rest through.

Against the genuine broker with the ACL table of ``crm_backbone.kafka_acls``, granted by
the harness for the test's own topic prefix (``topic_prefix``); consumer groups in the
contract's namespace ``crm`` are the launcher's grants.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import (
    GroupAuthorizationFailedError,
    KafkaConnectionError,
    KafkaError,
    TopicAuthorizationFailedError,
)
from crm_backbone.kafka import ensure_topics
from crm_backbone.kafka_acls import ADMIN, OPS, principal_of
from crm_backbone.topic_names import TopicNames
from crm_events.topics import (
    CHANNEL_GATEWAY_RESPONSES,
    COREBANKING_ACCOUNTS,
    CUSTOMER_EVENTS,
    DEAD_LETTER,
    HR_ORGANISATION,
    Service,
)
from local_infra.pytest_plugin import TEST_GROUPS, Servers, kafka_login

pytestmark = pytest.mark.integration

CUSTOMER = principal_of(Service.CUSTOMER)
OPPORTUNITY = principal_of(Service.OPPORTUNITY)
CORE_BANKING = principal_of(Service.CORE_BANKING)


@pytest.fixture
async def topics(crm_servers: Servers, topic_prefix: str) -> TopicNames:
    """The contract's topics under the test's prefix, created by the admin."""
    if not kafka_login(ADMIN):
        pytest.skip("this Kafka has no credentials configured (CRM_SECRETS_DIR)")
    names = TopicNames(topic_prefix)
    await ensure_topics(crm_servers.kafka_bootstrap, names.specs(), login=kafka_login(ADMIN))
    return names


async def send(bootstrap: str, login: dict[str, Any], topic: str) -> None:
    """One record to ``topic`` by a producer logged in with ``login``."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", request_timeout_ms=10_000, **login
    )
    try:
        await producer.start()
        await producer.send_and_wait(topic, b"{}", key=b"k")
    finally:
        await producer.stop()


async def read(
    bootstrap: str, login: dict[str, Any], topic: str, group: str | None = None
) -> list[bytes]:
    """What a consumer logged in with ``login`` reads of ``topic`` (in ``group``)."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        **login,
    )
    try:
        await consumer.start()
        async with asyncio.timeout(30):
            while True:
                batches = await consumer.getmany(timeout_ms=500)
                if batches:
                    return [r.value or b"" for rs in batches.values() for r in rs]
    finally:
        await consumer.stop()


async def test_a_producer_without_credentials_is_refused(
    crm_servers: Servers, topics: TopicNames
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=crm_servers.kafka_bootstrap)
    try:
        with pytest.raises(KafkaConnectionError):
            await producer.start()
    finally:
        await producer.stop()


async def test_a_producer_with_a_wrong_password_is_refused(
    crm_servers: Servers, topics: TopicNames
) -> None:
    forged = kafka_login(CORE_BANKING) | {"sasl_plain_password": uuid.uuid4().hex}
    with pytest.raises(KafkaError):
        await send(crm_servers.kafka_bootstrap, forged, topics(COREBANKING_ACCOUNTS.name))


@pytest.mark.parametrize("topic", [CUSTOMER_EVENTS, HR_ORGANISATION, DEAD_LETTER])
async def test_core_banking_may_not_write_another_producers_topic(
    crm_servers: Servers, topics: TopicNames, topic: Any
) -> None:
    with pytest.raises(TopicAuthorizationFailedError):
        await send(crm_servers.kafka_bootstrap, kafka_login(CORE_BANKING), topics(topic.name))


async def test_core_banking_writes_its_topic_and_the_customer_service_reads_it(
    crm_servers: Servers, topics: TopicNames
) -> None:
    bootstrap, topic = crm_servers.kafka_bootstrap, topics(COREBANKING_ACCOUNTS.name)
    await send(bootstrap, kafka_login(CORE_BANKING), topic)
    group = f"{TEST_GROUPS}{uuid.uuid4().hex[:8]}.customer.accounts"
    assert await read(bootstrap, kafka_login(CUSTOMER), topic, group) == [b"{}"]


async def test_a_service_may_not_read_a_topic_it_does_not_consume(
    crm_servers: Servers, topics: TopicNames
) -> None:
    topic = topics(CHANNEL_GATEWAY_RESPONSES.name)  # the campaign service's input only
    with pytest.raises(TopicAuthorizationFailedError):
        await read(crm_servers.kafka_bootstrap, kafka_login(OPPORTUNITY), topic)


async def test_a_service_may_not_join_another_services_consumer_group(
    crm_servers: Servers, topics: TopicNames
) -> None:
    group = f"crm.customer.forged-{uuid.uuid4().hex[:8]}"  # the customer service's groups
    topic = topics(CUSTOMER_EVENTS.name)
    with pytest.raises(GroupAuthorizationFailedError):
        await read(crm_servers.kafka_bootstrap, kafka_login(OPPORTUNITY), topic, group)


async def test_services_write_the_dead_letter_topic_and_only_ops_reads_it(
    crm_servers: Servers, topics: TopicNames
) -> None:
    bootstrap, topic = crm_servers.kafka_bootstrap, topics.dead_letter
    await send(bootstrap, kafka_login(OPPORTUNITY), topic)
    assert await read(bootstrap, kafka_login(OPS), topic) == [b"{}"]
    with pytest.raises(TopicAuthorizationFailedError):
        await read(bootstrap, kafka_login(CUSTOMER), topic)


async def test_a_service_may_not_create_a_topic_outside_the_contract(
    crm_servers: Servers, topics: TopicNames
) -> None:
    outside = f"{topics.prefix}not.in.the.contract"
    spec = topics.specs([DEAD_LETTER.name])[0]._replace(name=outside)
    with pytest.raises(KafkaError):
        await ensure_topics(crm_servers.kafka_bootstrap, [spec], login=kafka_login(CUSTOMER))
    created = await ensure_topics(crm_servers.kafka_bootstrap, [spec], login=kafka_login(ADMIN))
    assert created == [outside]  # deleted with the test's prefix
