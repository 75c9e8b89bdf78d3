"""Reading the book for the worklists: churn signals and cross-sell gaps per customer.

Both read the single customer view (``customers``) narrowed to the caller's reach in
MongoDB, page by customer id, and apply the rules of ``churn.py`` and ``cross_sell.py``
to each customer of a page. Their time is the **book's time** (:func:`book_time`).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from crm_backbone.access import Reach, as_shown, scoped
from crm_backbone.cursor import InvalidCursor, decode_cursor, encode_cursor
from crm_backbone.projection import Document
from crm_backbone.readmodel import APPLIED, document_version
from pymongo.asynchronous.database import AsyncDatabase

from crm_customer.balance_history import BALANCE_HISTORY, histories
from crm_customer.churn import (
    ChurnParameters,
    CustomerFacts,
    SignalKind,
    churn_signals,
    dormancy_reason,
)
from crm_customer.cross_sell import CrossSellRule, SegmentHoldings, gaps, held_types
from crm_customer.ownership import OWNERSHIP, PERSONAL
from crm_customer.single_view import SOURCE
from crm_customer.views.documents import CUSTOMERS

CURSOR_KEY = "id"
"""What a worklist cursor's sort key says: pages go by customer id."""
SCAN_BATCH = 200
"""Customers read from MongoDB at a time while a page fills."""
IN_THE_BOOK: Document = {
    "registered": True,
    "merged_into": {"$exists": False},
    "erased": {"$exists": False},
}
"""Customers a worklist may name: registered, not merged away, not erased."""
FACT_FIELDS = {
    "status": 1,
    "last_contact_at": 1,
    "last_transaction_at": 1,
    "reactivated_at": 1,
    "needs": 1,
    "maturities": 1,
    "accounts": 1,
}
SHOWN_FIELDS = {"name": 1, "status": 1, "segment": 1, "manager_id": 1, "branch_id": 1}
HOLDING_STATUSES = ("active",)
"""Customers counted in a segment's holding rates and offered cross-sell."""
CHURN_STATUSES = ("active", "dormant")
"""Customers the churn worklist watches (not prospects, not those already lost)."""


async def book_time(database: AsyncDatabase[Document], clock: Callable[[], datetime]) -> date:
    """The day the book has reached: the latest balance change core banking reported,
    never later than ``clock`` (which answers when nothing is known yet). Rules judge
    customers by the time of the data, so a replay, a rebuild or a simulated bank's days
    give the figures their events say, and a stalled feed freezes the signals instead of
    making every customer quiet at once."""
    now = clock()
    latest = await database[BALANCE_HISTORY].find_one(
        {"latest_at": {"$exists": True}}, {"latest_at": 1}, sort=[("latest_at", -1)]
    )
    if latest is None:
        return now.date()
    latest_at: datetime = latest["latest_at"]
    return min(now, latest_at.astimezone(UTC)).date()


def facts_of(document: Document, balances: Document | None) -> CustomerFacts:
    """What the rules read of a customer's view document and balance history."""
    return CustomerFacts(
        status=document.get("status"),
        last_contact_at=document.get("last_contact_at"),
        last_transaction_at=document.get("last_transaction_at"),
        needs=tuple(document.get("needs", {}).values()),
        maturities=tuple(document.get("maturities", {}).values()),
        accounts=tuple(document.get("accounts", {}).values()),
        balances=histories(balances),
        reactivated_at=document.get("reactivated_at"),
    )


@dataclass(frozen=True)
class BookFilter:
    """What a worklist is narrowed to, beside the caller's reach."""

    name: str | None = None
    manager_id: str | None = None
    branch_id: str | None = None
    segment: str | None = None

    def query(self, statuses: tuple[str, ...]) -> Document:
        query: Document = {**IN_THE_BOOK, "status": {"$in": list(statuses)}}
        if self.name:
            query["search.names"] = {"$regex": f"^{re.escape(self.name.strip().lower())}"}
        for path, value in (
            ("manager_id", self.manager_id),
            ("branch_id", self.branch_id),
            ("segment.value_band", self.segment),
        ):
            if value:
                query[path] = value
        return query


@dataclass
class Page:
    items: list[dict[str, Any]]
    next_cursor: str | None
    as_of: date | None
    """The day the rules judged the customers as of (time-free rules: none)."""


class BookWorklists:
    """The churn and cross-sell worklists, and the dormancy rule's candidates."""

    def __init__(
        self,
        database: AsyncDatabase[Document],
        *,
        churn: ChurnParameters | None = None,
        cross_sell: CrossSellRule | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.database = database
        self.customers = database[CUSTOMERS]
        self.balances = database[BALANCE_HISTORY]
        self.churn = churn or ChurnParameters()
        self.cross_sell = cross_sell or CrossSellRule()
        self.clock = clock

    async def churn_page(
        self,
        reach: Reach,
        where: BookFilter,
        signal: SignalKind | None = None,
        limit: int = 20,
        cursor: str | None = None,
    ) -> Page:
        """Customers in reach showing a churn signal (``signal``: that one), by id."""
        as_of = await book_time(self.database, self.clock)

        def item(document: Document, balances: Document | None) -> dict[str, Any] | None:
            found = churn_signals(facts_of(document, balances), as_of, self.churn)
            if not found or (signal is not None and all(s.kind != signal for s in found)):
                return None
            signals = [{"kind": s.kind.value, "detail": s.detail, "since": s.since} for s in found]
            return shown(reach, document) | {"signals": signals}

        query = scoped(where.query(CHURN_STATUSES), reach, OWNERSHIP)
        after = await self._resume_after(cursor, reach)
        items, next_cursor = await self._page(query, after, limit, item, with_balances=True)
        return Page(items, next_cursor, as_of)

    async def cross_sell_page(
        self,
        reach: Reach,
        where: BookFilter,
        product_type: str | None = None,
        limit: int = 20,
        cursor: str | None = None,
    ) -> tuple[Page, dict[str, SegmentHoldings]]:
        """Active customers in reach with cross-sell gaps (``product_type``: that one), by
        id, and the book's segments the rule compared them with."""
        segments = await self.segment_holdings()

        def item(document: Document, _: Document | None) -> dict[str, Any] | None:
            held = held_types(document.get("accounts", {}).values())
            band = (document.get("segment") or {}).get("value_band")
            missing = gaps(held, segments.get(band) if band else None, self.cross_sell)
            if not missing or (product_type is not None and product_type not in missing):
                return None
            return shown(reach, document) | {
                "held": sorted(held),
                "gaps": [
                    {"product_type": t, "segment_holding_rate_percent": str(rate)}
                    for t, rate in missing.items()
                ],
            }

        query = scoped(where.query(HOLDING_STATUSES), reach, OWNERSHIP)
        after = await self._resume_after(cursor, reach)
        items, next_cursor = await self._page(query, after, limit, item, with_balances=False)
        return Page(items, next_cursor, None), segments

    async def _page(
        self,
        query: Document,
        after: str | None,
        limit: int,
        item_of: Callable[[Document, Document | None], dict[str, Any] | None],
        *,
        with_balances: bool,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """The first ``limit`` items after customer ``after`` (customers whose ``item_of``
        is ``None`` left out), and the cursor of the next page if there is one."""
        items: list[dict[str, Any]] = []
        async for document, balances in self._scan(query, after, with_balances=with_balances):
            item = item_of(document, balances)
            if item is None:
                continue
            if len(items) == limit:
                return items, encode_cursor(CURSOR_KEY, items[-1]["customer_id"])
            items.append(item)
        return items, None

    async def segment_holdings(self) -> dict[str, SegmentHoldings]:
        """Per value band, across the whole book: its active customers and how many of
        them hold each product type, counted in MongoDB (distinct customers)."""
        open_types = {
            "$setUnion": [
                {
                    "$map": {
                        "input": {
                            "$filter": {
                                "input": {"$objectToArray": {"$ifNull": ["$accounts", {}]}},
                                "cond": {"$ne": ["$$this.v.status", "closed"]},
                            }
                        },
                        "in": "$$this.v.product_type",
                    }
                }
            ]
        }
        match = {
            **IN_THE_BOOK,
            "status": {"$in": list(HOLDING_STATUSES)},
            "segment.value_band": {"$exists": True},
        }
        pipeline: list[Document] = [
            {"$match": match},
            {"$project": {"band": "$segment.value_band", "types": open_types}},
            {
                "$facet": {
                    "customers": [{"$group": {"_id": "$band", "n": {"$sum": 1}}}],
                    "holders": [
                        {"$unwind": "$types"},
                        {"$match": {"types": {"$type": "string"}}},
                        {"$group": {"_id": {"band": "$band", "type": "$types"}, "n": {"$sum": 1}}},
                    ],
                }
            },
        ]
        result = await (await self.customers.aggregate(pipeline)).to_list()
        facets = result[0] if result else {"customers": [], "holders": []}
        holders: dict[str, dict[str, int]] = {}
        for row in facets["holders"]:
            holders.setdefault(row["_id"]["band"], {})[row["_id"]["type"]] = row["n"]
        return {
            row["_id"]: SegmentHoldings(row["n"], holders.get(row["_id"], {}))
            for row in facets["customers"]
        }

    async def dormancy_due(self, days: int) -> list[tuple[str, int, str]]:
        """Active customers the dormancy rule now moves to dormant: (id, the view's
        version of the customer, the rule's reason)."""
        as_of = await book_time(self.database, self.clock)
        query = {**IN_THE_BOOK, "status": "active"}
        due = []
        async for document, _ in self._scan(query, None, with_balances=False, versions=True):
            reason = dormancy_reason(facts_of(document, None), as_of, days)
            if reason is not None:
                version = document_version(document, SOURCE, document["_id"])
                due.append((document["_id"], version, reason))
        return due

    async def _resume_after(self, cursor: str | None, reach: Reach) -> str | None:
        """The customer a cursor names, which must be in reach (:class:`InvalidCursor`
        otherwise, as for a cursor this API did not give)."""
        if cursor is None:
            return None
        key, last_id = decode_cursor(cursor, str)
        named = await self.customers.find_one(
            scoped({"_id": last_id}, reach, OWNERSHIP), {"_id": 1}
        )
        if key != CURSOR_KEY or named is None:
            raise InvalidCursor
        return last_id

    async def _scan(
        self,
        query: Document,
        after: str | None,
        *,
        with_balances: bool = True,
        versions: bool = False,
    ) -> AsyncIterator[tuple[Document, Document | None]]:
        """The customers matching ``query`` after customer ``after``, by id, in batches,
        each with its balance history."""
        fields = FACT_FIELDS | SHOWN_FIELDS | ({APPLIED: 1} if versions else {})
        while True:
            batch_query = {**query, "_id": {"$gt": after}} if after is not None else query
            found = self.customers.find(batch_query, fields).sort("_id", 1).limit(SCAN_BATCH)
            documents = [d async for d in found]
            if not documents:
                return
            balances: dict[str, Document] = {}
            if with_balances:
                ids = [d["_id"] for d in documents]
                balances = {b["_id"]: b async for b in self.balances.find({"_id": {"$in": ids}})}
            for document in documents:
                yield document, balances.get(document["_id"])
            after = documents[-1]["_id"]


def shown(reach: Reach, document: Document) -> dict[str, Any]:
    """What a worklist shows of a customer, personal data as the caller may see it."""
    item = {"customer_id": document["_id"]} | {f: document.get(f) for f in SHOWN_FIELDS}
    return as_shown(reach, item, PERSONAL)
