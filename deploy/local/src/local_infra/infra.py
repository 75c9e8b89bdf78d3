"""The set of servers a profile runs, brought up and down together, and its env file."""

from __future__ import annotations

import time
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from local_infra.kafka_server import KafkaServer
from local_infra.keycloak_server import KeycloakServer
from local_infra.mongo_server import MongoServer
from local_infra.paths import PROJECT_ROOT
from local_infra.postgres_server import PostgresServer
from local_infra.servers import Server, ServerStatus

ENV_KAFKA = "CRM_KAFKA_BOOTSTRAP"
ENV_MONGO = "CRM_MONGO_URI"
ENV_POSTGRES = "CRM_POSTGRES_DSN"
ENV_OIDC_ISSUER = "CRM_OIDC_ISSUER"
ENV_SECRETS = "CRM_SECRETS_DIR"


@dataclass(frozen=True)
class Profile:
    """Where a set of servers keeps its state, and the loopback ports it uses."""

    state_dir: Path
    kafka_port: int
    kafka_controller_port: int
    mongo_port: int
    postgres_port: int
    keycloak_port: int
    identity: bool = True
    """Whether the profile runs Keycloak (the fault suite calls no API, so it does not)."""


PROFILES = {
    # `make run` / `make infra-up`
    "run": Profile(PROJECT_ROOT / "var" / "infra", 19092, 19093, 27117, 15432, 18180),
    # the test harness, so tests never touch the data of a running system
    "test": Profile(PROJECT_ROOT / "var" / "test-infra", 29092, 29093, 27217, 25432, 28180),
    "faults": Profile(
        PROJECT_ROOT / "var" / "fault-infra", 31092, 31093, 27317, 31432, 31180, identity=False
    ),
}


class Infra:
    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self.kafka = KafkaServer(
            profile.state_dir, profile.kafka_port, profile.kafka_controller_port
        )
        self.mongo = MongoServer(profile.state_dir, profile.mongo_port)
        self.postgres = PostgresServer(profile.state_dir, profile.postgres_port)
        self.keycloak = KeycloakServer(profile.state_dir, profile.keycloak_port)
        self.servers: tuple[Server, ...] = (self.kafka, self.mongo, self.postgres)
        if profile.identity:
            self.servers += (self.keycloak,)
        self.env_file = profile.state_dir / "infra.env"

    def up(self) -> dict[str, float]:
        """Start whatever is not running (in parallel), wait for all; seconds per server."""
        for server in self.servers:
            server.prepare()
        started = [server for server in self.servers if server.launch()]
        timings: dict[str, float] = {}
        try:
            for server in self.servers:
                began = time.monotonic()
                server.wait_ready()
                if server in started:
                    timings[server.name] = time.monotonic() - began
        except Exception:
            for server in started:
                server.stop()
            raise
        self.mongo.secrets.master_keys()  # the key store's, in the secrets folder the env names
        self.write_env_file()
        return timings

    def provision(self, namespace: str) -> None:
        """Accounts on MongoDB and PostgreSQL for the CRM's processes in ``namespace``
        (``up`` makes those of the default namespace, ``crm``)."""
        self.mongo.provision(namespace)
        self.postgres.provision(namespace)

    def down(self, only: Collection[str] | None = None) -> list[str]:
        """Stop exactly the processes this profile started (or those of them named in
        ``only``); names of those stopped."""
        chosen = [s for s in reversed(self.servers) if only is None or s.name in only]
        return [server.name for server in chosen if server.stop()]

    def status(self) -> list[ServerStatus]:
        return [server.status() for server in self.servers]

    def env(self) -> dict[str, str]:
        addresses = {
            ENV_KAFKA: self.kafka.address,
            ENV_MONGO: self.mongo.address,
            ENV_POSTGRES: self.postgres.address,
            ENV_SECRETS: str(self.mongo.secrets.folder.resolve()),
        }
        if self.profile.identity:
            addresses[ENV_OIDC_ISSUER] = self.keycloak.address
        return addresses

    def write_env_file(self) -> None:
        lines = [f"{key}={value}" for key, value in self.env().items()]
        self.env_file.parent.mkdir(parents=True, exist_ok=True)
        self.env_file.write_text(
            "# Written by `crm-infra up`; read by services and tests.\n" + "\n".join(lines) + "\n"
        )


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines; blank lines and comments ignored."""
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            values[key.strip()] = value.strip()
    return values
