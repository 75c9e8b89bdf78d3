"""Pytest plugin: the servers of trust for integration tests, Keycloak and OpenBao.

The identity provider (:func:`oidc_issuer`, :func:`identity_provider` with the realm's
secrets) is found as the other servers are (``local_infra.pytest_plugin``):
``CRM_OIDC_ISSUER`` (its secrets in ``CRM_SECRETS_DIR``) first, else the launcher's
(profile ``test``), else a container. OpenBao (:func:`openbao`, the key store's tests)
comes from ``CRM_OPENBAO_ADDR`` and ``CRM_OPENBAO_TOKEN``, else the session starts one
of its own.
"""

from __future__ import annotations

import os
import shutil
import socket
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydantic import SecretStr

from local_infra.accounts import LocalSecrets
from local_infra.infra import ENV_OIDC_ISSUER, ENV_SECRETS, PROFILES, Infra
from local_infra.keycloak_server import KEYCLOAK_VERSION, REALM, admin_password, with_secrets
from local_infra.openbao_server import TRANSIT_MOUNT, OpenBaoServer
from local_infra.paths import KEYCLOAK_REALM_FILE, PROJECT_ROOT
from local_infra.process import InfraError
from local_infra.pytest_plugin import docker_answers


@dataclass(frozen=True)
class IdentityProvider:
    """A genuine Keycloak holding the realm of ``deploy/keycloak/``, and its secrets."""

    issuer: str
    secrets: LocalSecrets


def _keycloak_container(stack: ExitStack, state: Path) -> IdentityProvider:
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.waiting_utils import wait_for_logs

    secrets = LocalSecrets(state)
    realm = state / KEYCLOAK_REALM_FILE.name
    realm.touch(mode=0o600)
    realm.write_bytes(with_secrets(KEYCLOAK_REALM_FILE.read_bytes(), secrets))
    keycloak = stack.enter_context(
        DockerContainer(f"quay.io/keycloak/keycloak:{KEYCLOAK_VERSION}")
        .with_volume_mapping(str(realm), f"/opt/keycloak/data/import/{realm.name}")
        .with_command("start-dev --import-realm")
        .with_env("KC_BOOTSTRAP_ADMIN_USERNAME", "admin")
        .with_env("KC_BOOTSTRAP_ADMIN_PASSWORD", admin_password(secrets).get_secret_value())
        .with_exposed_ports(8080)
    )
    wait_for_logs(keycloak, "Listening on", timeout=300)
    host, port = keycloak.get_container_host_ip(), keycloak.get_exposed_port(8080)
    return IdentityProvider(f"http://{host}:{port}/realms/{REALM}", secrets)


GIVEN_SECRETS = pytest.StashKey[str | None]()
"""``CRM_SECRETS_DIR`` as the session began (``crm_servers`` takes it from the environment
for the session: a test's processes connect as the harness tells them)."""


def pytest_configure(config: pytest.Config) -> None:
    config.stash[GIVEN_SECRETS] = os.environ.get(ENV_SECRETS)


@pytest.fixture(scope="session")
def identity_provider(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[IdentityProvider]:
    """A genuine Keycloak: the one ``CRM_OIDC_ISSUER`` names (its secrets in
    ``CRM_SECRETS_DIR``), else the launcher's (profile ``test``), else a container."""
    if given := os.environ.get(ENV_OIDC_ISSUER):
        folder = request.config.stash[GIVEN_SECRETS]
        if not folder:
            raise pytest.UsageError(f"{ENV_OIDC_ISSUER} needs {ENV_SECRETS}: the realm's secrets")
        yield IdentityProvider(given, LocalSecrets.in_folder(Path(folder)))
        return
    keycloak = Infra(PROFILES["test"]).keycloak
    started = False
    launcher_error: InfraError | None = None
    try:
        keycloak.prepare()
        started = keycloak.launch()
        keycloak.wait_ready()
    except InfraError as error:
        launcher_error = error
    if launcher_error is None:
        try:
            yield IdentityProvider(keycloak.address, keycloak.secrets)
        finally:
            if started:
                keycloak.stop()
        return
    if started:
        keycloak.stop()
    if docker_answers():
        with ExitStack() as stack:
            yield _keycloak_container(stack, tmp_path_factory.mktemp("keycloak"))
        return
    pytest.fail(
        f"No identity provider for the integration tests. The project's launcher failed:\n"
        f"{launcher_error}\nEither fix that (`make setup` installs Java 21 and Maven), set "
        f"{ENV_OIDC_ISSUER} (and {ENV_SECRETS}) to a Keycloak issuer holding deploy/keycloak's "
        "realm, or run with a Docker engine for testcontainers.",
        pytrace=False,
    )


@pytest.fixture(scope="session")
def oidc_issuer(identity_provider: IdentityProvider) -> str:
    """The issuer of a genuine Keycloak holding the realm of ``deploy/keycloak/``."""
    return identity_provider.issuer


ENV_OPENBAO_ADDR = "CRM_OPENBAO_ADDR"
ENV_OPENBAO_TOKEN = "CRM_OPENBAO_TOKEN"


@dataclass(frozen=True)
class OpenBao:
    """A genuine OpenBao with the transit engine mounted at ``transit_mount``."""

    address: str
    token: SecretStr
    """A token that may manage transit keys (the dev server's root token)."""
    transit_mount: str = TRANSIT_MOUNT


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def openbao() -> Iterator[OpenBao]:
    """OpenBao at ``CRM_OPENBAO_ADDR`` (its token in ``CRM_OPENBAO_TOKEN``), else a dev
    server of this session's own (``local_infra.openbao_server``): a free port on
    127.0.0.1, its state in ``var/openbao/<session>``, stopped by its PID and removed at
    the end of the session."""
    if address := os.environ.get(ENV_OPENBAO_ADDR):
        if not (token := os.environ.get(ENV_OPENBAO_TOKEN)):
            raise pytest.UsageError(f"{ENV_OPENBAO_ADDR} is set: set {ENV_OPENBAO_TOKEN} too")
        yield OpenBao(address, SecretStr(token))
        return
    state_dir = PROJECT_ROOT / "var" / "openbao" / uuid.uuid4().hex[:8]
    server = OpenBaoServer(state_dir, _free_port())
    try:
        server.prepare()
        server.launch()
        server.wait_ready()
    except InfraError as error:
        server.stop()
        pytest.fail(f"OpenBao for the key store's tests did not start:\n{error}", pytrace=False)
    try:
        yield OpenBao(server.address, SecretStr(server.token))
    finally:
        server.stop()
        shutil.rmtree(state_dir, ignore_errors=True)
