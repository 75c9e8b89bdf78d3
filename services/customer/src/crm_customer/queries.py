"""Reading the customer service's views: the single customer view, search, groups.

Asking for a duplicate's id answers with its survivor's view, which folds in every
document merged into it (``single_view.py`` composes them).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

from crm_backbone.cursor import decode_cursor, encode_cursor
from crm_backbone.projection import Document
from crm_backbone.readmodel import APPLIED, wait_until_applied
from pydantic import BaseModel, Field
from pymongo.asynchronous.database import AsyncDatabase

from crm_customer.single_view import SOURCE, CustomerView, compose
from crm_customer.views import CustomerViews
from crm_customer.views.documents import CUSTOMERS, GROUPS, normalise_phone

MAX_MERGE_DEPTH = 8
"""How many merges deep a chain of duplicates is followed."""


class SearchPage(BaseModel):
    items: list[dict[str, Any]]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page")


class CustomerQueries:
    """Read side of the customer service."""

    def __init__(
        self,
        database: AsyncDatabase[Document],
        *,
        dormancy_days: int = 90,
        today: Callable[[], date] = lambda: datetime.now(UTC).date(),
    ) -> None:
        self.customers = database[CUSTOMERS]
        self.groups = database[GROUPS]
        self.positions = database[f"{CustomerViews.name}__positions"]
        self.dormancy_days = dormancy_days
        self.today = today

    async def wait_for(self, customer_id: str, version: int, within: float) -> bool:
        """Wait (bounded) until the view has applied ``version`` of the customer's events."""
        return await wait_until_applied(self.positions, SOURCE, customer_id, version, within)

    async def view(self, customer_id: str) -> CustomerView | None:
        survivor = await self._survivor(customer_id)
        if survivor is None:
            return None
        documents = [survivor, *await self._merged_documents(survivor)]
        resolved_from = customer_id if survivor["_id"] != customer_id else None
        return compose(
            documents, resolved_from, today=self.today(), dormancy_days=self.dormancy_days
        )

    async def search(
        self,
        *,
        name: str | None = None,
        phone: str | None = None,
        id_number: str | None = None,
        manager_id: str | None = None,
        branch_id: str | None = None,
        segment: str | None = None,
        status: str | None = None,
        limit: int = 20,
        cursor: str | None = None,
    ) -> SearchPage:
        """Registered, unmerged customers matching every given filter, by name then id."""
        query: Document = {"registered": True, "merged_into": {"$exists": False}}
        if name:
            query["search.names"] = {"$regex": f"^{re.escape(name.strip().lower())}"}
        if phone:
            query["search.phones"] = normalise_phone(phone)
        if id_number:
            query["search.id_numbers"] = id_number.strip().upper()
        for field, value in (
            ("manager_id", manager_id),
            ("branch_id", branch_id),
            ("segment.value_band", segment),
            ("status", status),
        ):
            if value:
                query[field] = value
        if cursor:
            key, last_id = decode_cursor(cursor, str)
            query["$or"] = [
                {"search.name_key": {"$gt": key}},
                {"search.name_key": key, "_id": {"$gt": last_id}},
            ]
        projection = {
            "customer_type": 1,
            "name": 1,
            "status": 1,
            "segment": 1,
            "manager_id": 1,
            "branch_id": 1,
            "profile.phone": 1,
            "profile.email": 1,
            "search.name_key": 1,
        }
        found = self.customers.find(query, projection).sort([("search.name_key", 1), ("_id", 1)])
        items = [doc async for doc in found.limit(limit + 1)]
        more = len(items) > limit
        items = items[:limit]
        next_cursor = (
            encode_cursor(items[-1]["search"]["name_key"], items[-1]["_id"]) if more else None
        )
        for item in items:
            item["customer_id"] = item.pop("_id")
            item.pop("search", None)
        return SearchPage(items=items, next_cursor=next_cursor)

    async def group(self, group_id: str) -> dict[str, Any] | None:
        doc = await self.groups.find_one({"_id": group_id}, {APPLIED: 0})
        if doc is None:
            return None
        members = doc.pop("members", {})
        doc["group_id"] = doc.pop("_id")
        doc["current_members"] = [
            {"customer_id": cid, **m} for cid, m in sorted(members.items()) if m["left_on"] is None
        ]
        doc["past_members"] = [
            {"customer_id": cid, **m} for cid, m in sorted(members.items()) if m["left_on"]
        ]
        return doc

    # Merges -------------------------------------------------------------------------------

    async def _survivor(self, customer_id: str) -> Document | None:
        """The document answering for ``customer_id``: its own, or its survivor's."""
        wanted = customer_id
        for _ in range(MAX_MERGE_DEPTH):
            docs = [
                d
                async for d in self.customers.find(
                    {"$or": [{"_id": wanted}, {"merged_ids": wanted}]}
                )
            ]
            absorbing = next((d for d in docs if d["_id"] != wanted), None)
            own = next((d for d in docs if d["_id"] == wanted), None)
            nxt = absorbing["_id"] if absorbing else (own or {}).get("merged_into")
            if nxt is None:
                return own
            wanted = nxt
        return None

    async def _merged_documents(self, survivor: Document) -> list[Document]:
        found: dict[str, Document] = {}
        frontier = [survivor]
        for _ in range(MAX_MERGE_DEPTH):
            ids = [d["_id"] for d in frontier]
            merged = [i for d in frontier for i in d.get("merged_ids", [])]
            query = {"$or": [{"merged_into": {"$in": ids}}, {"_id": {"$in": merged}}]}
            frontier = [
                d
                async for d in self.customers.find(query)
                if d["_id"] not in found and d["_id"] != survivor["_id"]
            ]
            if not frontier:
                break
            found.update((d["_id"], d) for d in frontier)
        return list(found.values())
