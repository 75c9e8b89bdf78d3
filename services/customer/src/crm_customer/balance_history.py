"""Daily opening and closing balances of customers' asset accounts, what the balance-fall
rule reads (``churn.AccountHistory``).

``balance_history``: one document per customer. Each asset account (``ASSET_TYPES``)
keeps its currency, its closing day once closed, and a ring of ``DAYS_KEPT`` day slots
(slot = the day's ordinal modulo ``DAYS_KEPT``), each holding two ``$max``-ed texts:

- ``close``: ``<day>|<version>|<balance>``, the greatest is the day's last change;
- ``open``: ``<day>|<10^12 - version>|<previous balance>``, the greatest is the balance
  before the day's first change.

The day leads both, so a slot reused by a later day takes the later day's values; within a
day the version decides. ``$max`` makes every write commute: events of one account in any
order, late, or twice give the same document (the engine's guards skip the duplicates
anyway). Bounded without any pruning pass: an account never holds more than ``DAYS_KEPT``
slots, and the slots of the last ``DAYS_KEPT`` days it changed on are always complete.

``latest_at``: the latest balance change the customer's document holds; the greatest over
all documents is the book's time (``worklists.book_time``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import date, timedelta
from decimal import Decimal
from typing import Any, ClassVar

from crm_backbone.projection import Document, Handler, Projection, ViewUpdate
from crm_backbone.readmodel import field_key
from crm_events import core_banking as cb
from crm_events.envelope import Envelope
from crm_events.registry import EventPayload
from crm_events.topics import COREBANKING_ACCOUNTS
from pymongo import DESCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from crm_customer.churn import DAYS_KEPT, AccountHistory

BALANCE_HISTORY = "balance_history"
VERSION_SPAN = 10**12
"""Above any aggregate version: ``VERSION_SPAN - version`` orders a day's first change last."""

Event = Envelope[EventPayload]


def day_slot(day: date) -> str:
    return str(day.toordinal() % DAYS_KEPT)


def balance_changed(e: Event) -> Iterator[ViewUpdate]:
    d = e.data
    assert isinstance(d, cb.HoldingBalanceChanged)
    if d.product_type not in cb.ASSET_TYPES:
        return
    account = f"accounts.{field_key(e.aggregateid)}"
    day = d.changed_at.date()
    slot = f"{account}.days.{day_slot(day)}"
    version = e.aggregateversion
    close = f"{day.isoformat()}|{version:013d}|{d.balance.amount:f}"
    opening = f"{day.isoformat()}|{VERSION_SPAN - version:013d}|{d.previous_balance.amount:f}"
    yield ViewUpdate(
        BALANCE_HISTORY,
        d.customer_id,
        {
            "$set": {f"{account}.currency": d.balance.currency},
            "$max": {f"{slot}.close": close, f"{slot}.open": opening, "latest_at": d.changed_at},
        },
    )


def account_closed(e: Event) -> Iterator[ViewUpdate]:
    d = e.data
    assert isinstance(d, cb.AccountClosed)
    closed = {f"accounts.{field_key(e.aggregateid)}.closed_on": d.closed_on.isoformat()}
    yield ViewUpdate(BALANCE_HISTORY, d.customer_id, {"$set": closed})


def _parsed(text: str) -> tuple[date, Decimal]:
    day, _, amount = text.split("|")
    return date.fromisoformat(day), Decimal(amount)


def account_history(account: Mapping[str, Any]) -> AccountHistory:
    """One account of a ``balance_history`` document: its complete days only (those of
    the ``DAYS_KEPT`` days before its last change; an older slot not yet reused may have
    missed later changes)."""
    days: dict[date, tuple[Decimal, Decimal]] = {}
    for slot in account.get("days", {}).values():
        day, closing = _parsed(slot["close"])
        days[day] = (_parsed(slot["open"])[1], closing)
    if days:
        oldest = max(days) - timedelta(days=DAYS_KEPT)
        days = {day: figures for day, figures in days.items() if day > oldest}
    closed_on = account.get("closed_on")
    return AccountHistory(
        account["currency"], days, date.fromisoformat(closed_on) if closed_on else None
    )


def histories(document: Mapping[str, Any] | None) -> tuple[AccountHistory, ...]:
    """The asset accounts of a ``balance_history`` document (an account closed before any
    balance change, or not an asset, has no currency here and is left out)."""
    accounts = (document or {}).get("accounts", {})
    return tuple(account_history(a) for a in accounts.values() if "currency" in a)


class BalanceHistory(Projection):
    """Daily opening and closing balances of asset accounts, per customer."""

    name: ClassVar[str] = "balance_history"
    topics: ClassVar[tuple[str, ...]] = (COREBANKING_ACCOUNTS.name,)

    def handlers(self) -> Mapping[str, Handler]:
        return {
            cb.HoldingBalanceChanged.event_type: balance_changed,
            cb.AccountClosed.event_type: account_closed,
        }

    async def setup(self, database: AsyncDatabase[Document]) -> None:
        await database[BALANCE_HISTORY].create_indexes([IndexModel([("latest_at", DESCENDING)])])
