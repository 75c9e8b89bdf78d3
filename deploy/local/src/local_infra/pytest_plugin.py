"""Pytest plugin: genuine servers for integration tests, and per-test topics and databases.

Servers are found in this order:
1. addresses in ``CRM_KAFKA_BOOTSTRAP``, ``CRM_MONGO_URI`` and ``CRM_POSTGRES_DSN``;
2. the project's own launcher (profile ``test``), which starts what is not running (Keycloak
   included) and stops, at the end of the session, exactly what it started;
3. testcontainers with the official images, when a Docker engine answers;
otherwise the session fails and says how to get servers. The identity provider and
OpenBao come from ``local_infra.pytest_trust``, a plugin of their own.

The harness connects as the servers' administrators (from ``CRM_SECRETS_DIR`` when it
holds their passwords, as the launcher's does; else as the addresses say), and creates,
for a test that asks (:func:`namespace_accounts`), each process's own user in a
namespace of the test's own.

Kafka's principals are the deployment's (``crm_backbone.kafka_acls``): the harness hands
their passwords (the secrets folder's ``kafka/``) to every process of the session
(``CRM_KAFKA_SECRETS_DIR``), a test's topic prefix (:func:`topic_prefix`) gets the ACL
table for its topics, and the services' and ``crm-ops``'s principals may use the test
namespaces' consumer groups (``t_``...). Each process of a test logs in as its own
principal; the admin only sets tests up.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from crm_backbone import credentials, kafka_grants
from crm_backbone.kafka_acls import (
    ADMIN,
    CRM_SERVICES,
    GROUP_MEMBER,
    OPS,
    OPS_TOPIC_OPERATIONS,
    Acl,
    Pattern,
    Resource,
    acl_table,
    principal_of,
)
from crm_backbone.settings import KAFKA, ServiceSettings
from crm_backbone.topic_names import TopicNames
from pydantic import SecretStr
from pymongo import AsyncMongoClient, MongoClient
from pymongo.asynchronous.database import AsyncDatabase

from local_infra.accounts import (
    SERVICES,
    as_administrators,
    drop_mongo_users,
    drop_postgres_accounts,
    provision_mongo,
    provision_postgres,
)
from local_infra.infra import (
    ENV_KAFKA,
    ENV_MONGO,
    ENV_POSTGRES,
    ENV_SECRETS,
    PROFILES,
    Infra,
)
from local_infra.process import InfraError


@dataclass(frozen=True)
class Servers:
    kafka_bootstrap: str
    mongo_uri: str
    """As MongoDB's administrator (the harness's own)."""
    postgres_dsn: str
    """As PostgreSQL's superuser (the harness's own)."""
    origin: str  # "environment", "local launcher" or "testcontainers"


def _from_environment() -> Servers | None:
    values = [os.environ.get(key) for key in (ENV_KAFKA, ENV_MONGO, ENV_POSTGRES)]
    if not any(values):
        return None
    if not all(values):
        raise pytest.UsageError(
            f"set all of {ENV_KAFKA}, {ENV_MONGO} and {ENV_POSTGRES}, or none of them"
        )
    kafka, mongo, postgres = (value or "" for value in values)
    secrets = Path(folder) if (folder := os.environ.get(ENV_SECRETS)) else None
    return Servers(kafka, *as_administrators(mongo, postgres, secrets), "environment")


def docker_answers() -> bool:
    docker = shutil.which("docker")
    if docker is None:
        return False
    try:
        result = subprocess.run([docker, "info"], capture_output=True, timeout=10, check=False)
    except subprocess.TimeoutExpired:
        return False
    return result.returncode == 0


def _from_testcontainers(stack: ExitStack) -> Servers:
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.waiting_utils import wait_for_logs
    from testcontainers.kafka import KafkaContainer
    from testcontainers.postgres import PostgresContainer

    kafka = stack.enter_context(KafkaContainer("apache/kafka:4.1.1").with_kraft())
    postgres = stack.enter_context(PostgresContainer("postgres:17", driver=None))
    mongo = stack.enter_context(
        DockerContainer("mongo:8.0")
        .with_command("--replSet rs0 --bind_ip_all --port 27017")
        .with_exposed_ports(27017)
    )
    wait_for_logs(mongo, "Waiting for connections")
    host, port = mongo.get_container_host_ip(), mongo.get_exposed_port(27017)
    mongo.exec(
        "mongosh --quiet --eval "
        f'\'rs.initiate({{_id:"rs0",members:[{{_id:0,host:"{host}:{port}"}}]}})\''
    )
    return Servers(
        kafka.get_bootstrap_server(),
        f"mongodb://{host}:{port}/?replicaSet=rs0",
        postgres.get_connection_url(),
        "testcontainers",
    )


@pytest.fixture(scope="session")
def crm_servers() -> Iterator[Servers]:
    """Genuine Kafka, MongoDB and PostgreSQL for this test session."""
    if (given := _from_environment()) is not None:
        with pytest.MonkeyPatch.context() as session:
            if (folder := os.environ.get(ENV_SECRETS)) and ENV_KAFKA_SECRETS not in os.environ:
                session.setenv(ENV_KAFKA_SECRETS, str(Path(folder) / KAFKA))
            # The secrets are the harness's: a test's processes connect as it tells them.
            session.delenv(ENV_SECRETS, raising=False)
            yield given
        return
    infra = Infra(PROFILES["test"])
    running_before = {server.name for server in infra.servers if server.pid() is not None}
    launcher_error: InfraError | None = None
    try:
        infra.up()
    except InfraError as error:
        launcher_error = error
    if launcher_error is None:
        os.environ[ENV_KAFKA_SECRETS] = str(infra.kafka.secrets.folder / KAFKA)
        try:
            yield Servers(
                infra.kafka.address,
                infra.mongo.admin_uri,
                infra.postgres.admin_dsn,
                "local launcher",
            )
        finally:
            for server in infra.servers:
                if server.name not in running_before:
                    server.stop()
        return
    if docker_answers():
        with ExitStack() as stack:
            yield _from_testcontainers(stack)
        return
    pytest.fail(
        "No servers for the integration tests. The project's launcher failed:\n"
        f"{launcher_error}\n"
        f"Either fix that (`make setup` installs Java, Maven and PostgreSQL), point "
        f"{ENV_KAFKA}, {ENV_MONGO} and {ENV_POSTGRES} at running servers, "
        "or run with a Docker engine for testcontainers.",
        pytrace=False,
    )


ENV_KAFKA_SECRETS = "CRM_KAFKA_SECRETS_DIR"
TEST_GROUPS = "t_"
"""How every test namespace, and so every consumer group of a test, begins."""


def kafka_login(principal: str) -> dict[str, Any]:
    """The Kafka client options of ``principal`` in this session (none: no credentials)."""
    return ServiceSettings().kafka_client_options(principal)


async def _granting(bootstrap: str, acls: list[Acl], *, grant: bool) -> None:
    if not kafka_login(ADMIN):
        return
    if grant:
        await kafka_grants.grant(bootstrap, kafka_login(ADMIN), {}, acls)
        return
    client = await kafka_grants.admin_session(bootstrap, kafka_login(ADMIN))
    try:
        await kafka_grants.delete_acls(client, acls)
    finally:
        await client.close()


@pytest.fixture(autouse=True)
def _integration_kafka_access(request: pytest.FixtureRequest) -> None:
    """An integration test's processes may use its consumer groups (unit tests start no
    servers)."""
    if request.node.get_closest_marker("integration") is not None:
        request.getfixturevalue("test_groups_granted")


@pytest.fixture(scope="session")
async def test_groups_granted(crm_servers: Servers) -> None:
    """The services' and crm-ops's principals may use the test namespaces' groups, and
    crm-ops may do to the tests' own topics (``kafka_topics``) what it does to the
    contract's."""
    acls = [
        *(
            Acl(principal, Resource.GROUP, Pattern.PREFIXED, TEST_GROUPS, operation)
            for principal in (*(principal_of(s) for s in CRM_SERVICES), OPS)
            for operation in GROUP_MEMBER
        ),
        *(
            Acl(OPS, Resource.TOPIC, Pattern.PREFIXED, TEST_GROUPS, operation)
            for operation in OPS_TOPIC_OPERATIONS
        ),
    ]
    # Granted for good, never revoked: several test sessions may share the servers, and
    # the grants name only the tests' own prefix.
    await _granting(crm_servers.kafka_bootstrap, acls, grant=True)


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> Callable[[str], str]:
    """Names no other test uses: ``unique_name("orders")`` → ``t_orders_<test>_<hex>``."""
    test = re.sub(r"[^a-z0-9]+", "_", request.node.name.lower())[:30].strip("_")
    token = uuid.uuid4().hex[:8]

    def make(prefix: str) -> str:
        return f"t_{prefix}_{test}_{token}"

    return make


@pytest.fixture
async def kafka_topics(
    crm_servers: Servers, unique_name: Callable[[str], str]
) -> AsyncIterator[Callable[..., Awaitable[str]]]:
    """Factory creating this test's own topics; all are deleted after the test."""
    admin = AIOKafkaAdminClient(bootstrap_servers=crm_servers.kafka_bootstrap, **kafka_login(ADMIN))
    await admin.start()
    created: list[str] = []

    async def create(prefix: str, partitions: int = 3, **configs: str) -> str:
        name = unique_name(prefix)
        await admin.create_topics([NewTopic(name, partitions, 1, topic_configs=configs or None)])
        created.append(name)
        return name

    try:
        yield create
    finally:
        if created:
            await admin.delete_topics(created)
        await admin.close()


@pytest.fixture
async def topic_prefix(
    crm_servers: Servers, unique_name: Callable[[str], str]
) -> AsyncIterator[str]:
    """A topic-name prefix of this test's own (a deployment's ``CRM_TOPIC_PREFIX``), its
    topics granted as the ACL table says: every topic whose name starts with it, and its
    ACLs, are deleted after the test."""
    prefix = unique_name("tp") + "."
    acls = [a for a in acl_table(TopicNames(prefix), TEST_GROUPS) if a.resource is Resource.TOPIC]
    await _granting(crm_servers.kafka_bootstrap, acls, grant=True)
    yield prefix
    await _granting(crm_servers.kafka_bootstrap, acls, grant=False)
    admin = AIOKafkaAdminClient(bootstrap_servers=crm_servers.kafka_bootstrap, **kafka_login(ADMIN))
    await admin.start()
    try:
        ours = [topic for topic in await admin.list_topics() if topic.startswith(prefix)]
        if ours:
            await admin.delete_topics(ours)
    finally:
        await admin.close()


@pytest.fixture
async def mongo_database(
    crm_servers: Servers, unique_name: Callable[[str], str]
) -> AsyncIterator[str]:
    """The name of a MongoDB database of this test's own, dropped afterwards."""
    name = unique_name("db")[:60]
    yield name
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(crm_servers.mongo_uri)
    try:
        await client.drop_database(name)
    finally:
        await client.close()


@pytest.fixture
async def database(
    crm_servers: Servers, mongo_database: str
) -> AsyncIterator[AsyncDatabase[dict[str, Any]]]:
    """This test's own MongoDB database (:func:`mongo_database`), through a client of its own."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(crm_servers.mongo_uri)
    yield client[mongo_database]
    await client.close()


@pytest.fixture
def postgres_database(crm_servers: Servers, unique_name: Callable[[str], str]) -> Iterator[str]:
    """A DSN to a fresh PostgreSQL database of this test's own, dropped afterwards."""
    name = unique_name("pg")[:60]
    with psycopg.connect(crm_servers.postgres_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield credentials.postgres_dsn(crm_servers.postgres_dsn, None, name)
    with psycopg.connect(crm_servers.postgres_dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass(frozen=True)
class NamespaceAccounts:
    """A namespace of a test's own in which every service, and ``ops``, has its own
    MongoDB user and PostgreSQL role (``local_infra.accounts``), as in a deployment."""

    namespace: str
    passwords: dict[str, SecretStr]

    def settings(self, process: str) -> dict[str, Any]:
        """What a process's settings need to connect as its own user: its namespace
        and its passwords (the same on both servers)."""
        password = self.passwords[process]
        return {
            "namespace": self.namespace,
            "mongo_password": password,
            "postgres_password": password,
        }


@pytest.fixture
def namespace_accounts(crm_servers: Servers) -> Iterator[NamespaceAccounts]:
    """A namespace whose processes have their own users, removed afterwards with their
    databases."""
    namespace = f"t_{uuid.uuid4().hex[:10]}"
    admin: MongoClient[dict[str, Any]] = MongoClient(crm_servers.mongo_uri)
    passwords = {p: SecretStr(uuid.uuid4().hex) for p in (*SERVICES, credentials.OPS)}
    provision_mongo(admin, namespace, passwords)
    provision_postgres(crm_servers.postgres_dsn, namespace, passwords)
    try:
        yield NamespaceAccounts(namespace, passwords)
    finally:
        drop_mongo_users(admin, namespace)
        for name in admin.list_database_names():
            if name.startswith(f"{namespace}_"):
                admin.drop_database(name)
        admin.close()
        drop_postgres_accounts(crm_servers.postgres_dsn, namespace)
