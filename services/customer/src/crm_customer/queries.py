"""Reading the customer service's views: the composed single customer view, search, groups.

Composition happens here, at read time, for what depends on the day (next birthday, next
maturity, dormancy signals) and on merges: a survivor's view folds in the documents of
the duplicates merged into it, and asking for a duplicate's id answers with its survivor.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from crm_backbone.cursor import decode_cursor, encode_cursor
from crm_backbone.projection import Document
from crm_backbone.readmodel import APPLIED, document_version, wait_until_applied
from crm_events.core_banking import ASSET_TYPES
from crm_events.customer import next_birthday
from crm_events.topics import Service
from pydantic import BaseModel, Field
from pymongo.asynchronous.database import AsyncDatabase

from crm_customer.views import CUSTOMERS, GROUPS, LAST_CONTACTS, CustomerViews, normalise_phone

MAX_MERGE_DEPTH = 8
SOURCE = Service.CUSTOMER.source

Amounts = dict[str, str]
"""Currency -> exact decimal amount as text."""


class Holdings(BaseModel):
    by_product_type: dict[str, Amounts] = Field(description="Open accounts' balances per type")
    assets_under_management: Amounts
    liabilities: Amounts
    open_accounts: int


class OpportunitySummary(BaseModel):
    open_count: int
    open_value: Amounts = Field(description="Σ expected value of open opportunities")
    weighted_value: Amounts = Field(description="Σ expected value * probability")
    items: list[dict[str, Any]]


class KeyDates(BaseModel):
    birth_date: str | None
    next_birthday: str | None
    next_maturity: dict[str, Any] | None


class Signals(BaseModel):
    last_contact_at: datetime | None
    last_transaction_at: datetime | None
    days_since_contact: int | None
    days_since_transaction: int | None
    dormancy_risk: bool
    reasons: list[str]


class CustomerView(BaseModel):
    """The single customer view: everything the bank knows of one customer."""

    customer_id: str
    resolved_from: str | None = Field(None, description="The merged id that was asked for")
    version: int = Field(description="Customer events applied (for read-your-writes)")
    registered: bool = Field(description="False: known only from other systems so far")
    merged_ids: list[str]
    customer_type: str | None
    name: dict[str, Any] | None
    status: str | None
    status_reason: str | None
    segment: dict[str, Any] | None
    manager_id: str | None
    branch_id: str | None
    profile: dict[str, Any]
    kyc: dict[str, Any] | None
    accounts: list[dict[str, Any]]
    holdings: Holdings
    groups: list[dict[str, Any]]
    relationships: list[dict[str, Any]]
    consent: dict[str, dict[str, Any]]
    opportunities: OpportunitySummary
    needs: list[dict[str, Any]]
    last_contacts: list[dict[str, Any]]
    contact_count: int
    next_tasks: list[dict[str, Any]]
    campaigns: list[dict[str, Any]]
    key_dates: KeyDates
    signals: Signals
    updated_at: datetime | None


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
        return self._compose(documents, resolved_from)

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
            "customer_type": 1, "name": 1, "status": 1, "segment": 1, "manager_id": 1,
            "branch_id": 1, "profile.phone": 1, "profile.email": 1, "search.name_key": 1,
        }  # fmt: skip
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

    # Composition ----------------------------------------------------------------------------

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
                d async for d in self.customers.find(query)
                if d["_id"] not in found and d["_id"] != survivor["_id"]
            ]  # fmt: skip
            if not frontier:
                break
            found.update((d["_id"], d) for d in frontier)
        return list(found.values())

    def _compose(self, documents: list[Document], resolved_from: str | None) -> CustomerView:
        main = documents[0]
        today = self.today()
        accounts = sorted(
            (a for d in documents for a in d.get("accounts", {}).values()),
            key=lambda a: (a.get("opened_on") or "", a["account_id"]),
        )
        opportunities = [o for d in documents for o in d.get("opportunities", {}).values()]
        contacts = sorted(
            (c for d in documents for c in d.get("contacts", [])),
            key=lambda c: c["started_at"],
            reverse=True,
        )[:LAST_CONTACTS]
        tasks = sorted(
            (t for d in documents for t in d.get("tasks", {}).values()), key=lambda t: t["due_at"]
        )
        maturities = [m for d in documents for m in d.get("maturities", {}).values()]
        maturities += [
            {"account_id": a["account_id"], "product_type": a.get("product_type"),
             "maturity_date": a["maturity_date"]}
            for a in accounts if a.get("maturity_date") and a.get("status") == "open"
        ]  # fmt: skip
        profile = main.get("profile", {})
        birth_date = profile.get("birth_date")
        last_contact = _latest(d.get("last_contact_at") for d in documents)
        last_transaction = _latest(d.get("last_transaction_at") for d in documents)
        version = document_version(main, SOURCE, main["_id"])
        return CustomerView(
            customer_id=main["_id"],
            resolved_from=resolved_from,
            version=version,
            registered=bool(main.get("registered")),
            merged_ids=[d["_id"] for d in documents[1:]],
            customer_type=main.get("customer_type"),
            name=main.get("name"),
            status=main.get("status"),
            status_reason=main.get("status_reason"),
            segment=main.get("segment"),
            manager_id=main.get("manager_id"),
            branch_id=main.get("branch_id"),
            profile=profile,
            kyc=main.get("kyc"),
            accounts=accounts,
            holdings=_holdings(accounts),
            groups=list(main.get("groups", {}).values()),
            relationships=list(main.get("relationships", {}).values()),
            consent=main.get("consent", {}),
            opportunities=_opportunity_summary(opportunities),
            needs=[n for d in documents for n in d.get("needs", {}).values()],
            last_contacts=contacts,
            contact_count=sum(d.get("contact_count", 0) for d in documents),
            next_tasks=tasks,
            campaigns=[c for d in documents for c in d.get("campaigns", {}).values()],
            key_dates=KeyDates(
                birth_date=birth_date,
                next_birthday=(
                    next_birthday(date.fromisoformat(birth_date), today).isoformat()
                    if birth_date
                    else None
                ),
                next_maturity=min(
                    (m for m in maturities if m["maturity_date"] >= today.isoformat()),
                    key=lambda m: m["maturity_date"],
                    default=None,
                ),
            ),
            signals=self._signals(main, last_contact, last_transaction, today),
            updated_at=_latest(d.get("updated_at") for d in documents),
        )

    def _signals(
        self,
        main: Document,
        last_contact: datetime | None,
        last_transaction: datetime | None,
        today: date,
    ) -> Signals:
        def days_since(moment: datetime | None) -> int | None:
            return None if moment is None else (today - moment.date()).days

        since_contact, since_transaction = days_since(last_contact), days_since(last_transaction)
        reasons = []
        if main.get("status") in ("active", "dormant"):
            n = self.dormancy_days
            if since_contact is None or since_contact > n:
                reasons.append(f"no contact for more than {n} days")
            if since_transaction is None or since_transaction > n:
                reasons.append(f"no transaction for more than {n} days")
        return Signals(
            last_contact_at=last_contact,
            last_transaction_at=last_transaction,
            days_since_contact=since_contact,
            days_since_transaction=since_transaction,
            dormancy_risk=bool(reasons),
            reasons=reasons,
        )


def _holdings(accounts: list[dict[str, Any]]) -> Holdings:
    by_type: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    assets: dict[str, Decimal] = defaultdict(Decimal)
    liabilities: dict[str, Decimal] = defaultdict(Decimal)
    open_accounts = [a for a in accounts if a.get("status", "open") == "open"]
    for account in open_accounts:
        balance = account.get("balance")
        if not balance:
            continue
        amount, currency = Decimal(balance["amount"]), balance["currency"]
        by_type[account["product_type"]][currency] += amount
        (assets if account["product_type"] in ASSET_TYPES else liabilities)[currency] += amount
    return Holdings(
        by_product_type={t: _text(v) for t, v in sorted(by_type.items())},
        assets_under_management=_text(assets),
        liabilities=_text(liabilities),
        open_accounts=len(open_accounts),
    )


def _opportunity_summary(opportunities: list[dict[str, Any]]) -> OpportunitySummary:
    open_ones = [o for o in opportunities if o.get("open") and o.get("expected_value")]
    value: dict[str, Decimal] = defaultdict(Decimal)
    weighted: dict[str, Decimal] = defaultdict(Decimal)
    for o in open_ones:
        amount, currency = Decimal(o["expected_value"]["amount"]), o["expected_value"]["currency"]
        value[currency] += amount
        weighted[currency] += amount * o["probability"] / 100
    return OpportunitySummary(
        open_count=len(open_ones),
        open_value=_text(value),
        weighted_value=_text(weighted),
        items=sorted(open_ones, key=lambda o: o.get("expected_close_date") or ""),
    )


def _text(amounts: dict[str, Decimal]) -> Amounts:
    return {currency: format(amount, "f") for currency, amount in sorted(amounts.items())}


def _latest(moments: Iterable[datetime | None]) -> datetime | None:
    present = [m for m in moments if m is not None]
    return max(present) if present else None
