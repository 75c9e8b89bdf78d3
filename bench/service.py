"""The customer service's processes (its API, its worker), each started, watched (RSS),
stopped by PID."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Literal

import psutil

from bench.common import ROOT, Names, Servers
from bench.http_client import Connection

MB = 1024 * 1024


class ServiceProcess:
    """One ``crm-customer serve --no-workers`` or ``work`` process
    (``bench/serve_customer.py``), and its memory."""

    def __init__(
        self, process: asyncio.subprocess.Process, url: str, log: Path, gc_log: Path
    ) -> None:
        self.process = process
        self.pid = process.pid
        self.url = url
        self.log = log
        self.gc_log = gc_log
        self.peak_rss = 0
        self._watched = psutil.Process(process.pid)

    def rss(self) -> int:
        rss = int(self._watched.memory_info().rss)
        self.peak_rss = max(self.peak_rss, rss)
        return rss

    async def sample(self, every: float = 0.2) -> None:
        """Keep ``peak_rss`` current until cancelled."""
        with contextlib.suppress(psutil.NoSuchProcess):
            while True:
                self.rss()
                await asyncio.sleep(every)

    def full_collections(self, since: float, until: float) -> list[float]:
        """Pauses (ms) of the full garbage collections that ended in that (monotonic) span."""
        if not self.gc_log.exists():
            return []
        pauses = []
        for line in self.gc_log.read_text().splitlines():
            ended, pause = (float(field) for field in line.split())
            if since <= ended <= until:
                pauses.append(pause)
        return pauses

    def tail(self, lines: int = 20) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.asynccontextmanager
async def customer_process(
    found: Servers,
    names: Names,
    data_dir: Path,
    *,
    role: Literal["api", "worker"],
    log: Path,
    tokens: Literal["validated", "unchecked"] = "validated",
) -> AsyncIterator[ServiceProcess]:
    """The customer service's API (``serve --no-workers``) or its worker (``work``: relay
    and consumers) on a free port, with the run's namespace, data folder and topics;
    stopped on the way out. Its API validates tokens against the identity provider, or
    with ``tokens="unchecked"`` takes them unchecked (``bench/unchecked_tokens.py``)."""
    port = _free_port()
    gc_log = log.with_name(f"{log.stem}-{port}.gc")
    env = os.environ | {
        "CRM_KAFKA_BOOTSTRAP": found.kafka.bootstrap,
        "CRM_MONGO_URI": found.mongo,
        "CRM_DATA_DIR": str(data_dir),
        "CRM_NAMESPACE": names.namespace,
        "CRM_TOPIC_PREFIX": names.service_topics.prefix,
        "CRM_OIDC_ISSUER": found.oidc_issuer,
        "BENCH_GC_LOG": str(gc_log),
        "BENCH_TOKENS": tokens,
    }
    if found.secrets_dir is not None:
        env["CRM_SECRETS_DIR"] = str(found.secrets_dir)
    command = ["serve", "--no-workers"] if role == "api" else ["work"]
    with log.open("ab") as out:
        process = await asyncio.create_subprocess_exec(
            *[sys.executable, "-m", "bench.serve_customer", *command, "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
        )
    service = ServiceProcess(process, f"http://127.0.0.1:{port}", log, gc_log)
    sampler: asyncio.Task[None] | None = None
    try:
        await _wait_ready(service)
        sampler = asyncio.create_task(service.sample())
        yield service
    finally:
        if sampler is not None:
            sampler.cancel()
        await _stop(process)
        gc_log.unlink(missing_ok=True)


async def _wait_ready(service: ServiceProcess, within: float = 60) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if service.process.returncode is not None:
            raise RuntimeError(f"the customer service exited:\n{service.tail()}")
        connection = Connection.to(service.url)
        try:
            with contextlib.suppress(OSError):
                if (await connection.request("GET", "/healthz"))[0] == 200:
                    return
        finally:
            connection.close()
        await asyncio.sleep(0.1)
    raise TimeoutError(f"the customer service did not answer within {within:g} s")


async def _stop(process: asyncio.subprocess.Process, grace: float = 15) -> None:
    """SIGTERM to that PID (uvicorn shuts down, a worker's lifespan stops it), then
    SIGKILL if it is still there after ``grace`` seconds."""
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(process.pid, signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), grace)
    except TimeoutError:
        os.kill(process.pid, signal.SIGKILL)
        await process.wait()
