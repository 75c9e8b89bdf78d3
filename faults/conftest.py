"""The fault suite's fixtures: Kafka, MongoDB and PostgreSQL of its own, and its report.

The suite kills and restarts its servers, so it never uses the shared test servers: it
brings up the launcher's ``faults`` profile (its own state folder and ports), holds a lock
so that two fault sessions never share those servers, and at the end stops exactly the
servers it started. Addresses come from the launcher, never from the environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from crm_backbone.kafka_acls import ADMIN
from local_infra.infra import PROFILES, Infra
from local_infra.process import InfraError
from pymongo import MongoClient

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # the child processes run `python -m faults.<module>` from ROOT
    sys.path.insert(0, str(ROOT))

from faults.scenario import Result  # noqa: E402
from faults.system import PREFIX  # noqa: E402

RESULTS = pytest.StashKey[list[Result]]()
LOCK_WAIT = 900.0
"""Seconds to wait for another fault session on this machine to finish."""


def pytest_configure(config: pytest.Config) -> None:
    config.stash[RESULTS] = []


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config
) -> None:
    """The table of every scenario that ran: events sent, faults, lost, twice, ..."""
    results = config.stash.get(RESULTS, [])
    if results:
        terminalreporter.section("fault suite")
        terminalreporter.write_line(Result.HEADER)
        for result in results:
            terminalreporter.write_line(result.line())


@contextlib.contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path``, waiting (bounded) for another holder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        deadline = time.monotonic() + LOCK_WAIT
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    pytest.fail(f"another fault session holds {path}", pytrace=False)
                time.sleep(1.0)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def fault_infra() -> Iterator[Infra]:
    """The ``faults`` profile's servers, started for this session and stopped after it."""
    profile = PROFILES["faults"]
    with _exclusive(profile.state_dir / "suite.lock"):
        infra = Infra(profile)
        running_before = {server.name for server in infra.servers if server.pid() is not None}
        try:
            try:
                infra.up()
            except InfraError as error:
                pytest.fail(f"the fault suite's servers did not start:\n{error}", pytrace=False)
            _drop_leftovers(infra)
            yield infra
        finally:
            for server in infra.servers:
                if server.name not in running_before:
                    server.stop()


def _drop_leftovers(infra: Infra) -> None:
    """Topics and databases a failed earlier session kept for inspection."""
    mongo: MongoClient[dict[str, object]]
    with MongoClient(infra.mongo.admin_uri, serverSelectionTimeoutMS=10000) as mongo:
        for name in mongo.list_database_names():
            if name.startswith(PREFIX):
                mongo.drop_database(name)
    with psycopg.connect(infra.postgres.admin_dsn, autocommit=True) as conn:
        rows = conn.execute("SELECT datname FROM pg_database").fetchall()
        for (name,) in rows:
            if str(name).startswith(PREFIX):
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    async def delete_topics() -> None:
        admin = AIOKafkaAdminClient(
            bootstrap_servers=infra.kafka.address, **infra.kafka.login(ADMIN)
        )
        await admin.start()
        try:
            old = [t for t in await admin.list_topics() if t.startswith(PREFIX)]
            if old:
                await admin.delete_topics(old)
        finally:
            await admin.close()

    asyncio.run(delete_topics())


@pytest.fixture(scope="session")
def fault_logs(fault_infra: Infra) -> Path:
    """Where the children's logs go (the previous session's are removed)."""
    logs = fault_infra.profile.state_dir / "logs"
    shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir(parents=True)
    return logs


@pytest.fixture
def record(request: pytest.FixtureRequest) -> Callable[[Result], None]:
    """Adds a scenario's result to the session's table."""
    return request.config.stash[RESULTS].append
