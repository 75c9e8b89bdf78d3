"""Outages of the suite's servers: one stopped (or killed), left down, started again."""

from __future__ import annotations

import asyncio
import time

from local_infra.process import port_is_free
from local_infra.servers import Server

from faults.waiting import until


async def restart(server: Server, *, hard: bool, down_for: float = 2.0) -> float:
    """Stop ``server`` (SIGKILL when ``hard``), leave it down a moment, start it again and
    wait until it answers; the monotonic time it answered again (the fault's end)."""
    await asyncio.to_thread(server.stop, hard=hard)
    await asyncio.sleep(down_for)  # the outage itself, not a wait for a condition

    async def port_free() -> bool:
        # A killed JVM's threads may still hold the port for a moment after it is reaped.
        return port_is_free(server.port)

    await until(port_free, within=60, what=f"{server.name}'s port released")
    await asyncio.to_thread(server.launch)
    await asyncio.to_thread(server.wait_ready)
    return time.monotonic()
