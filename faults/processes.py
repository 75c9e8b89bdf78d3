"""The suite's child processes (``python -m <module> <config>``): launched, awaited,
signalled, killed and stopped by their own PIDs, their output kept per launch."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from faults.child import READY
from faults.waiting import until

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Child:
    """A child process of the suite (``python -m <module> <config>``), owned by its PID."""

    name: str
    module: str
    config: dict[str, Any]
    logs: Path
    process: subprocess.Popen[bytes] | None = None
    launches: int = 0
    supervised: bool = True
    """Restarted by the supervisor when it exits; off while a planned death is awaited."""

    @property
    def log(self) -> Path:
        return self.logs / f"{self.name}.{self.launches}.log"

    def launch(self) -> None:
        self.launches += 1
        self.logs.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", self.module, json.dumps(self.config)],
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.supervised = True

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    async def wait_ready(self, within: float = 90) -> None:
        async def ready() -> bool:
            if not self.running():
                raise RuntimeError(f"{self.name} exited while starting:\n{self.tail()}")
            return READY in self.log.read_text(errors="replace")

        await until(ready, within=within, what=f"{self.name} ready")

    async def wait_exit(self, within: float) -> int:
        """Wait (bounded) for the process to exit by itself; its return code."""

        async def exited() -> bool:
            return not self.running()

        await until(exited, within=within, what=f"{self.name} exiting", every=0.05)
        assert self.process is not None
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL it now (no clean-up at all), and reap it."""
        if self.process is not None and self.running():
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def signal(self, signum: signal.Signals) -> None:
        assert self.process is not None
        assert self.running(), f"{self.name} is not running"
        os.kill(self.process.pid, signum)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after a grace period; always reaped."""
        self.supervised = False
        process = self.process
        if process is None or process.poll() is not None:
            return
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=30)

    def tail(self, lines: int = 15) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])
