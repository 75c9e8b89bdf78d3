"""``crm-run``: the whole system on one machine, supervised, until Ctrl-C.

Starts the infrastructure (profile ``run``), every built service as two processes (its
API, ``serve --no-workers``, and its relay and consumers, ``work``), the simulated
core-banking feed and the scripted day of relationship-manager work; restarts a process
that crashes, with a growing delay (and logs it); prints the URLs and, every few
seconds, one status line. Ctrl-C stops the children and the servers
it started; the next run resumes on the same data (``var/``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Annotated

import httpx
import typer

from local_infra.accounts import NAMESPACE
from local_infra.infra import PROFILES, Infra
from local_infra.paths import PROJECT_ROOT

WORKER_PORT_OFFSET = 100
"""A service's worker process answers on its API's port plus this (as ``work`` defaults)."""


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    script: str
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def worker_url(self) -> str:
        return f"http://127.0.0.1:{self.port + WORKER_PORT_OFFSET}"

    def processes(self, bin_dir: Path, logs: Path, env: dict[str, str]) -> list[Child]:
        """The API and the worker (relay and consumers), each a process of its own."""
        script = str(bin_dir / self.script)
        worker_port = str(self.port + WORKER_PORT_OFFSET)
        return [
            Child(
                f"{self.name} API",
                [script, "serve", "--no-workers", "--port", str(self.port)],
                logs / f"{self.name}.log",
                env,
            ),
            Child(
                f"{self.name} worker",
                [script, "work", "--port", worker_port],
                logs / f"{self.name}-worker.log",
                env,
            ),
        ]


SERVICES = (
    ServiceSpec("customer", "crm-customer", 8101),
    ServiceSpec("opportunity", "crm-opportunity", 8102),
    ServiceSpec("campaign", "crm-campaign", 8103),
    ServiceSpec("contact-log", "crm-contactlog", 8104),
)


@dataclass
class Child:
    """A supervised child process: restarted with a growing delay when it crashes."""

    name: str
    argv: list[str]
    log_path: Path
    env: dict[str, str]
    restart: bool = True
    process: asyncio.subprocess.Process | None = None
    restarts: int = 0
    started_at: float = 0.0
    _log: IO[bytes] | None = field(default=None, repr=False)

    async def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        if self._log is not None:  # a restart: the same log goes on
            self._log.close()
        self._log = self.log_path.open("ab")
        self.process = await asyncio.create_subprocess_exec(
            *self.argv,
            stdout=self._log,
            stderr=asyncio.subprocess.STDOUT,
            env=self.env,
            start_new_session=True,
        )
        self.started_at = time.monotonic()

    async def supervise(self) -> None:
        """Wait for the child; restart it if it dies while it should be running."""
        while True:
            assert self.process is not None
            code = await self.process.wait()
            if not self.restart:
                return
            self.restarts += 1
            crashed_early = time.monotonic() - self.started_at < 30
            delay = min(2**self.restarts, 30) if crashed_early else 1
            _say(f"! {self.name} exited with code {code}; restart in {delay}s ({self.log_path})")
            await asyncio.sleep(delay)
            await self.start()

    async def stop(self, grace: float = 10.0) -> None:
        self.restart = False
        process = self.process
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), grace)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                await process.wait()
        if self._log is not None:
            self._log.close()


def _say(line: str) -> None:
    print(line, flush=True)


async def _wait_ready(client: httpx.AsyncClient, url: str, within: float = 120) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if (await client.get(f"{url}/readyz")).status_code == 200:
                return True
        await asyncio.sleep(0.5)
    return False


async def _not_ready(client: httpx.AsyncClient, url: str) -> str | None:
    """Why the process at ``url`` is not ready (its failing checks), or None."""
    answer = await client.get(f"{url}/readyz")
    if answer.status_code == 200:
        return None
    checks = answer.json().get("checks", {})
    return "; ".join(f"{name}: {why}" for name, why in checks.items() if why != "ok")


async def _status_line(
    client: httpx.AsyncClient, services: Sequence[ServiceSpec], last: dict[str, float]
) -> str:
    """``name: ready 123 ev/s applied=... published=... lag=...`` per service, from its
    API's and its worker's /readyz and the worker's /metrics."""
    parts = []
    now = time.monotonic()
    for spec in services:
        problems = []
        for process, url in (("API", spec.url), ("worker", spec.worker_url)):
            try:
                if why := await _not_ready(client, url):
                    problems.append(f"{process} NOT READY ({why})")
            except (httpx.HTTPError, ValueError):
                problems.append(f"{process} down")
        try:
            metrics = (await client.get(f"{spec.worker_url}/metrics")).text
        except httpx.HTTPError:
            metrics = ""
        applied = _metric_sum(metrics, "crm_projection_events_total", 'outcome="applied"')
        lag = _metric_sum(metrics, "crm_consumer_lag")
        published = _metric_sum(metrics, "crm_relay_published_events_total")
        before, at = last.get(spec.name, applied), last.get(f"{spec.name}@", now)
        rate = (applied - before) / (now - at) if now > at else 0.0
        last[spec.name], last[f"{spec.name}@"] = applied, now
        state = ", ".join(problems) or "ready"
        parts.append(
            f"{spec.name}: {state} {rate:,.0f} ev/s applied={applied:,.0f} "
            f"published={published:,.0f} lag={lag:,.0f}"
        )
    return time.strftime("%H:%M:%S ") + " | ".join(parts)


def _metric_sum(text: str, name: str, having: str = "") -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#") and having in line:
            with contextlib.suppress(ValueError):
                total += float(line.rsplit(" ", 1)[1])
    return total


async def run_system(
    seed: int, customers: int, rate: float, status_every: float, profile: str, base_port: int
) -> None:
    infra = Infra(PROFILES[profile])
    _say("starting Kafka, MongoDB, PostgreSQL and Keycloak ...")
    started = await asyncio.to_thread(infra.up)
    servers = infra.env()
    _say(f"{'identity':<12} ready  Keycloak {infra.keycloak.address}: every API call needs a token")
    defaults = {"CRM_LOG_FORMAT": "json", "CRM_DATA_DIR": str(PROJECT_ROOT / "var" / "services")}
    env = defaults | dict(os.environ) | servers | {"PYTHONUNBUFFERED": "1"}
    await asyncio.to_thread(infra.provision, env.get("CRM_NAMESPACE", NAMESPACE))
    logs = PROJECT_ROOT / "var" / "run" / "logs"
    bin_dir = Path(sys.executable).parent
    services = [
        ServiceSpec(s.name, s.script, s.port - SERVICES[0].port + base_port)
        for s in SERVICES
        if (bin_dir / s.script).exists() or shutil.which(s.script)
    ]
    children = [child for s in services for child in s.processes(bin_dir, logs, env)]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    supervisors: list[asyncio.Task[None]] = []
    try:
        for child in children:
            await child.start()
            supervisors.append(asyncio.create_task(child.supervise()))
        async with httpx.AsyncClient(timeout=5) as client:
            for spec in services:
                ready = await _wait_ready(client, spec.url)
                _say(
                    f"{spec.name:<12} {'ready' if ready else 'NOT READY'}  API {spec.url}/docs  "
                    f"AsyncAPI {spec.url}/asyncapi.json  metrics {spec.url}/metrics"
                )
                worker = spec.worker_url
                ready = await _wait_ready(client, worker)
                _say(
                    f"{spec.name + ' worker':<19} {'ready' if ready else 'NOT READY'}  relay and "
                    f"consumers: {worker}/readyz  metrics {worker}/metrics"
                )
            simulator = [str(bin_dir / "crm-simulate")]
            feed = Child(
                "core-banking feed",
                [
                    *simulator,
                    "feed",
                    "--seed",
                    str(seed),
                    "--customers",
                    str(customers),
                    "--rate",
                    str(rate),
                    "--create-topics",
                ],
                logs / "core-banking-feed.log",
                env,
            )
            day = Child(
                "scripted day",
                [
                    *simulator,
                    "day",
                    "--seed",
                    str(seed),
                    "--customers",
                    str(customers),
                    *(f"--service={s.name}={s.url}" for s in services),
                ],
                logs / "scripted-day.log",
                env,
                restart=False,
            )
            for child in (feed, day):
                await child.start()
                children.append(child)
                supervisors.append(asyncio.create_task(child.supervise()))
            _say(
                f"simulated bank: {customers} customers, seed {seed}, {rate:g} events/s; "
                f"logs in {logs}. Ctrl-C stops everything."
            )
            if services:
                _say(how_to_call(services[0], profile))
            last: dict[str, float] = {}
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), status_every)
                if not stop.is_set():
                    _say(await _status_line(client, services, last))
    finally:
        _say("stopping ...")
        for task in supervisors:
            task.cancel()
        await asyncio.gather(*(child.stop() for child in reversed(children)))
        stopped = await asyncio.to_thread(infra.down, started)
        kept = [s.name for s in infra.servers if s.name not in stopped]
        note = f" ({', '.join(kept)} left running: up before this run)" if kept else ""
        _say(f"stopped: no process left running; data kept in var/ for the next run{note}")


def how_to_call(service: ServiceSpec, profile: str, user: str = "rm-0001") -> str:
    """How to call an API as a demo user of the local realm (README: "Identity: Keycloak")."""
    option = "" if profile == "run" else f" --profile {profile}"
    return (
        f'call an API as {user} (the other demo users: README, "Identity: Keycloak"):\n'
        f"  TOKEN=$(.venv/bin/crm-infra token {user}{option})\n"
        f'  curl -H "Authorization: Bearer $TOKEN" {service.url}/customers'
    )


cli = typer.Typer(add_completion=False)


@cli.command()
def main(
    seed: Annotated[int, typer.Option(help="Seed of the simulated bank")] = 42,
    customers: Annotated[int, typer.Option(help="Customers in the simulated bank")] = 200,
    rate: Annotated[float, typer.Option(help="Core-banking events per second")] = 20,
    status_every: Annotated[float, typer.Option(help="Seconds between status lines")] = 5,
    profile: Annotated[str, typer.Option(help="Servers' profile: run, or test")] = "run",
    base_port: Annotated[int, typer.Option(help="Port of the first service's API")] = 8101,
) -> None:
    """Run the whole system (infrastructure, services, simulated bank) until Ctrl-C."""
    if profile not in PROFILES:
        raise typer.BadParameter(f"one of {', '.join(PROFILES)}", param_hint="--profile")
    asyncio.run(run_system(seed, customers, rate, status_every, profile, base_port))
