"""Daily closing balances of customers' asset accounts, what the balance-fall rule reads.

``balance_history``: one document per customer. Each asset account (``ASSET_TYPES``)
keeps its currency, its opening and closing days, and a ring of ``DAYS_KEPT`` day slots
(slot = the day's ordinal modulo ``DAYS_KEPT``), each ``{day, balance}``: the balance
after the account's last change that day. Bounded (no account ever holds more than
``DAYS_KEPT`` slots) with no pruning pass; a slot still holding a day older than the one
asked about is simply an older closing. One account's events apply in version order, so
the last write of a day is that day's closing; different accounts write different paths,
so their order does not matter, and the engine's guards make redelivery change nothing.

``latest_at``: the latest balance change the customer's document holds; the greatest over
all documents is the book's time (``worklists.book_time``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import date
from decimal import Decimal
from typing import ClassVar

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
    closing = {"day": day.isoformat(), "balance": format(d.balance.amount, "f")}
    yield ViewUpdate(
        BALANCE_HISTORY,
        d.customer_id,
        {
            "$set": {
                f"{account}.currency": d.balance.currency,
                f"{account}.days.{day_slot(day)}": closing,
            },
            "$max": {"latest_at": d.changed_at},
        },
    )


def account_opened(e: Event) -> Iterator[ViewUpdate]:
    d = e.data
    assert isinstance(d, cb.AccountOpened)
    if d.product_type not in cb.ASSET_TYPES:
        return
    opened = {f"accounts.{field_key(e.aggregateid)}.opened_on": d.opened_on.isoformat()}
    yield ViewUpdate(BALANCE_HISTORY, d.customer_id, {"$set": opened})


def account_closed(e: Event) -> Iterator[ViewUpdate]:
    d = e.data
    assert isinstance(d, cb.AccountClosed)
    closed = {f"accounts.{field_key(e.aggregateid)}.closed_on": d.closed_on.isoformat()}
    yield ViewUpdate(BALANCE_HISTORY, d.customer_id, {"$set": closed})


def histories(document: Mapping[str, object] | None) -> tuple[AccountHistory, ...]:
    """The accounts of a ``balance_history`` document, as the churn rules read them (an
    account whose currency is not known yet, closed before any balance, is left out)."""
    accounts = (document or {}).get("accounts", {})
    assert isinstance(accounts, dict)
    return tuple(
        AccountHistory(
            currency=account["currency"],
            closings={
                date.fromisoformat(slot["day"]): Decimal(slot["balance"])
                for slot in account.get("days", {}).values()
            },
            opened_on=_day(account.get("opened_on")),
            closed_on=_day(account.get("closed_on")),
        )
        for account in accounts.values()
        if "currency" in account
    )


def _day(text: str | None) -> date | None:
    return None if text is None else date.fromisoformat(text)


class BalanceHistory(Projection):
    """Daily closing balances of asset accounts, per customer."""

    name: ClassVar[str] = "balance_history"
    topics: ClassVar[tuple[str, ...]] = (COREBANKING_ACCOUNTS.name,)

    def handlers(self) -> Mapping[str, Handler]:
        return {
            cb.AccountOpened.event_type: account_opened,
            cb.HoldingBalanceChanged.event_type: balance_changed,
            cb.AccountClosed.event_type: account_closed,
        }

    async def setup(self, database: AsyncDatabase[Document]) -> None:
        await database[BALANCE_HISTORY].create_indexes([IndexModel([("latest_at", DESCENDING)])])
