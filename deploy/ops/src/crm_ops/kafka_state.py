"""What Kafka says: topics against the contract, consumer groups and their lag."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from crm_backbone.kafka_acls import OPS
from crm_backbone.settings import ServiceSettings
from crm_events.topics import TopicSpec, topic_specs


def ops_login() -> dict[str, Any]:
    """crm-ops's Kafka login: the principal ``crm-ops``, when its password is configured
    (``CRM_KAFKA_PASSWORD``, or ``CRM_SECRETS_DIR`` as ``crm-infra`` writes it)."""
    return ServiceSettings().kafka_client_options(OPS)


@asynccontextmanager
async def admin_client(
    bootstrap: str, login: Mapping[str, Any] | None = None
) -> AsyncIterator[AIOKafkaAdminClient]:
    """An admin client logged in as ``login`` (by default crm-ops's own)."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, request_timeout_ms=10_000, **(login or ops_login())
    )
    await admin.start()
    try:
        yield admin
    finally:
        await admin.close()


@dataclass(frozen=True)
class TopicCheck:
    name: str
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


async def verify_topics(
    bootstrap: str, specs: Sequence[TopicSpec] | None = None
) -> list[TopicCheck]:
    """Each contract topic: exists, with its partitions, cleanup policy and retention."""
    specs = list(specs if specs is not None else topic_specs())
    async with admin_client(bootstrap) as admin:
        existing = set(await admin.list_topics())
        present = [s for s in specs if s.name in existing]
        partitions: dict[str, int] = {}
        configs: dict[str, dict[str, str]] = {}
        if present:
            described = await admin.describe_topics([s.name for s in present])
            partitions = {t["topic"]: len(t["partitions"]) for t in described}
            responses = await admin.describe_configs(
                [ConfigResource(ConfigResourceType.TOPIC, s.name) for s in present]
            )
            for response in responses:
                for _, _, _, name, entries in response.resources:
                    configs[name] = {entry[0]: entry[1] for entry in entries}
    checks = []
    for spec in specs:
        if spec.name not in existing:
            checks.append(TopicCheck(spec.name, ("missing",)))
            continue
        problems = []
        if partitions.get(spec.name) != spec.num_partitions:
            problems.append(
                f"{partitions.get(spec.name)} partitions, contract says {spec.num_partitions}"
            )
        for key, wanted in spec.topic_configs.items():
            actual = configs.get(spec.name, {}).get(key)
            if actual != wanted:
                problems.append(f"{key}={actual}, contract says {wanted}")
        checks.append(TopicCheck(spec.name, tuple(problems)))
    return checks


@dataclass(frozen=True)
class PartitionLag:
    group: str
    topic: str
    partition: int
    committed: int | None
    end: int

    @property
    def lag(self) -> int:
        return self.end - (self.committed or 0)


async def group_lag(bootstrap: str, prefix: str = "") -> list[PartitionLag]:
    """Committed offset, end offset and lag of every partition of every group with ``prefix``."""
    async with admin_client(bootstrap) as admin:
        groups = sorted(g[0] for g in await admin.list_consumer_groups() if g[0].startswith(prefix))
        committed = {group: await admin.list_consumer_group_offsets(group) for group in groups}
    partitions = {tp for offsets in committed.values() for tp in offsets}
    ends = await end_offsets(bootstrap, partitions)
    return [
        PartitionLag(
            group, tp.topic, tp.partition, meta.offset if meta.offset >= 0 else None, ends[tp]
        )
        for group, offsets in committed.items()
        for tp, meta in sorted(offsets.items())
    ]


async def end_offsets(bootstrap: str, partitions: set[TopicPartition]) -> dict[TopicPartition, int]:
    if not partitions:
        return {}
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, **ops_login()
    )
    await consumer.start()
    try:
        ends: dict[TopicPartition, int] = await consumer.end_offsets(list(partitions))
        return ends
    finally:
        await consumer.stop()
