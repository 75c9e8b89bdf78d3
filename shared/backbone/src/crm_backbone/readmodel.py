"""How a view records what it has applied, and read-your-writes on top of it.

A view document names other aggregates in its field paths (``accounts.<id>``) and keeps,
per producing aggregate, the last version it applied under ``_applied.<guard key>``;
each view's positions collection keeps the same per aggregate, keyed by the guard key.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection

APPLIED = "_applied"
"""The field of a view document holding, per guard key, the last version applied."""


def field_key(identifier: str) -> str:
    """An id usable as a MongoDB field name (no dots, no leading dollar)."""
    return identifier.replace(".", "_").replace("$", "_")


def guard_key(source: str, aggregate_id: str) -> str:
    """A MongoDB-safe field name for one aggregate of one producer."""
    return field_key(f"{source}|{aggregate_id}")


def document_version(document: Mapping[str, Any], source: str, aggregate_id: str) -> int:
    """The last version of the aggregate that ``document`` holds; 0 if none."""
    return int(document.get(APPLIED, {}).get(guard_key(source, aggregate_id), 0))


async def applied_version(
    positions: AsyncCollection[dict[str, Any]], source: str, aggregate_id: str
) -> int:
    """The last version of the aggregate the view has applied, from its positions; 0 if none."""
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
