"""The ground truth, recomputed from what really happened, and the read models compared
with it.

The :class:`Truth` is recomputed without the projection code: the customers' fields from
every event stored in the event store (whatever commands really committed, retries
included), the accounts, KYC and contacts from the upstream records generated, and for
every aggregate the versions that exist, which the ledger must hold exactly once each.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from crm_backbone.projection import Document
from crm_backbone.readmodel import guard_key
from crm_customer.application import CustomerApplication
from crm_events import contact_log as cl
from crm_events import core_banking as cb
from crm_events.envelope import Envelope
from crm_events.registry import EventPayload
from pymongo.asynchronous.database import AsyncDatabase

from faults.ledger import LEDGER
from faults.plan import CUSTOMER_SOURCE, Plan

Fields = dict[str, Any]
"""Expected values by dotted path in a customer's view document."""


@dataclass
class Truth:
    """What the read models must hold once every event is applied exactly once."""

    customers: dict[str, Fields]
    """Customer id -> dotted path -> value (``accounts{}``: the account ids, sorted;
    ``contacts[]``: the ids of the last ten contacts, newest first)."""
    versions: dict[str, int]
    """Ledger key -> versions that exist (1..n)."""
    stored_events: int
    upstream_events: int

    @property
    def events(self) -> int:
        return self.stored_events + self.upstream_events


def stored_events(app: CustomerApplication) -> Iterator[Any]:
    """Every event of the store's notification log, as domain events, in order."""
    position: int | None = None
    while True:
        page = app.recorder.select_notifications(
            start=position, limit=500, inclusive_of_start=position is None
        )
        if not page:
            return
        for notification in page:
            yield app.mapper.to_domain_event(notification)
        position = page[-1].id


def ground_truth(app: CustomerApplication, plan: Plan) -> Truth:
    """The expected read models, from the event store and the upstream records."""
    customers: dict[str, Fields] = defaultdict(dict)
    versions: dict[str, int] = {}
    stored = 0
    for event in stored_events(app):
        stored += 1
        subject = str(event.subject)
        key = guard_key(CUSTOMER_SOURCE, subject)
        versions[key] = max(versions.get(key, 0), event.originator_version)
        _customer_fields(customers[subject], type(event).__qualname__, event)
    contacts: dict[str, list[tuple[datetime, str]]] = defaultdict(list)
    upstream = plan.upstream_events
    for envelope in upstream:
        key = guard_key(envelope.source, envelope.aggregateid)
        versions[key] = max(versions.get(key, 0), envelope.aggregateversion)
        data = envelope.data
        if isinstance(data, cl.ContactLogged):
            contacts[data.customer_id].append((data.started_at, envelope.aggregateid))
        else:
            _bank_fields(customers, envelope)
    for customer_id, logged in contacts.items():
        fields = customers[customer_id]
        fields["contact_count"] = len(logged)
        fields["last_contact_at"] = max(at for at, _ in logged)
        newest = sorted(logged, key=lambda c: (-c[0].timestamp(), c[1]))[:10]
        fields["contacts[]"] = [contact_id for _, contact_id in newest]
    for fields in customers.values():
        accounts = {path.split(".")[1] for path in fields if path.startswith("accounts.")}
        if accounts:
            fields["accounts{}"] = sorted(accounts)
    return Truth(dict(customers), versions, stored, len(upstream))


def _customer_fields(fields: Fields, kind: str, event: Any) -> None:
    """Fold one stored customer event into the customer's expected fields."""
    if kind == "Customer.Registered":
        fields |= {
            "customer_id": event.subject,
            "registered": True,
            "customer_type": event.customer_type,
            "name.full_name": event.name["full_name"],
            "status": event.status,
            "branch_id": event.branch_id,
            "profile.phone": event.phone,
            "profile.email": event.email,
        }
    elif kind == "Customer.ProfileUpdated":
        for name in ("phone", "email"):
            if getattr(event, name) is not None:
                fields[f"profile.{name}"] = getattr(event, name)
    elif kind == "Customer.StatusChanged":
        fields["status"] = event.status
    elif kind == "Customer.SegmentChanged":
        fields["segment.value_band"] = event.value_band
    elif kind == "Customer.ManagerAssigned":
        fields |= {"manager_id": event.manager_id, "branch_id": event.branch_id}
    elif kind == "Customer.ConsentChanged":
        fields[f"consent.{event.channel}.opted_in"] = event.opted_in
    else:
        raise AssertionError(f"the workload does not issue commands that store {kind}")


def _bank_fields(customers: dict[str, Fields], envelope: Envelope[EventPayload]) -> None:
    """Fold one core-banking event into its customer's expected fields."""
    data = envelope.data
    if isinstance(data, cb.KycUpdated):
        fields = customers[envelope.aggregateid]
        fields["kyc.kyc_status"] = data.kyc_status.value
        fields["kyc.risk_rating"] = data.risk_rating.value
        return
    if isinstance(data, cb.CustomerDataChanged):
        return  # core data reaches the view through the customer's own events
    account = f"accounts.{envelope.aggregateid}"
    if isinstance(data, cb.AccountOpened):
        fields = customers[data.customer_id]
        fields[f"{account}.status"] = "open"
        fields[f"{account}.product_type"] = data.product_type.value
    elif isinstance(data, cb.AccountClosed):
        customers[data.customer_id][f"{account}.status"] = "closed"
    elif isinstance(data, cb.HoldingBalanceChanged):
        fields = customers[data.customer_id]
        fields[f"{account}.balance.amount"] = Decimal(data.balance.amount)
        fields[f"{account}.balance.currency"] = data.balance.currency
        last = fields.get("last_transaction_at") or data.changed_at
        fields["last_transaction_at"] = max(last, data.changed_at)
    elif isinstance(data, cb.ProductMaturityScheduled):
        customers[data.customer_id][f"maturities.{envelope.aggregateid}.maturity_date"] = (
            data.maturity_date.isoformat()
        )
    else:
        raise AssertionError(f"unexpected upstream event {envelope.type}")


# --- Comparing ------------------------------------------------------------------------


@dataclass
class Verdict:
    """The read models against the truth."""

    lost: int = 0
    """Versions that exist but the ledger never applied."""
    twice: int = 0
    """Applications beyond the first of a version (ledger), and contacts counted twice."""
    mismatches: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.lost == 0 and self.twice == 0 and not self.mismatches


async def compare(database: AsyncDatabase[Document], truth: Truth) -> Verdict:
    """Every customer view field and every ledger document against the truth."""
    verdict = Verdict()
    ledger = {doc["_id"]: doc async for doc in database[LEDGER].find()}
    for key, last in truth.versions.items():
        doc = ledger.pop(key, None)
        applied: list[int] = doc["versions"] if doc else []
        distinct = set(applied)
        verdict.lost += sum(1 for v in range(1, last + 1) if v not in distinct)
        verdict.twice += len(applied) - len(distinct)
        if distinct - set(range(1, last + 1)):
            verdict.mismatches.append(f"ledger {key}: versions that do not exist {distinct}")
        if doc and doc.get("applied") != len(applied):
            verdict.mismatches.append(f"ledger {key}: applied {doc.get('applied')} != {applied}")
    verdict.mismatches += [f"ledger {key}: no such aggregate" for key in ledger]
    views = {doc["_id"]: doc async for doc in database["customers"].find()}
    for customer_id, fields in truth.customers.items():
        doc = views.pop(customer_id, None)
        if doc is None:
            verdict.mismatches.append(f"customer {customer_id}: no view document")
            continue
        for path, expected in fields.items():
            actual = _value(doc, path)
            if not _same(expected, actual):
                verdict.mismatches.append(
                    f"customer {customer_id} {path}: {actual!r}, expected {expected!r}"
                )
        if isinstance(count := doc.get("contact_count"), int):
            verdict.twice += max(0, count - fields.get("contact_count", 0))
    verdict.mismatches += [f"customer {key}: not in the truth" for key in views]
    return verdict


def _value(doc: Document, path: str) -> Any:
    if path.endswith("{}"):
        return sorted(doc.get(path[:-2]) or {})
    if path.endswith("[]"):
        return [c.get("contact_id") for c in doc.get(path[:-2]) or []]
    value: Any = doc
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _same(expected: Any, actual: Any) -> bool:
    if isinstance(expected, Decimal):
        return isinstance(actual, str) and Decimal(actual) == expected
    if isinstance(expected, datetime):
        millis = expected.replace(microsecond=expected.microsecond // 1000 * 1000)
        return isinstance(actual, datetime) and actual == millis
    return bool(expected == actual)
