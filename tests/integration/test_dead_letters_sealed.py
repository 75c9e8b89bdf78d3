"""Dead letters hold no personal data in clear, on the genuine servers: an upstream record in
clear that fails validation is dead-lettered sealed under its customer's key (no byte of the
name in the record nor in the broker's log segments); crm-ops opens it through the key store
and shows it masked; once the customer is erased (their key destroyed) the letter shows as
erased and a redrive purges it instead of sending it, while another customer's letter is
redriven as the bank sent it."""

from __future__ import annotations

import asyncio
import json
import random
import string
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from bson.raw_bson import RawBSONDocument
from crm_backbone.holds import REDRIVE_HEADER
from crm_backbone.kafka import KafkaDeadLetters, ensure_topics, reliable_producer
from crm_backbone.kafka_acls import ADMIN
from crm_backbone.keys.factory import key_sealer
from crm_backbone.projection import ProjectionEngine
from crm_backbone.settings import ServiceSettings
from crm_backbone.testing import CustomerCards
from crm_backbone.topic_names import TopicNames
from crm_events import to_kafka
from crm_events.common import CustomerName
from crm_events.core_banking import CustomerDataChanged
from crm_events.envelope import Envelope, KafkaRecord
from crm_events.topics import COREBANKING_CUSTOMERS, DEAD_LETTER
from crm_ops.cli import app
from crm_ops.deadletters import DeadLetter, read_all
from local_infra.pytest_plugin import TEST_GROUPS, Servers, kafka_login
from pymongo import AsyncMongoClient, MongoClient
from typer.testing import CliRunner, Result

from tests.integration.kafka_support import produce
from tests.integration.store_bytes import forms, kafka_log_dir, kafka_segments
from tests.integration.test_ops_toolkit import consume

pytestmark = pytest.mark.integration


def distinctive_name() -> tuple[str, str]:
    """(full name, given name): a given name no store holds by chance."""
    given = "Qiu" + "".join(random.choices(string.ascii_lowercase, k=10))
    return f"Duanmu {given}", given


def invalid_upstream_record(customer: str, full_name: str) -> KafkaRecord:
    """The bank's record in clear (name, phone) whose phone is no phone: it fails validation."""
    payload = CustomerDataChanged(name=CustomerName(full_name=full_name), phone="+86 139 5555 0001")
    record = to_kafka(Envelope.new(payload, customer, 1, "core-banking", "/bank/core-banking"))
    body = json.loads(record.value) | {"phone": ["not", "a", "phone"]}
    return KafkaRecord(record.key, json.dumps(body).encode(), record.headers)


async def crm_ops(env: dict[str, str], *args: str) -> Result:
    """``crm-ops`` run as on the command line (its own event loop, in a thread)."""
    return await asyncio.to_thread(CliRunner().invoke, app, list(args), env=env)


async def dead_letters(bootstrap: str, topic: str) -> dict[bytes | None, DeadLetter]:
    return {letter.key: letter async for letter in read_all(bootstrap, topic)}


async def test_a_dead_letter_is_sealed_shown_masked_and_erased_with_its_subject(
    crm_servers: Servers,
    topic_prefix: str,
    mongo_database: str,
    tmp_path: Path,
) -> None:
    bootstrap = crm_servers.kafka_bootstrap
    topics = TopicNames(topic_prefix)
    upstream, dead = topics(COREBANKING_CUSTOMERS.name), topics.dead_letter
    await ensure_topics(
        bootstrap,
        topics.specs([COREBANKING_CUSTOMERS.name, DEAD_LETTER.name]),
        login=kafka_login(ADMIN),
    )
    settings = ServiceSettings(data_dir=tmp_path, key_database="sqlite")
    sealer = key_sealer(settings, "customer")  # the service's own key store
    erased, kept = f"C-{uuid.uuid4()}", f"C-{uuid.uuid4()}"
    (full_name, given), (other_name, _) = distinctive_name(), distinctive_name()
    records = {
        erased: invalid_upstream_record(erased, full_name),
        kept: invalid_upstream_record(kept, other_name),
    }
    await produce(bootstrap, upstream, list(records.values()), 0)

    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(crm_servers.mongo_uri)
    group = f"{TEST_GROUPS}g-{uuid.uuid4()}"
    producer = reliable_producer(bootstrap, **kafka_login(ADMIN))
    await producer.start()
    try:
        letters_out = KafkaDeadLetters(producer, dead, sealer)
        engine = ProjectionEngine(CustomerCards(), mongo[mongo_database], letters_out, group)
        await consume(bootstrap, upstream, group, engine)
    finally:
        await producer.stop()
        await mongo.close()

    # The dead-letter topic's record, and the broker's files, hold nothing of the person.
    letters = await dead_letters(bootstrap, dead)
    letter = letters[erased.encode()]
    assert letter.header("dlq_code") == "invalid_body"
    assert letter.header("dlq_sealed_for") == erased
    raw = (letter.value or b"") + b"".join(value for _, value in letter.headers)
    assert not [form for form in forms(given) if form in raw]
    assert b"5555" not in raw
    log_dir = kafka_log_dir(bootstrap)
    if log_dir is not None:  # the project's launcher's broker, on this machine
        assert kafka_segments(log_dir, topics).found(forms(given)) == []

    env = {
        "CRM_KAFKA_BOOTSTRAP": bootstrap,
        "CRM_MONGO_URI": crm_servers.mongo_uri,
        "CRM_TOPIC_PREFIX": topic_prefix,
        "CRM_DATA_DIR": str(tmp_path),
        "CRM_KEY_DATABASE": "sqlite",
    }
    shown = await crm_ops(env, "dlq", "show", letter.id)
    assert shown.exit_code == 0, shown.output
    assert "***" in shown.output  # opened, and masked
    assert given not in shown.output
    assert "5555" not in shown.output

    # Erasure: the customer service destroys the subject's key.
    sealer.destroy(erased)

    shown = await crm_ops(env, "dlq", "show", letter.id)
    assert shown.exit_code == 0, shown.output
    assert "body: erased" in shown.output
    listed = await crm_ops(env, "dlq", "list")
    assert listed.exit_code == 0, listed.output
    assert "erased" in listed.output

    other = letters[kept.encode()]
    redriven = await crm_ops(
        env, "dlq", "redrive", letter.id, other.id, "--reason", "bank fixed the feed"
    )
    assert redriven.exit_code == 0, redriven.output
    assert "not redriven, purged" in redriven.output
    assert "redriven: 1 dead letter(s)" in redriven.output
    sent_again = await redriven_to(bootstrap, upstream)
    assert sent_again == [(kept.encode(), records[kept].value)]  # the bank's bytes, opened

    # The ledger of what was done holds no byte of either person.
    ledger: MongoClient[Any] = MongoClient(crm_servers.mongo_uri, document_class=RawBSONDocument)
    try:
        actions = ledger["crm_ops"]["dead_letter_actions"]
        done = {doc["_id"]: doc for doc in actions.find({"_id": {"$regex": f"^{dead}@"}})}
    finally:
        ledger.close()
    assert {done[f"{dead}@{letter.id}"]["action"], done[f"{dead}@{other.id}"]["action"]} == {
        "purged",
        "redriven",
    }
    assert all(given.encode() not in doc.raw for doc in done.values())


async def redriven_to(bootstrap: str, topic: str) -> list[tuple[bytes | None, bytes | None]]:
    """(key, value) of every record crm-ops redrove to ``topic`` (core banking's customers),
    on any partition."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, **kafka_login(ADMIN))
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(COREBANKING_CUSTOMERS.partitions)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        found: list[tuple[bytes | None, bytes | None]] = []
        while any([await consumer.position(tp) < end for tp, end in ends.items()]):
            for records in (await consumer.getmany(*partitions, timeout_ms=1000)).values():
                found += [(r.key, r.value) for r in records if REDRIVE_HEADER in dict(r.headers)]
        return found
    finally:
        await consumer.stop()
