"""Core banking's accounts: opened and closed, balances, product maturities."""

from __future__ import annotations

from collections.abc import Iterator

from crm_backbone.projection import Handler, ViewUpdate
from crm_backbone.readmodel import field_key
from crm_events import core_banking as cb
from crm_events.registry import EventPayload
from crm_events.topics import COREBANKING_ACCOUNTS

from crm_customer.views.documents import Event, entry, flat, of_customer

TOPIC = COREBANKING_ACCOUNTS


def account_opened(e: Event) -> Iterator[ViewUpdate]:
    d = e.data
    assert isinstance(d, cb.AccountOpened)
    account = d.model_dump(exclude={"customer_id"}) | {"account_id": e.aggregateid}
    yield of_customer(
        d.customer_id, e, {"$set": flat(entry("accounts", e), account | {"status": "open"})}
    )


def account_closed(e: Event) -> Iterator[ViewUpdate]:
    d = e.data
    assert isinstance(d, cb.AccountClosed)
    closed = {"status": "closed", "closed_on": d.closed_on, "account_id": e.aggregateid}
    yield of_customer(d.customer_id, e, {"$set": flat(entry("accounts", e), closed)})


def balance_changed(e: Event) -> Iterator[ViewUpdate]:
    d = e.data
    assert isinstance(d, cb.HoldingBalanceChanged)
    fields = {
        "account_id": e.aggregateid,
        "product_type": d.product_type,
        "balance": d.balance,
        "balance_changed_at": d.changed_at,
    }
    yield of_customer(
        d.customer_id,
        e,
        {"$set": flat(entry("accounts", e), fields), "$max": {"last_transaction_at": d.changed_at}},
    )


def maturity_scheduled(e: Event) -> Iterator[ViewUpdate]:
    d = e.data
    assert isinstance(d, cb.ProductMaturityScheduled)
    maturity = d.model_dump(exclude={"customer_id"}) | {"account_id": e.aggregateid}
    yield of_customer(
        d.customer_id, e, {"$set": flat(f"maturities.{field_key(e.aggregateid)}", maturity)}
    )


HANDLERS: dict[type[EventPayload], Handler] = {
    cb.AccountOpened: account_opened,
    cb.AccountClosed: account_closed,
    cb.HoldingBalanceChanged: balance_changed,
    cb.ProductMaturityScheduled: maturity_scheduled,
}
