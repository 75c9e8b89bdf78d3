"""What every part of the benchmark shares: the servers, one run's names, topics,
percentiles and CPU use."""

from __future__ import annotations

import math
import os
import platform
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from crm_backbone.kafka_acls import ADMIN, Acl, service_acls
from crm_backbone.kafka_grants import admin_session, create_acls, delete_acls
from crm_backbone.projection import Document
from crm_backbone.settings import ServiceSettings
from crm_backbone.topic_names import TopicNames
from crm_events.topics import Service
from local_infra.accounts import as_administrators
from local_infra.infra import (
    ENV_KAFKA,
    ENV_MONGO,
    ENV_OIDC_ISSUER,
    ENV_POSTGRES,
    ENV_SECRETS,
    PROFILES,
    Infra,
    read_env_file,
)
from pymongo.asynchronous.database import AsyncDatabase

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "var" / "bench"
Database = AsyncDatabase[Document]


@dataclass(frozen=True)
class Kafka:
    """The cluster, and the benchmark's login: the servers' administrator (the launcher's
    Kafka super user), so the run's own topics and groups need no grants for the
    benchmark itself; the customer service's processes log in as themselves
    (:func:`grant_customer_service`)."""

    bootstrap: str
    login: dict[str, Any]
    """aiokafka client options (``ServiceSettings.kafka_client_options``); none: plaintext."""


@dataclass(frozen=True)
class Servers:
    kafka: Kafka
    mongo: str
    postgres: str
    oidc_issuer: str
    """The identity provider whose tokens the service validates (the genuine Keycloak)."""
    secrets_dir: Path | None
    """The servers' passwords (``CRM_SECRETS_DIR``): the service's processes log in with theirs."""
    pids: dict[str, int]
    """Server name → PID, when they are this machine's ``make infra-up`` servers."""
    versions: dict[str, str]


ADDRESSES = (ENV_KAFKA, ENV_MONGO, ENV_POSTGRES, ENV_OIDC_ISSUER)


def servers() -> Servers:
    """The addresses in the environment (all four), else those ``make infra-up`` wrote."""
    found = {k: os.environ[k] for k in ADDRESSES if k in os.environ}
    infra = Infra(PROFILES["run"])
    if len(found) < len(ADDRESSES):
        if not infra.env_file.exists():
            raise SystemExit("no servers: run `make infra-up` or set the CRM_* addresses")
        found = read_env_file(infra.env_file)
    ours = found == infra.env()
    statuses = infra.status() if ours else []
    secrets = found.get(ENV_SECRETS) or os.environ.get(ENV_SECRETS)
    secrets_dir = Path(secrets) if secrets else None
    mongo, postgres = as_administrators(found[ENV_MONGO], found[ENV_POSTGRES], secrets_dir)
    login = ServiceSettings(secrets_dir=secrets_dir).kafka_client_options(ADMIN)
    return Servers(
        Kafka(found[ENV_KAFKA], login),
        mongo,
        postgres,
        found[ENV_OIDC_ISSUER],
        secrets_dir,
        {s.name: s.pid for s in statuses if s.running and s.pid is not None},
        {s.name: s.version for s in statuses if s.running},
    )


@dataclass(frozen=True)
class Names:
    """The names of one run's topics, databases and consumer groups."""

    run: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    @property
    def prefix(self) -> str:
        """Of every topic of the run."""
        return f"bench.{self.run}."

    @property
    def topics(self) -> TopicNames:
        """The run's own topics, for the phases that drive the pipeline's parts directly."""
        return TopicNames(self.prefix)

    @property
    def service_topics(self) -> TopicNames:
        """The contract topics as the customer service processes name them (their
        ``CRM_TOPIC_PREFIX``)."""
        return TopicNames(f"{self.prefix}service.")

    @property
    def namespace(self) -> str:
        """Of every MongoDB and PostgreSQL database and consumer group of the run."""
        return f"bench_{self.run}"

    def database(self, name: str) -> str:
        return f"{self.namespace}_{name}"

    def group(self, name: str) -> str:
        return f"{self.namespace}.{name}"


def customer_service_acls(names: Names) -> list[Acl]:
    """What the customer service's principal may do with the run's topics and groups:
    what it may do with the contract's (``crm_backbone.kafka_acls``)."""
    return service_acls(Service.CUSTOMER, names.service_topics, names.namespace)


async def grant_customer_service(kafka: Kafka, names: Names, *, grant: bool = True) -> None:
    """Grant (or take back) :func:`customer_service_acls`."""
    if not kafka.login:
        return  # a broker without access control
    client = await admin_session(kafka.bootstrap, kafka.login)
    try:
        await (create_acls if grant else delete_acls)(client, customer_service_acls(names))
    finally:
        await client.close()


async def create_topics(kafka: Kafka, topics: Sequence[str], partitions: int = 6) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap, **kafka.login)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(t, partitions, 1) for t in topics])
    finally:
        await admin.close()


async def partitions(kafka: Kafka, topics: Sequence[str]) -> list[TopicPartition]:
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap, **kafka.login)
    await admin.start()
    try:
        described = await admin.describe_topics(list(topics))
    finally:
        await admin.close()
    return [TopicPartition(t["topic"], p["partition"]) for t in described for p in t["partitions"]]


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank ``q`` percentile (0 < q ≤ 100) of ``values``."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


class CpuMeter:
    """Cores each process used during one phase; "other" is the rest of the machine.

    On a 2-core machine the load generator, the servers and the code measured share the
    cores: this says who had them.
    """

    def __init__(self, processes: dict[str, int]) -> None:
        self.processes = {
            name: psutil.Process(pid) for name, pid in processes.items() if psutil.pid_exists(pid)
        }
        self.wall = time.perf_counter()
        self.machine = self._machine_busy()
        self.start = {name: self._cpu(p) for name, p in self.processes.items()}

    @staticmethod
    def _cpu(process: psutil.Process) -> float:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            return 0.0
        return float(times.user + times.system)

    @staticmethod
    def _machine_busy() -> float:
        times = psutil.cpu_times()
        return float(times.user + times.nice + times.system + times.irq + times.softirq)

    def cores(self) -> dict[str, float]:
        wall = time.perf_counter() - self.wall
        used = {
            name: (self._cpu(p) - self.start[name]) / wall for name, p in self.processes.items()
        }
        busy = (self._machine_busy() - self.machine) / wall
        used["other"] = max(0.0, busy - sum(used.values()))
        return {name: round(value, 2) for name, value in used.items()}


def machine(found: Servers) -> dict[str, Any]:
    cpu = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "arch": platform.machine(),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "servers": found.versions,
    }
