"""Pausing a live consumer group between two batches, for a lease (used by rebuilds).

The pause is a **lease** the rebuild renews while it works. A rebuild that dies or hangs
mid-pause stops renewing it; once it has expired the consumer goes on by itself (and
logs ``pause_lease_expired_resuming``), on the old collections or, if the rebuild died
mid-swap, on a mix of old and rebuilt ones that both hold exactly the records up to the
group's committed offsets. A rebuild renews the lease before each collection it swaps
and stops, unswapped, when the pause is no longer its own. :func:`PauseGate.abort`
(``crm-ops rebuild VIEW --abort``) ends a pause at once, whoever holds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import structlog
from pymongo.asynchronous.database import AsyncDatabase

from crm_backbone.records import Document

log = structlog.get_logger(__name__)

CONTROL = "view_control"
"""Collection (in the view's database) of the pause requests of its consumer groups."""
LEASE = 30.0
"""Seconds a rebuild's pause lasts unless renewed (the rebuild renews it every third)."""


class LeaseLost(RuntimeError):
    """The pause ended while a rebuild held it (it expired, or ``crm-ops rebuild --abort``
    cleared it): the live consumer may be writing again, so the rebuild stops unswapped."""


class PauseGate:
    """Lets a rebuild pause a live consumer group between two batches, for a lease.

    ``{_id: group, paused, acknowledged, holder, lease_until}``: the rebuild (the holder)
    sets ``paused`` with a lease it renews while it works; the consumer, before its next
    batch, sets ``acknowledged`` and waits until ``paused`` is cleared or the lease has
    expired (the rebuild died or hangs): then it clears the pause itself, says so in its
    log, and goes on. Times are MongoDB's own (``$$NOW``), so clocks of the machines
    involved need not agree. One indexed read per batch when nothing is asked.
    """

    def __init__(
        self, database: AsyncDatabase[Document], group: str, *, lease: float = LEASE
    ) -> None:
        self.control = database[CONTROL]
        self.group = group
        self.lease = lease
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    async def wait_if_paused(self, poll: float = 0.1) -> None:
        """Called by the consumer before each batch."""
        doc = await self.control.find_one({"_id": self.group}, {"paused": 1})
        if not doc or not doc.get("paused"):
            return
        await self.control.update_one({"_id": self.group}, {"$set": {"acknowledged": True}})
        while (await self.control.find_one({"_id": self.group}) or {}).get("paused"):
            if await self._expire():
                break
            await asyncio.sleep(poll)
        await self.control.update_one({"_id": self.group}, {"$set": {"acknowledged": False}})

    async def _expire(self) -> bool:
        """End a pause whose lease ran out; True if this call ended it."""
        expired = await self.control.find_one_and_update(
            {"_id": self.group, "paused": True, "$expr": {"$lt": ["$lease_until", "$$NOW"]}},
            [{"$set": {"paused": False, "expired_at": "$$NOW"}}],
        )
        if expired is None:
            return False
        log.warning(
            "pause_lease_expired_resuming",
            consumer_group=self.group,
            holder=expired.get("holder"),
            lease_until=str(expired.get("lease_until")),
        )
        return True

    async def pause(self, within: float) -> bool:
        """Ask the consumer to pause, holding the lease; True once it said so, False if
        none answered within ``within`` seconds (an idle or stopped consumer)."""
        await self.control.update_one(
            {"_id": self.group},
            [
                {
                    "$set": {
                        "paused": True,
                        "acknowledged": False,
                        "holder": self.holder,
                        "lease_until": self._lease_end(),
                        "paused_at": "$$NOW",
                    }
                }
            ],
            upsert=True,
        )
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            await self.renew()
            doc = await self.control.find_one({"_id": self.group}) or {}
            if doc.get("acknowledged"):
                return True
            await asyncio.sleep(0.1)
        return False

    async def renew(self) -> None:
        """Extend the lease; raises ``LeaseLost`` when it expired or was cleared."""
        renewed = await self.control.update_one(
            {
                "_id": self.group,
                "holder": self.holder,
                "paused": True,
                "$expr": {"$gte": ["$lease_until", "$$NOW"]},
            },
            [{"$set": {"lease_until": self._lease_end()}}],
        )
        if renewed.matched_count == 0:
            raise LeaseLost(f"the pause of {self.group} ended while the rebuild held it")

    async def resume(self) -> None:
        """End the pause, if this gate still holds it."""
        await self.control.update_one(
            {"_id": self.group, "holder": self.holder}, {"$set": {"paused": False}}
        )

    async def abort(self) -> bool:
        """End the pause whoever holds it (``crm-ops rebuild --abort``); True if one was on."""
        ended = await self.control.update_one(
            {"_id": self.group, "paused": True},
            [{"$set": {"paused": False, "aborted_at": "$$NOW"}}],
        )
        return ended.modified_count == 1

    @asynccontextmanager
    async def paused(self, within: float) -> AsyncIterator[bool]:
        """The consumer paused for the body (see :meth:`pause`), the lease renewed in the
        background meanwhile; resumed afterwards, whatever happens."""
        try:
            acknowledged = await self.pause(within)
            renewing = asyncio.create_task(self._keep_renewing())
            try:
                yield acknowledged
            finally:
                renewing.cancel()
                with contextlib.suppress(asyncio.CancelledError, LeaseLost):
                    await renewing
        finally:
            await self.resume()

    async def _keep_renewing(self) -> None:
        while True:
            await asyncio.sleep(self.lease / 3)
            await self.renew()

    def _lease_end(self) -> dict[str, Any]:
        return {"$add": ["$$NOW", int(self.lease * 1000)]}
