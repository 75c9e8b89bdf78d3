"""Read-your-writes: wait, with a bound, until a view has applied an aggregate's version."""

from __future__ import annotations

import asyncio
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection

from crm_backbone.projection import guard_key


async def applied_version(
    positions: AsyncCollection[dict[str, Any]], source: str, aggregate_id: str
) -> int:
    doc = await positions.find_one({"_id": guard_key(source, aggregate_id)}, {"version": 1})
    return int(doc["version"]) if doc else 0


async def wait_until_applied(
    positions: AsyncCollection[dict[str, Any]],
    source: str,
    aggregate_id: str,
    version: int,
    within: float,
) -> bool:
    """True once the projection has applied ``version``; False if ``within`` seconds passed first.

    Watches the positions collection's change stream (opened before the first read, so
    no change slips between them) instead of polling.
    """
    key = guard_key(source, aggregate_id)
    pipeline = [{"$match": {"documentKey._id": key}}]
    try:
        async with asyncio.timeout(within):
            async with await positions.watch(pipeline, full_document="updateLookup") as stream:
                if await applied_version(positions, source, aggregate_id) >= version:
                    return True
                async for change in stream:
                    document = change.get("fullDocument") or {}
                    if int(document.get("version", 0)) >= version:
                        return True
    except TimeoutError:
        return False
    return False
