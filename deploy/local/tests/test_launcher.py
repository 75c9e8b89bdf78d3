"""The launcher's own rules, checked without starting the real servers."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from local_infra.infra import PROFILES, Infra, Profile, read_env_file
from local_infra.kafka_server import KafkaServer
from local_infra.postgres_server import PostgresServer
from local_infra.process import InfraError, PidFile, cmdline_of
from local_infra.servers import Server


class ShortLivedServer(Server):
    """A 'server' that prints a line and exits: start-up must fail with that line."""

    name = "shortlived"
    start_timeout = 10.0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def version(self) -> str:
        return "0"

    def _launch(self) -> None:
        process = self._spawn(
            [sys.executable, "-c", f"print('boom: bad config {self.home}'); raise SystemExit(3)"]
        )
        self.pid_file.write(process.pid)

    def _answers(self) -> bool:
        return False


@pytest.fixture
def sleeper(tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", str(tmp_path)])
    while str(tmp_path) not in cmdline_of(process.pid):  # not exec'd yet
        time.sleep(0.01)
    yield process
    process.kill()
    process.wait()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_pid_file_trusts_only_processes_naming_the_instance(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    ours = PidFile(tmp_path / "x.pid", marker=str(tmp_path))
    not_ours = PidFile(tmp_path / "y.pid", marker="/somewhere/else")
    ours.write(sleeper.pid)
    not_ours.write(sleeper.pid)
    assert ours.read() == sleeper.pid
    assert not_ours.read() is None


def test_stale_pid_file_is_ignored(tmp_path: Path) -> None:
    process = subprocess.Popen([sys.executable, "-c", "pass", str(tmp_path)])
    process.wait()
    pid_file = PidFile(tmp_path / "x.pid", marker=str(tmp_path))
    pid_file.write(process.pid)
    assert pid_file.read() is None


def test_stop_never_signals_a_process_it_did_not_start(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    server = ShortLivedServer(tmp_path / "elsewhere", free_port())
    server.home.mkdir(parents=True)
    server.pid_file.path.write_text(f"{sleeper.pid}\n")  # e.g. a recycled PID
    assert server.stop() is False
    assert sleeper.poll() is None


def test_taken_port_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        server = ShortLivedServer(tmp_path, sock.getsockname()[1])
        with pytest.raises(InfraError, match=r"port 127\.0\.0\.1:\d+ is taken"):
            server.launch()


def test_failed_start_reports_the_log_tail(tmp_path: Path) -> None:
    server = ShortLivedServer(tmp_path, free_port())
    assert server.launch() is True
    with pytest.raises(InfraError, match="exited during start-up") as error:
        server.wait_ready()
    assert "boom: bad config" in str(error.value)


def test_kafka_config_is_loopback_only_without_auto_created_topics(tmp_path: Path) -> None:
    kafka = KafkaServer(tmp_path, 19092, 19093)
    properties = kafka._server_properties()
    assert "auto.create.topics.enable=false" in properties
    listeners = [line for line in properties.splitlines() if "listeners=" in line]
    assert listeners
    assert all("://127.0.0.1:" in line for line in listeners)
    assert kafka.kafka_version.startswith("4.")


def test_env_file_round_trips_every_address(tmp_path: Path) -> None:
    infra = Infra(Profile(tmp_path, 1, 2, 3, 4, 5))
    infra.write_env_file()
    assert read_env_file(infra.env_file) == infra.env()
    assert set(infra.env()) == {
        "CRM_KAFKA_BOOTSTRAP",
        "CRM_MONGO_URI",
        "CRM_POSTGRES_DSN",
        "CRM_OIDC_ISSUER",
        "CRM_SECRETS_DIR",
    }
    assert infra.env()["CRM_OIDC_ISSUER"] == "http://127.0.0.1:5/realms/crm"
    assert "@" not in infra.env_file.read_text(), "passwords stay in the secrets folder"


def test_a_profile_without_identity_neither_runs_nor_names_keycloak(tmp_path: Path) -> None:
    infra = Infra(Profile(tmp_path, 1, 2, 3, 4, 5, identity=False))
    assert [server.name for server in infra.servers] == ["kafka", "mongod", "postgres"]
    assert "CRM_OIDC_ISSUER" not in infra.env()
    assert not PROFILES["faults"].identity, "the fault suite calls no API"


def test_profiles_do_not_share_ports_or_state() -> None:
    profiles = list(PROFILES.values())
    assert len({profile.state_dir for profile in profiles}) == len(profiles)
    ports = [port for profile in profiles for port in _ports(profile)]
    assert len(set(ports)) == len(ports)
    # below the kernel's ephemeral range, so no client socket ever takes one
    assert max(ports) < 32768
    assert all(os.path.isabs(profile.state_dir) for profile in profiles)


def _ports(profile: Profile) -> list[int]:
    return [
        profile.kafka_port,
        profile.kafka_controller_port,
        profile.mongo_port,
        profile.postgres_port,
        profile.keycloak_port,
    ]


@pytest.mark.skipif(os.geteuid() != 0, reason="as another user PostgreSQL runs as that user")
def test_postgres_starts_as_root_from_a_folder_only_root_may_enter(tmp_path: Path) -> None:
    """Root's home, or any ``mktemp -d``: the ``postgres`` user cannot enter it."""
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    server = PostgresServer(closed / "clone" / "var" / "infra", free_port())
    server.prepare()
    try:
        assert server.launch()
        server.wait_ready()
        assert server.status().version.startswith("PostgreSQL")
        again = PostgresServer(closed / "clone" / "var" / "infra", server.port)
        assert again.pid() == server.pid()
        assert again.stop()
        assert server.pid() is None
    finally:
        server.stop(hard=True)
        if server.cluster_home != server.home:
            shutil.rmtree(server.cluster_home)
