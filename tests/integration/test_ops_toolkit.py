"""crm-ops against the genuine servers: topics, dead letters fixed and redriven, lag."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from crm_backbone.kafka import KafkaDeadLetters, reliable_producer
from crm_backbone.kafka_acls import ADMIN
from crm_backbone.projection import ProjectionEngine
from crm_backbone.relay import integration_envelope
from crm_backbone.testing import (
    POISON_PHONE,
    SOURCE,
    CustomerCards,
    Customers,
    FixedCards,
    translate,
)
from crm_customer.api import create_app
from crm_customer.bootstrap import CustomerSettings, bootstrap
from crm_events.envelope import to_kafka
from crm_events.topics import TopicSpec
from crm_ops.cli import app
from crm_ops.deadletters import DeadLetterLedger, read_all, redrive
from crm_ops.kafka_state import group_lag, verify_topics
from local_infra.harness import serving
from local_infra.pytest_plugin import TEST_GROUPS, Servers, kafka_login
from local_infra.tokens import RealmTokens
from pymongo import AsyncMongoClient, MongoClient
from typer.testing import CliRunner

from tests.integration.conftest import SettingsFor

pytestmark = pytest.mark.integration


async def consume(bootstrap: str, topic: str, group: str, engine: ProjectionEngine) -> None:
    """Apply everything now in ``topic`` with ``engine``, committing as the service would."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        **kafka_login(ADMIN),
    )
    await consumer.start()
    try:
        while not consumer.assignment():
            await consumer.getmany(timeout_ms=200)
        ends = await consumer.end_offsets(list(consumer.assignment()))
        while any([await consumer.position(tp) < end for tp, end in ends.items()]):
            batch = await consumer.getmany(timeout_ms=500)
            records = [r for rs in batch.values() for r in rs]
            if records:
                await engine.process(records)
                await consumer.commit()
    finally:
        await consumer.stop()


async def test_a_dead_letter_fixed_and_redriven_is_applied_exactly_once(
    crm_servers: Servers,
    kafka_topics: Callable[..., Awaitable[str]],
    mongo_database: str,
) -> None:
    bootstrap = crm_servers.kafka_bootstrap
    topic, dead_letter_topic = await kafka_topics("cards"), await kafka_topics("dlq")
    customers = Customers(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    customer = customers.register("Wang Fang")
    customers.change_phone(customer, POISON_PHONE)
    events: list[Any] = list(customers.events.get(customer))
    records = [
        to_kafka(integration_envelope(e, payload, SOURCE))
        for e in events
        if (payload := translate(e)) is not None
    ]
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **kafka_login(ADMIN))
    await producer.start()
    for record in records:
        await producer.send_and_wait(topic, record.value, key=record.key, headers=record.headers)

    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(crm_servers.mongo_uri)
    database = mongo[mongo_database]
    group = f"{TEST_GROUPS}g-{uuid.uuid4()}"  # crm-ops reads the test namespaces' groups
    dlq_producer = reliable_producer(bootstrap, **kafka_login(ADMIN))
    await dlq_producer.start()
    try:
        letters_out = KafkaDeadLetters(dlq_producer, dead_letter_topic)
        await consume(
            bootstrap, topic, group, ProjectionEngine(CustomerCards(), database, letters_out, group)
        )
        (letter,) = [letter async for letter in read_all(bootstrap, dead_letter_topic)]
        assert letter.header("dlq_code") == "handler_error"
        assert letter.header("dlq_topic") == topic

        # After the fix: redrive, then the consumer group goes on from where it was.
        assert await redrive(bootstrap, [letter]) == 1
        ledger = DeadLetterLedger(database["dead_letter_actions"])
        await ledger.record(letter, "redriven", "ops-on-call", "handler fixed")
        fixed = ProjectionEngine(FixedCards(), database, letters_out, group)
        await consume(bootstrap, topic, group, fixed)
        # Redelivered again (a replay): still applied once.
        await consume(bootstrap, topic, f"{group}-replay", fixed)

        card = await database.cards.find_one({"_id": str(customer)})
        assert card is not None
        assert card["phone"] == POISON_PHONE
        assert card["changes"] == 2
        assert [letter async for letter in read_all(bootstrap, dead_letter_topic)] == [letter]
        assert (await ledger.done())[letter.id]["actor"] == "ops-on-call"

        lags = await group_lag(bootstrap, group)
        assert {lag.group for lag in lags} == {group, f"{group}-replay"}
        assert all(lag.lag == 0 for lag in lags)
    finally:
        await dlq_producer.stop()
        await producer.stop()
        await mongo.close()


async def test_topics_verify_reports_a_topic_with_wrong_partitions(
    crm_servers: Servers, kafka_topics: Callable[..., Awaitable[str]]
) -> None:
    wrong = await kafka_topics("short", partitions=1)
    spec = TopicSpec(wrong, 3, 1, {"cleanup.policy": "delete"})
    (check,) = await verify_topics(crm_servers.kafka_bootstrap, [spec])
    assert check.problems == ("1 partitions, contract says 3",)
    (missing,) = await verify_topics(crm_servers.kafka_bootstrap, [spec._replace(name="no.such")])
    assert missing.problems == ("missing",)


def test_the_command_line_creates_and_verifies_topics_and_lists_dead_letters(
    crm_servers: Servers,
) -> None:
    runner = CliRunner()
    env = {
        "CRM_KAFKA_BOOTSTRAP": crm_servers.kafka_bootstrap,
        "CRM_MONGO_URI": crm_servers.mongo_uri,
    }
    assert runner.invoke(app, ["topics", "create"], env=env).exit_code == 0
    verified = runner.invoke(app, ["topics", "verify"], env=env)
    assert verified.exit_code == 0, verified.output
    assert "crm.deadletter" in verified.output
    listed = runner.invoke(app, ["dlq", "list", "--all"], env=env)
    assert listed.exit_code == 0, listed.output


def test_the_command_line_works_on_a_deployments_own_topic_names(
    crm_servers: Servers, topic_prefix: str
) -> None:
    runner = CliRunner()
    env = {
        "CRM_KAFKA_BOOTSTRAP": crm_servers.kafka_bootstrap,
        "CRM_MONGO_URI": crm_servers.mongo_uri,
        "CRM_TOPIC_PREFIX": topic_prefix,
    }
    missing = runner.invoke(app, ["topics", "verify"], env=env)
    assert missing.exit_code == 1, missing.output
    created = runner.invoke(app, ["topics", "create"], env=env)
    assert created.exit_code == 0, created.output
    assert f"{topic_prefix}crm.deadletter" in created.output.replace("\n", "")
    verified = runner.invoke(app, ["topics", "verify"], env=env)
    assert verified.exit_code == 0, verified.output
    listed = runner.invoke(app, ["dlq", "list", "--all"], env=env)
    assert listed.exit_code == 0, listed.output
    refused = runner.invoke(app, ["topics", "verify", "--topic-prefix", "no spaces"], env=env)
    assert refused.exit_code == 2
    assert "'no spaces'" in refused.output


def test_a_server_that_is_down_is_a_clear_error() -> None:
    down = CliRunner().invoke(app, ["topics", "verify", "--bootstrap", "127.0.0.1:9"])
    assert down.exit_code == 2
    assert "Kafka does not answer" in down.output


def test_the_command_line_rebuilds_and_replays_a_view(
    crm_servers: Servers, unique_name: Callable[[str], str]
) -> None:
    runner = CliRunner()
    namespace = unique_name("ops")[:30]
    env = {
        "CRM_KAFKA_BOOTSTRAP": crm_servers.kafka_bootstrap,
        "CRM_MONGO_URI": crm_servers.mongo_uri,
    }
    try:
        rebuilt = runner.invoke(
            app, ["rebuild", "customer_view", "--namespace", namespace], env=env
        )
        assert rebuilt.exit_code == 0, rebuilt.output
        assert "rebuilt customer_view" in rebuilt.output
        replayed = runner.invoke(
            app, ["replay", "customer_view", "--from", "0", "--namespace", namespace], env=env
        )
        assert replayed.exit_code == 0, replayed.output
        unknown = runner.invoke(app, ["rebuild", "no_such_view"], env=env)
        assert unknown.exit_code == 1
    finally:
        client: MongoClient[dict[str, Any]] = MongoClient(crm_servers.mongo_uri)
        client.drop_database(f"{namespace}_customer")
        client.close()


async def test_projections_and_relay_status_of_a_running_service(
    crm_servers: Servers,
    unique_name: Callable[[str], str],
    topic_prefix: str,
    realm_tokens: RealmTokens,
    settings_for: SettingsFor,
) -> None:
    namespace = unique_name("st")[:30]
    settings = settings_for(CustomerSettings, namespace=namespace)
    service = bootstrap(settings)
    env = {
        "CRM_KAFKA_BOOTSTRAP": crm_servers.kafka_bootstrap,
        "CRM_MONGO_URI": crm_servers.mongo_uri,
        "CRM_TOPIC_PREFIX": topic_prefix,
    }
    runner = CliRunner()
    async with serving(create_app(service)) as url:
        async with httpx.AsyncClient(
            base_url=url, headers=realm_tokens.service("crm-customer")
        ) as client:
            created = await client.post(
                "/customers",
                json={
                    "customer_id": f"C-{namespace[-6:]}",
                    "customer_type": "individual",
                    "name": {"full_name": "Ops Test"},
                    "branch_id": "BR-001",
                },
            )
            assert created.status_code == 201
            view = await client.get(
                f"/customers/C-{namespace[-6:]}/view", params={"min_version": 1, "wait_ms": 10_000}
            )
            assert view.status_code == 200, view.text
        status = await asyncio.to_thread(
            runner.invoke, app, ["relay", "status", "--service", f"customer={url}"], env=env
        )
        assert status.exit_code == 0, status.output
        assert "customer" in status.output
        assert "FAILING" not in status.output
        groups = await asyncio.to_thread(
            runner.invoke, app, ["projections", "--namespace", namespace], env=env
        )
        assert groups.exit_code == 0, groups.output
        assert f"{namespace}.customer.customer_view" in groups.output.replace("\n", "")
    down = runner.invoke(app, ["relay", "status", "--service", f"customer={url}"], env=env)
    assert down.exit_code == 2
    cleaner: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(crm_servers.mongo_uri)
    await cleaner.drop_database(settings.mongo_database("customer"))
    await cleaner.close()
