"""`make run`'s supervisor end to end: start (API and workers as separate processes), views
fill, the API it says how to call answers a token of the run's Keycloak, Ctrl-C, nothing
left running."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import psutil
import pytest
from local_infra.infra import ENV_KAFKA, PROFILES, Infra
from local_infra.pytest_plugin import NamespaceAccounts, Servers
from local_infra.tokens import RealmTokens

pytestmark = pytest.mark.integration

APPLIED = re.compile(r"customer: ready \d+ ev/s applied=([\d,]+)")
CALL = re.compile(r'curl -H "Authorization: Bearer \$TOKEN" (\S+)')
FILL_LIMIT_S = 420
"""How long the views may take to fill before the run is stopped and its output shown."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_the_system_runs_fills_its_views_and_stops_cleanly(
    crm_servers: Servers,
    realm_tokens: RealmTokens,
    namespace_accounts: NamespaceAccounts,
    tmp_path: Path,
) -> None:
    """crm-run makes the MongoDB and PostgreSQL accounts of the namespace it runs (here the
    test's own, dropped afterwards) and its processes connect as them."""
    test_profile = Infra(PROFILES["test"])
    ours = all(status.running for status in test_profile.status())
    if not ours or crm_servers.kafka_bootstrap != test_profile.env()[ENV_KAFKA]:
        pytest.skip("crm-run --profile test runs on this checkout's own test servers only")
    env = os.environ | {
        "CRM_DATA_DIR": str(tmp_path),
        "CRM_NAMESPACE": namespace_accounts.namespace,
    }
    crm_run = Path(sys.executable).parent / "crm-run"
    argv = [
        str(crm_run),
        "--profile",
        "test",
        "--base-port",
        str(free_port()),
        "--customers",
        "20",
        "--rate",
        "100",
        "--status-every",
        "1",
    ]
    process = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    lines: list[str] = []
    children: list[psutil.Process] = []
    watchdog = threading.Timer(FILL_LIMIT_S, process.send_signal, (signal.SIGINT,))
    watchdog.start()
    try:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            children = children or psutil.Process(process.pid).children(recursive=True)
            match = APPLIED.search(line)
            if match and int(match.group(1).replace(",", "")) > 0:
                break
        else:
            pytest.fail(
                f"crm-run ended, or was stopped after {FILL_LIMIT_S} s, before the views "
                "filled:\n" + "".join(lines)
            )
        assert "TOKEN=$(.venv/bin/crm-infra token rm-0001 --profile test)" in "".join(lines)
        call = CALL.search("".join(lines))
        assert call is not None, lines
        assert httpx.get(call.group(1)).status_code == 401
        answer = httpx.get(call.group(1), headers=realm_tokens.service("crm-customer"))
        assert answer.status_code == 200, answer.text
        children = psutil.Process(process.pid).children(recursive=True)
        commands = [" ".join(c.cmdline()) for c in children]
        # The API and the workers run as separate processes.
        assert any("crm-customer serve --no-workers" in command for command in commands)
        assert any("crm-customer work" in command for command in commands)
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=60)
        lines.append(output)
    finally:
        watchdog.cancel()
        if process.poll() is None:
            process.kill()
        secrets = test_profile.mongo.secrets.folder
        for written in secrets.glob(f"*/{namespace_accounts.namespace}_*"):
            written.unlink()
    text = "".join(lines)
    assert process.returncode == 0, text
    assert "stopped: no process left running" in text
    assert "customer     ready" in text
    assert "customer worker     ready" in text
    assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    # The test session's servers were up before: crm-run leaves them running.
    assert "left running" in text
