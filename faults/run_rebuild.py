"""A rebuild of the customer view, killed while the live consumer is paused for it.

``python -m faults.run_rebuild CONFIG``; CONFIG is JSON with ``kafka``, ``mongo``,
``database``, ``topics`` (the view's), ``live_group`` and ``lease`` (seconds). The rebuild
catches up with the live consumer group, pauses it under a lease, applies what remains,
and SIGKILLs itself just before swapping in the first rebuilt collection: the live
consumer stays paused until the lease expires.
"""

from __future__ import annotations

import asyncio

from crm_backbone import rebuild as rebuilding
from crm_backbone.pause import PauseGate
from crm_backbone.projection import Document
from crm_customer.views import CustomerViews
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from faults.child import KillSwitch, configuration, kafka_login, key_sealer

_swap = rebuilding._swap


async def main() -> None:
    config = configuration("fault-rebuild")
    switch = KillSwitch()
    switch.arm()

    async def dying_swap(
        scratch: AsyncDatabase[Document],
        live: AsyncDatabase[Document],
        keep: bool,
        gate: PauseGate,
    ) -> None:
        switch.point("swap (live consumer paused under the lease, nothing swapped yet)")
        await _swap(scratch, live, keep, gate)

    rebuilding._swap = dying_swap
    mongo: AsyncMongoClient[Document] = AsyncMongoClient(config["mongo"], tz_aware=True)
    try:
        await rebuilding.rebuild(
            CustomerViews(),
            mongo[config["database"]],
            bootstrap=config["kafka"],
            login=kafka_login(config),
            live_group=config["live_group"],
            topics=config["topics"],
            lease=config["lease"],
            sealer=key_sealer(config),
        )
    finally:
        await mongo.close()


if __name__ == "__main__":
    asyncio.run(main())
