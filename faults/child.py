"""What the suite's child processes (projection worker, relay) share.

A child reads its configuration as JSON from its first argument, stops on SIGTERM, and
exits at once if the suite's process goes away (so a killed test run leaves no orphan).
``SIGUSR1`` *arms* its fault: the next time the child reaches its kill point it SIGKILLs
itself there, a genuine process death at a chosen line. ``SIGUSR2`` prints the stack of
every asyncio task to its log (where is a stuck child waiting?).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from crm_backbone.kafka_acls import ADMIN
from crm_backbone.keys.database import DatabaseKeyStore, PostgresKeyDatabase
from crm_backbone.keys.factory import key_wrapper
from crm_backbone.keys.sealer import KeySealer
from crm_backbone.settings import ServiceSettings, configure_logging


class KillSwitch:
    """Armed by SIGUSR1 (handled from creation on); :meth:`point` then SIGKILLs the process."""

    def __init__(self) -> None:
        self.armed = False
        signal.signal(signal.SIGUSR1, lambda *_: self.arm())

    def arm(self) -> None:
        self.armed = True

    def point(self, where: str) -> None:
        """A kill point: die here (SIGKILL, no clean-up at all) if armed."""
        if self.armed:
            print(f"fault: SIGKILL at {where}", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)


def configuration(name: str) -> dict[str, Any]:
    """The JSON configuration given as the first argument; logging set up for ``name``."""
    configure_logging(name, level="WARNING", fmt="console")
    config: dict[str, Any] = json.loads(sys.argv[1])
    return config


def kafka_login(config: dict[str, Any]) -> dict[str, Any]:
    """The suite's Kafka login (the admin: the suite's own topics and groups are in no
    ACL table), its password read from the folder the configuration names."""
    settings = ServiceSettings(kafka_secrets_dir=Path(config["kafka_secrets"]))
    return settings.kafka_client_options(ADMIN)


def key_sealer(config: dict[str, Any]) -> KeySealer:
    """The customer service's sealer as the services wire it (personal data sealed in the
    store and on Kafka): the scenario's key database (``keys``, a DSN), data keys wrapped
    by the profile's master key ring from the secrets folder ``secrets`` (the launcher's)."""
    settings = ServiceSettings(secrets_dir=Path(config["secrets"]))
    keys = DatabaseKeyStore(PostgresKeyDatabase(config["keys"]), key_wrapper(settings))
    return KeySealer(keys, capacity=settings.key_cache_size, ttl_s=settings.key_cache_ttl_s)


READY = "child ready"
"""The line a child prints once it runs: the suite waits for it before arming a fault."""


def _print_tasks() -> None:
    for task in asyncio.all_tasks():
        print(f"--- {task.get_name()}", flush=True)
        task.print_stack(file=sys.stdout)
    sys.stdout.flush()


async def run_until_stopped() -> None:
    """Say ready, then wait for SIGTERM (return) or the parent's death (exit at once)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGUSR2, _print_tasks)
    parent = os.getppid()
    print(READY, flush=True)
    while not stop.is_set():
        if os.getppid() != parent:
            os._exit(3)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=0.5)
