"""The single customer view: its shape, and how it is composed from the customer's
documents at read time.

What depends on the day (next birthday, next maturity, dormancy signals) is computed here,
and a survivor's view folds in the documents of the duplicates merged into it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from crm_backbone.projection import Document
from crm_backbone.readmodel import document_version
from crm_events.core_banking import ASSET_TYPES
from crm_events.customer import next_birthday
from crm_events.topics import Service
from pydantic import BaseModel, Field

from crm_customer.churn import (
    CustomerFacts,
    SignalKind,
    days_quiet,
    dormancy_reason,
    quiet_signal,
)
from crm_customer.views.documents import LAST_CONTACTS

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
    erased: dict[str, Any] | None = Field(
        None,
        description="Set once the customer's personal data was erased: when, by whom, on "
        "which legal basis; the person's data is gone, non-personal facts remain",
    )
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


def compose(
    documents: list[Document], resolved_from: str | None, *, today: date, dormancy_days: int
) -> CustomerView:
    """The view of the customer whose document is first in ``documents``, folding in the
    others (the duplicates merged into it), as of ``today``."""
    main = documents[0]
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
        {
            "account_id": a["account_id"],
            "product_type": a.get("product_type"),
            "maturity_date": a["maturity_date"],
        }
        for a in accounts
        if a.get("maturity_date") and a.get("status") == "open"
    ]
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
        erased=main.get("erased"),
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
        signals=_signals(main, last_contact, last_transaction, today, dormancy_days),
        updated_at=_latest(d.get("updated_at") for d in documents),
    )


def _signals(
    main: Document,
    last_contact: datetime | None,
    last_transaction: datetime | None,
    today: date,
    dormancy_days: int,
) -> Signals:
    """How long since the customer's last contact and transaction; the dormancy rule's
    verdict (``churn.dormancy_reason``) as of ``today``: the sweep moves such a customer to
    dormant."""
    facts = CustomerFacts(
        status=main.get("status"),
        last_contact_at=last_contact,
        last_transaction_at=last_transaction,
        reactivated_at=main.get("reactivated_at"),
    )
    quiet = [
        quiet_signal(SignalKind.NO_CONTACT, "contact", last_contact, today, dormancy_days),
        quiet_signal(
            SignalKind.NO_TRANSACTION, "transaction", last_transaction, today, dormancy_days
        ),
    ]
    watched = main.get("status") in ("active", "dormant")
    return Signals(
        last_contact_at=last_contact,
        last_transaction_at=last_transaction,
        days_since_contact=days_quiet(last_contact, today),
        days_since_transaction=days_quiet(last_transaction, today),
        dormancy_risk=dormancy_reason(facts, today, dormancy_days) is not None,
        reasons=[signal.detail for signal in quiet if signal is not None and watched],
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
