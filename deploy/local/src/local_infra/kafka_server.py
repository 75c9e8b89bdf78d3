"""Genuine Apache Kafka in KRaft mode: one combined broker and controller.

Clients log in with SCRAM-SHA-512 (SASL_PLAINTEXT on 127.0.0.1) and the standard
authorizer allows only what ``crm_backbone.kafka_acls`` grants; ``crm-admin`` is its only
super user. The admin's credential is written when the storage is formatted, every other
principal's credential and the ACLs of the deployment (namespace ``crm``, no topic prefix)
at every start. Passwords live in the profile's secrets folder (``kafka/<principal>``).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from crm_backbone.kafka_acls import ADMIN, PRINCIPALS, acl_table
from crm_backbone.kafka_grants import SCRAM_MECHANISM, grant
from crm_backbone.settings import KAFKA
from crm_backbone.topic_names import CONTRACT_NAMES

from local_infra.accounts import NAMESPACE, LocalSecrets
from local_infra.paths import CACHE_DIR, KAFKA_POM
from local_infra.process import InfraError, port_is_free
from local_infra.servers import Server, _require


class KafkaServer(Server):
    """Apache Kafka, one combined broker+controller in KRaft mode."""

    name = "kafka"

    def __init__(self, state_dir: Path, port: int, controller_port: int) -> None:
        super().__init__(state_dir, port)
        self.controller_port = controller_port
        self.kafka_version = kafka_version()
        self.libs = CACHE_DIR / f"kafka-{self.kafka_version}" / "libs"
        self.config = self.home / "server.properties"
        self.log4j_config = self.home / "log4j2.properties"
        self.secrets = LocalSecrets(state_dir)
        self.formatted_for = self.home / "data-admin.sha256"
        """The admin password's digest the storage was formatted with."""

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def version(self) -> str:
        return f"Apache Kafka {self.kafka_version}"

    def prepare(self) -> None:
        fetch_kafka_jars(self.libs)
        self.home.mkdir(parents=True, exist_ok=True)
        self.config.touch(mode=0o600)
        self.config.chmod(0o600)  # before it holds the admin's password
        self.config.write_text(self._server_properties())
        self.log4j_config.write_text(_LOG4J2)
        admin_digest = hashlib.sha256(self._admin_password.encode()).hexdigest()
        formatted = (self.data_dir / "meta.properties").exists()
        if formatted and not self._formatted_with(admin_digest):
            # An earlier layout (no authentication) or a lost secrets folder: nobody could
            # log in to this storage, so a local profile starts it afresh.
            shutil.rmtree(self.data_dir)
            formatted = False
        if not formatted:
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            self._java(
                "kafka.tools.StorageTool",
                "format",
                "--standalone",
                "-t",
                cluster_id,
                "-c",
                str(self.config),
                "--add-scram",
                f"{SCRAM_MECHANISM}=[name={ADMIN},password={self._admin_password}]",
            )
            self.formatted_for.write_text(admin_digest)

    def _formatted_with(self, admin_digest: str) -> bool:
        return self.formatted_for.is_file() and self.formatted_for.read_text() == admin_digest

    @property
    def _admin_password(self) -> str:
        return self.secrets.password(KAFKA, ADMIN).get_secret_value()

    def login(self, principal: str) -> dict[str, Any]:
        """The client options of ``principal`` on this broker."""
        return {
            "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": SCRAM_MECHANISM,
            "sasl_plain_username": principal,
            "sasl_plain_password": self.secrets.password(KAFKA, principal).get_secret_value(),
        }

    def after_start(self) -> None:
        """Every principal's credential, and the ACLs of the deployment ``crm``."""
        asyncio.run(self._grant())

    async def _grant(self) -> None:
        passwords = {p: self.secrets.password(KAFKA, p) for p in PRINCIPALS if p != ADMIN}
        acls = acl_table(CONTRACT_NAMES, NAMESPACE)
        await grant(self.address, self.login(ADMIN), passwords, acls)

    def _launch(self) -> None:
        if not port_is_free(self.controller_port):
            raise InfraError(f"kafka: controller port 127.0.0.1:{self.controller_port} is taken")
        process = self._spawn([*self._java_argv(), "kafka.Kafka", str(self.config)], cwd=self.home)
        self.pid_file.write(process.pid)

    def _answers(self) -> bool:
        return not port_is_free(self.port) and asyncio.run(
            kafka_answers(self.address, self.login(ADMIN))
        )

    def _java_argv(self) -> list[str]:
        heap = os.environ.get("CRM_KAFKA_HEAP", "512m")
        return [
            _require("java", "install a JDK 17+ (Debian: openjdk-17-jre-headless)"),
            f"-Xmx{heap}",
            f"-Xms{heap}",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.log4j_config}",
            f"-Dkafka.logs.dir={self.home}",
            "-cp",
            f"{self.libs}/*",
        ]

    def _java(self, *args: str) -> None:
        result = subprocess.run(
            [*self._java_argv(), *args], capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise InfraError(f"kafka: {' '.join(args[:2])} failed:\n{result.stdout}{result.stderr}")

    def _server_properties(self) -> str:
        cport = self.controller_port
        password = self._admin_password
        return f"""\
# Written by deploy/local on every start; edit local_infra/kafka_server.py instead.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:{cport}
listeners=CLIENTS://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{cport}
advertised.listeners=CLIENTS://127.0.0.1:{self.port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=CLIENTS
listener.security.protocol.map=CONTROLLER:SASL_PLAINTEXT,CLIENTS:SASL_PLAINTEXT
sasl.enabled.mechanisms={SCRAM_MECHANISM}
sasl.mechanism.inter.broker.protocol={SCRAM_MECHANISM}
listener.name.clients.scram-sha-512.sasl.jaas.config={_scram_login(ADMIN, password)}
# The controller listener cannot use SCRAM (its credentials live in the metadata it
# serves): PLAIN, whose only user is the admin, so no anonymous principal exists anywhere.
sasl.mechanism.controller.protocol=PLAIN
listener.name.controller.sasl.enabled.mechanisms=PLAIN
listener.name.controller.plain.sasl.jaas.config={_plain_login(ADMIN, password)}
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:{ADMIN}
log.dirs={self.data_dir}
auto.create.topics.enable=false
num.partitions=6
offsets.topic.replication.factor=1
offsets.topic.num.partitions=12
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=6
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
"""


_LOG4J2 = """\
status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.state.name = state.change.logger
logger.state.level = WARN
"""


def _scram_login(user: str, password: str) -> str:
    return (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="{user}" password="{password}";'
    )


def _plain_login(user: str, password: str) -> str:
    return (
        "org.apache.kafka.common.security.plain.PlainLoginModule required "
        f'username="{user}" password="{password}" user_{user}="{password}";'
    )


def kafka_version() -> str:
    match = re.search(r"<kafka.version>([^<]+)</kafka.version>", KAFKA_POM.read_text())
    if match is None:
        raise InfraError(f"no <kafka.version> in {KAFKA_POM}")
    return match.group(1)


def fetch_kafka_jars(libs: Path) -> None:
    """Resolve the broker's runtime jars from Maven Central once; later runs reuse them."""
    done = libs / ".complete"
    if done.exists():
        return
    mvn = _require("mvn", "install Maven (Debian: maven) to fetch Kafka's jars")
    result = subprocess.run(
        [
            mvn,
            "-q",
            "-B",
            "-f",
            str(KAFKA_POM),
            f"-Dmaven.repo.local={CACHE_DIR / 'maven'}",
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={libs}",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise InfraError(f"fetching Kafka jars failed:\n{result.stdout[-3000:]}{result.stderr}")
    done.write_text("ok\n")


async def kafka_answers(bootstrap: str, login: Mapping[str, Any]) -> bool:
    """True when the broker answers a metadata request of the client logged in with
    ``login`` and has a controller."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000, **login)
    try:
        await asyncio.wait_for(admin.start(), timeout=5)
        cluster = await asyncio.wait_for(admin.describe_cluster(), timeout=5)
        return bool(cluster.get("brokers")) and cluster.get("controller_id", -1) >= 0
    except (KafkaError, OSError, TimeoutError):
        return False
    finally:
        await admin.close()
