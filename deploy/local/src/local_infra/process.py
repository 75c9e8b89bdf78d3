"""Detached server processes owned through PID files.

A PID is only trusted while ``/proc/<pid>/cmdline`` still names the instance's own
state folder, so a stale PID file never makes us signal somebody else's process.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


class InfraError(RuntimeError):
    """A server could not be started, reached or stopped; the message says why."""


def log_tail(path: Path, lines: int = 25) -> str:
    if not path.exists():
        return f"(no log at {path})"
    text = path.read_text(errors="replace").splitlines()
    return "\n".join(text[-lines:])


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def cmdline_of(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace")


@dataclass(frozen=True)
class PidFile:
    """A PID file plus the marker that must appear in the process's command line."""

    path: Path
    marker: str

    def read(self) -> int | None:
        """The live PID this file names, or None when absent, stale or not ours."""
        try:
            pid = int(self.path.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        if self.marker not in cmdline_of(pid):
            return None
        return pid

    def write(self, pid: int) -> None:
        self.path.write_text(f"{pid}\n")


def wait_until(
    ready: Callable[[], bool],
    *,
    timeout: float,
    alive: Callable[[], bool],
    what: str,
    log: Path,
) -> float:
    """Poll ``ready`` until it holds; fail fast with the log's tail if the process dies."""
    started = time.monotonic()
    deadline = started + timeout
    while time.monotonic() < deadline:
        if ready():
            return time.monotonic() - started
        if not alive():
            raise InfraError(
                f"{what} exited during start-up. Last lines of {log}:\n{log_tail(log)}"
            )
        time.sleep(0.2)
    raise InfraError(
        f"{what} not ready after {timeout:.0f}s. Last lines of {log}:\n{log_tail(log)}"
    )


def terminate(pid: int, *, sig: signal.Signals = signal.SIGTERM, grace: float = 30.0) -> None:
    """Send ``sig``, wait for the process to go, SIGKILL it after ``grace`` seconds."""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not _exists(pid):
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
    while _exists(pid):
        time.sleep(0.05)


def _exists(pid: int) -> bool:
    try:
        # Reap it when it is our child, so it does not linger as a zombie.
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = Path(f"/proc/{pid}/stat")
    try:
        return state.read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False
