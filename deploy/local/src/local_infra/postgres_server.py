"""PostgreSQL with its cluster in the project's state folder (or the postgres user's home)."""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import signal
import subprocess
from pathlib import Path

import psycopg
from crm_backbone.credentials import OPS, POSTGRESQL, Account, postgres_dsn
from pydantic import SecretStr

from local_infra.accounts import (
    NAMESPACE,
    POSTGRES_ADMIN,
    SERVICES,
    LocalSecrets,
    provision_postgres,
)
from local_infra.process import InfraError, PidFile
from local_infra.servers import Server


class PostgresServer(Server):
    """PostgreSQL from Debian's package with its cluster in the project's state folder.

    PostgreSQL refuses to run as root, so as root it runs as the ``postgres`` user, who
    must be able to enter the state folder. When it cannot (a clone inside a folder only
    root may enter: root's home, any ``mktemp -d``), the cluster lives in the ``postgres``
    user's own home instead, in a folder named after this state folder
    (``~postgres/crm-local/<state folder>-<hash of its path>``, mode 700), decided at the
    first start; the PID file and the log stay in the state folder, and its ``cluster``
    file names the cluster's folder.

    Each service has a role of its own owning its database (``local_infra.accounts``),
    ``crm-ops`` one that reads the key database, created at every start with the passwords
    of the profile's secrets folder.
    """

    name = "postgres"
    stop_signal = signal.SIGINT  # "fast" shutdown
    user = POSTGRES_ADMIN  # the OS user it runs as when we are root, and its superuser

    def __init__(self, state_dir: Path, port: int) -> None:
        super().__init__(state_dir, port)
        self.pointer = self.home / "cluster"
        self._locate(Path(self.pointer.read_text().strip()) if self.pointer.exists() else self.home)
        self.secrets = LocalSecrets(state_dir)

    @property
    def address(self) -> str:
        """The server's address, without credentials (each process adds its own)."""
        return f"postgresql://127.0.0.1:{self.port}/postgres"

    @property
    def admin_dsn(self) -> str:
        """The superuser's DSN (loopback only: host connections need a password,
        scram-sha-256): the launcher's and the test harness's only."""
        return postgres_dsn(self.address, Account(self.user, self._admin_password()))

    def _admin_password(self) -> SecretStr:
        return self.secrets.password(POSTGRESQL, self.user)

    def version(self) -> str:
        with psycopg.connect(self.admin_dsn, connect_timeout=3) as conn:
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
        password_file.write_text(self._admin_password().get_secret_value())
        self._own(password_file)
        result = subprocess.run(
            [
                str(postgres_bindir() / "initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                self.user,
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                f"--pwfile={password_file}",
                "-E",
                "UTF8",
                "--no-instructions",
            ],
            capture_output=True,
            text=True,
            check=False,
            cwd=self.cluster_home,
            user=self._run_as(),
            group=self._run_as(),
        )
        password_file.unlink()
        if result.returncode != 0:
            raise InfraError(f"initdb failed:\n{result.stdout}{result.stderr}")

    def _launch(self) -> None:
        process = self._spawn(
            [
                str(postgres_bindir() / "postgres"),
                "-D",
                str(self.data_dir),
                "-c",
                "listen_addresses=127.0.0.1",
                "-p",
                str(self.port),
                "-c",
                f"unix_socket_directories={self.cluster_home}",
                "-c",
                "max_connections=200",
            ],
            cwd=self.cluster_home,
            user=self._run_as(),
        )
        self.pid_file.write(process.pid)

    def _answers(self) -> bool:
        try:
            with psycopg.connect(self.admin_dsn, connect_timeout=2) as conn:
                conn.execute("SELECT 1")
        except psycopg.OperationalError:
            return False
        return True

    def after_start(self) -> None:
        self.provision(NAMESPACE)

    def provision(self, namespace: str) -> None:
        """Each service's role and database in ``namespace``, the roles' passwords in the
        secrets folder (created, or brought up to date)."""
        passwords = self.secrets.passwords(POSTGRESQL, (*SERVICES, OPS), namespace)
        provision_postgres(self.admin_dsn, namespace, passwords)

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
