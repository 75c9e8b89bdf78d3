"""The base of the launcher's servers: one detached process with its own state folder,
PID file and log, ready only when it answers a real protocol request.

The concrete servers live in ``kafka_server``, ``mongo_server``, ``postgres_server`` and
``keycloak_server``; ``openbao_server`` is the key store tests' (``pytest_plugin.openbao``).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from local_infra.process import (
    InfraError,
    PidFile,
    cmdline_of,
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
        self,
        argv: list[str],
        *,
        cwd: Path | None = None,
        user: str | None = None,
        env: dict[str, str] | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start ``argv`` in a session of its own (so Ctrl-C in a terminal spares it);
        ``env`` replaces the environment when given."""
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
                env=env,
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
