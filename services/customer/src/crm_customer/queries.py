"""Reading the customer service's views: the single customer view, search, groups.

Asking for a duplicate's id answers with its survivor's view, which folds in every
document merged into it (``single_view.py`` composes them).

Every read takes the caller's reach: MongoDB selects only the customers in it (search,
a group's members), or the one customer read is checked against it; what a masked reach
reads has its personal data masked (``ownership.py``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

from crm_backbone.access import Reach, as_shown, in_reach, scoped
from crm_backbone.cursor import InvalidCursor, decode_cursor, encode_cursor
from crm_backbone.projection import Document
from crm_backbone.readmodel import APPLIED, field_key, wait_until_applied
from pydantic import BaseModel, Field
from pymongo.asynchronous.database import AsyncDatabase

from crm_customer.erasure import AccountState, RelationshipFacts
from crm_customer.ownership import OWNERSHIP, PERSONAL
from crm_customer.single_view import SOURCE, CustomerView, compose
from crm_customer.views import CustomerViews
from crm_customer.views.documents import CUSTOMERS, GROUP_NAMED_BY, GROUPS, normalise_phone

CURSOR_KEY = "after"
"""The sort key a search cursor carries: none (the customer's name would show in it), the
last customer's id is enough to find it again."""

MAX_MERGE_DEPTH = 8
"""How many merges deep a chain of duplicates is followed."""


class SearchPage(BaseModel):
    items: list[dict[str, Any]] = Field(
        description="Customers in the caller's reach; personal data as the caller may see it"
    )
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

    async def view(self, customer_id: str, reach: Reach) -> CustomerView | None:
        """The single view answering for ``customer_id`` (its survivor's, once merged),
        when that customer is in reach."""
        survivor = await self._survivor(customer_id)
        if survivor is None or not in_reach(reach, survivor, OWNERSHIP):
            return None
        documents = [survivor, *await self._merged_documents(survivor)]
        resolved_from = customer_id if survivor["_id"] != customer_id else None
        view = compose(
            documents, resolved_from, today=self.today(), dormancy_days=self.dormancy_days
        )
        if not reach.masked:
            return view
        return CustomerView.model_validate(as_shown(reach, view.model_dump(), PERSONAL))

    async def relationship_facts(self, customer_id: str) -> RelationshipFacts:
        """What the view knows of the customer's relationship with the bank, its merged
        duplicates' included: what erasure's legal holds are decided on."""
        own = await self.customers.find_one({"_id": customer_id})
        if own is None:
            return RelationshipFacts()
        return relationship_facts([own, *await self._merged_documents(own)])

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
        reach: Reach,
    ) -> SearchPage:
        """Registered, unmerged, unerased customers in reach matching every given filter, by name
        then id. The cursor names the last customer of the page (never its name), which
        must still be in reach."""
        query: Document = {
            "registered": True,
            "merged_into": {"$exists": False},
            "erased": {"$exists": False},
        }
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
            key, last_id = await self._resume_after(cursor, reach)
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
        found = self.customers.find(scoped(query, reach, OWNERSHIP), projection)
        sorted_found = found.sort([("search.name_key", 1), ("_id", 1)])
        items = [doc async for doc in sorted_found.limit(limit + 1)]
        more = len(items) > limit
        items = items[:limit]
        next_cursor = encode_cursor(CURSOR_KEY, items[-1]["_id"]) if more else None
        for item in items:
            item["customer_id"] = item.pop("_id")
            item.pop("search", None)
        return SearchPage(
            items=[as_shown(reach, i, PERSONAL) for i in items], next_cursor=next_cursor
        )

    async def _resume_after(self, cursor: str, reach: Reach) -> tuple[str, str]:
        """The sort key and id of the customer a cursor names (:class:`InvalidCursor` for
        one out of reach, as for one that does not exist)."""
        key, last_id = decode_cursor(cursor, str)
        last = await self.customers.find_one(
            scoped({"_id": last_id}, reach, OWNERSHIP), {"search.name_key": 1}
        )
        if key != CURSOR_KEY or last is None:
            raise InvalidCursor
        return last.get("search", {}).get("name_key", ""), last_id

    async def group(self, group_id: str, reach: Reach) -> dict[str, Any] | None:
        """A group with its members (current and past) and its history, of the members in
        reach only; ``None`` when it has none."""
        doc = await self.groups.find_one({"_id": group_id}, {APPLIED: 0, GROUP_NAMED_BY: 0})
        if doc is None:
            return None
        history = doc.get("history", [])
        in_reach_ids = {
            d["_id"]
            async for d in self.customers.find(
                scoped({"_id": {"$in": [h["customer_id"] for h in history]}}, reach, OWNERSHIP),
                {"_id": 1},
            )
        }
        if not in_reach_ids:
            return None
        by_key = {field_key(cid): cid for cid in in_reach_ids}  # members are keyed by field_key
        members = {by_key[key]: m for key, m in doc.pop("members", {}).items() if key in by_key}
        doc["history"] = [h for h in history if h["customer_id"] in in_reach_ids]
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


CLOSED_NEEDS = ("resolved", "confirmed")


def relationship_facts(documents: list[Document]) -> RelationshipFacts:
    """The accounts, last KYC review, open complaints and leads the customer's documents
    hold (an account known only from its balance counts as open)."""
    accounts = tuple(
        AccountState(
            account["account_id"],
            date.fromisoformat(account["closed_on"]) if account.get("status") == "closed" else None,
        )
        for d in documents
        for account in d.get("accounts", {}).values()
    )
    reviews = [date.fromisoformat(d["kyc"]["reviewed_on"]) for d in documents if "kyc" in d]
    complaints = sum(
        1
        for d in documents
        for need in d.get("needs", {}).values()
        if need.get("kind") == "complaint" and need.get("status") not in CLOSED_NEEDS
    )
    leads = tuple(sorted({lead for d in documents for lead in d.get("lead_ids", [])}))
    return RelationshipFacts(accounts, max(reviews, default=None), complaints, leads)
