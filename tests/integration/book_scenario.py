"""A generated book for the worklist tests: customers, their accounts' balances day by day,
maturities, contacts and complaints, as the events the streams carry; and, computed here
from the same plain facts (never by the service's code), the churn signals, cross-sell
gaps and dormancy verdicts ``docs/analysis.md`` says they give."""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from crm_backbone.testing import InMemoryRecord
from crm_events import contact_log as cl
from crm_events import core_banking as cb
from crm_events import customer as cu
from crm_events import opportunity as op
from crm_events.common import Channel, CustomerName, CustomerType, Money, ValueBand
from crm_events.envelope import Envelope
from crm_events.registry import EventPayload
from crm_events.topics import Service

OWNERS = (("RM-0001", "BR-001"), ("RM-0002", "BR-001"), ("RM-0005", "BR-002"))
ASSETS = ("current", "savings", "time_deposit", "fund")
SPAN = 100
"""Days the book covers; the last asset balance change falls on the last of them."""


@dataclass
class Account:
    account_id: str
    product_type: str
    currency: str
    opened: int
    balances: list[tuple[int, int]] = field(default_factory=list)
    """(day, balance after the change), in order; several on one day allowed."""
    closed: int | None = None
    maturities: list[int] = field(default_factory=list)
    """Maturity days as scheduled, in order (a renewal schedules a later one)."""


@dataclass
class Person:
    customer_id: str
    status: str
    manager_id: str
    branch_id: str
    band: str | None
    accounts: list[Account] = field(default_factory=list)
    contacts: list[int] = field(default_factory=list)
    complaints: list[tuple[int, bool]] = field(default_factory=list)
    """(day logged, resolved since)."""


def generate(seed: int, customers: int, origin: date) -> list[Person]:
    rng = random.Random(seed)
    book = []
    for i in range(customers):
        manager_id, branch_id = OWNERS[i % len(OWNERS)]
        status = "prospect" if i % 10 == 7 else "dormant" if i % 10 == 8 else "active"
        band = None if i % 11 == 10 else rng.choice([b.value for b in ValueBand])
        person = Person(f"C{i:04d}", status, manager_id, branch_id, band)
        sleeper = i % 6 == 5  # nothing happens after its first days
        last = 5 if sleeper else SPAN
        for n in range(rng.randint(1, 3)):
            person.accounts.append(_asset(rng, f"{person.customer_id}.{n}", last))
        if rng.random() < 0.3:
            loan = Account(f"{person.customer_id}.L", "loan", "CNY", rng.randint(0, last))
            loan.balances = [(loan.opened, 50_000), (rng.randint(loan.opened, last), 40_000)]
            person.accounts.append(loan)
        person.contacts = sorted(rng.randint(0, last) for _ in range(rng.randint(0, 2)))
        if rng.random() < 0.25:
            person.complaints.append((rng.randint(0, last), rng.random() < 0.5))
        book.append(person)
    book[0].accounts[0].balances.append((SPAN, 1))  # the book's last day
    book[0].accounts[0].closed = None
    return book


def _asset(rng: random.Random, account_id: str, last: int) -> Account:
    kind = rng.choice(ASSETS)
    opened = rng.randint(0, min(last, 70))
    account = Account(account_id, kind, rng.choice(["CNY", "CNY", "USD"]), opened)
    balance = rng.randint(10, 1000) * 100
    account.balances.append((opened, balance))
    for day in sorted(rng.randint(opened, last) for _ in range(rng.randint(0, 6))):
        balance = int(balance * rng.choice([0.2, 0.6, 0.9, 1.0, 1.1, 1.5]))
        account.balances.append((day, balance))
    if kind == "time_deposit":
        due = rng.randint(SPAN - 110, SPAN + 10)
        account.maturities.append(due)
        if rng.random() < 0.3 and due <= last:
            account.maturities.append(due + 90)  # renewed on its maturity day
    if rng.random() < 0.15:
        account.closed = account.balances[-1][0]
    return account


def at(origin: date, day: int, minute: int = 0) -> datetime:
    return datetime(origin.year, origin.month, origin.day, 9, tzinfo=UTC) + timedelta(
        days=day, minutes=minute
    )


def money(amount: int, currency: str) -> Money:
    return Money(amount=Decimal(amount), currency=currency)


Stream = list[InMemoryRecord]


def streams(book: list[Person], origin: date) -> list[Stream]:
    """Each aggregate's events in its own order (versions from 1)."""
    out: list[Stream] = []
    for person in book:
        out.append(_records(Service.CUSTOMER, person.customer_id, _customer(person), origin))
        for account in person.accounts:
            events = _account(person.customer_id, account, origin)
            out.append(_records(Service.CORE_BANKING, account.account_id, events, origin))
        for n, day in enumerate(person.contacts):
            out.append(contact_stream(person.customer_id, person.manager_id, n, day, origin))
        for n, (day, resolved) in enumerate(person.complaints):
            aggregate = f"ND-{person.customer_id}-{n}"
            out.append(
                _records(
                    Service.OPPORTUNITY,
                    aggregate,
                    _complaint(person, day, resolved, origin),
                    origin,
                )
            )
    return out


def contact_stream(customer_id: str, manager_id: str, n: int, day: int, origin: date) -> Stream:
    """The customer's ``n``-th contact, a call at 09:30 on ``day``."""
    contact = cl.ContactLogged(
        customer_id=customer_id,
        category=cl.ContactCategory.PHONE,
        summary="call",
        called=True,
        outcome=cl.ContactOutcome.REACHED,
        manager_id=manager_id,
        started_at=at(origin, day, 30),
    )
    return _records(Service.CONTACT_LOG, f"CT-{customer_id}-{n}", [(day, contact)], origin)


def _customer(person: Person) -> list[tuple[int, EventPayload]]:
    events: list[tuple[int, EventPayload]] = [
        (
            0,
            cu.CustomerRegistered(
                customer_type=CustomerType.INDIVIDUAL,
                name=CustomerName(full_name=f"Book {person.customer_id}", family_name="Book"),
                status=cu.CustomerStatus.PROSPECT
                if person.status == "prospect"
                else cu.CustomerStatus.ACTIVE,
                branch_id=person.branch_id,
            ),
        ),
        (
            0,
            cu.RelationshipManagerAssigned(
                manager_id=person.manager_id, branch_id=person.branch_id
            ),
        ),
    ]
    if person.band is not None:
        events.append((0, cu.CustomerSegmentChanged(value_band=ValueBand(person.band), reason="")))
    if person.status == "dormant":
        changed = cu.CustomerStatusChanged(
            previous_status=cu.CustomerStatus.ACTIVE,
            status=cu.CustomerStatus.DORMANT,
            reason="manager's decision",
        )
        events.append((1, changed))
    return events


def _account(customer_id: str, account: Account, origin: date) -> list[tuple[int, EventPayload]]:
    opened = cb.AccountOpened(
        customer_id=customer_id,
        product_code="P1",
        product_name="Product",
        product_type=cb.ProductType(account.product_type),
        currency=account.currency,
        branch_id="BR-001",
        opened_on=origin + timedelta(days=account.opened),
    )
    timeline: list[tuple[int, int, EventPayload]] = []
    previous = 0
    for n, (day, balance) in enumerate(account.balances):
        changed = cb.HoldingBalanceChanged(
            customer_id=customer_id,
            product_type=cb.ProductType(account.product_type),
            previous_balance=money(previous, account.currency),
            balance=money(balance, account.currency),
            changed_at=at(origin, day, n),
        )
        timeline.append((day, 1, changed))
        previous = balance
    for n, due in enumerate(account.maturities):
        scheduled = cb.ProductMaturityScheduled(
            customer_id=customer_id,
            product_code="P1",
            product_type=cb.ProductType(account.product_type),
            maturity_date=origin + timedelta(days=due),
            amount_at_maturity=money(previous, account.currency),
        )
        timeline.append((account.opened if n == 0 else account.maturities[n - 1], 0, scheduled))
    if account.closed is not None:
        closed = cb.AccountClosed(
            customer_id=customer_id, closed_on=origin + timedelta(days=account.closed)
        )
        timeline.append((account.closed, 2, closed))
    timeline.sort(key=lambda entry: (entry[0], entry[1]))
    return [(account.opened, opened), *((day, event) for day, _, event in timeline)]


def _complaint(
    person: Person, day: int, resolved: bool, origin: date
) -> list[tuple[int, EventPayload]]:
    logged = op.NeedLogged(
        customer_id=person.customer_id,
        kind=op.NeedKind.COMPLAINT,
        summary="fees",
        content="charged twice",
        severity=op.Severity.HIGH,
        urgency=op.Urgency.HIGH,
        channel=Channel.PHONE,
        started_at=at(origin, day),
        sla_due_at=at(origin, day + 2),
    )
    if not resolved:
        return [(day, logged)]
    done = op.NeedResolved(
        customer_id=person.customer_id, resolution="refunded", resolved_at=at(origin, day + 1)
    )
    return [(day, logged), (day + 1, done)]


def _records(
    service: Service, aggregate: str, events: list[tuple[int, EventPayload]], origin: date
) -> Stream:
    return [
        InMemoryRecord.of(
            Envelope.new(
                payload,
                aggregate,
                version,
                actor="test",
                source=service.source,
                time=at(origin, day, version),
            ),
            0,
        )
        for version, (day, payload) in enumerate(events, start=1)
    ]


# Expected, from the plain facts ----------------------------------------------------------


def book_day(book: list[Person]) -> int:
    """The last day an asset balance changed."""
    return max(
        day for p in book for a in p.accounts if a.product_type in ASSETS for day, _ in a.balances
    )


def _total(person: Person, day: int) -> dict[str, int]:
    totals: dict[str, int] = defaultdict(int)
    for a in person.accounts:
        if a.product_type not in ASSETS:
            continue
        if a.closed is not None and a.closed <= day:
            totals[a.currency] += 0
            continue
        known = [balance for d, balance in a.balances if d <= day]
        totals[a.currency] += known[-1] if known else 0
    return totals


def expected_churn(person: Person, today: int, fall_days: int = 30) -> list[str]:
    """The signal kinds the person shows on ``today`` with the documented defaults."""
    if person.status not in ("active", "dormant"):
        return []
    kinds = []
    before, now = _total(person, today - fall_days), _total(person, today)
    if any(was > 0 and (was - now[c]) * 100 > 20 * was for c, was in before.items()):
        kinds.append("balance_falling")
    if not person.contacts or today - max(person.contacts) > 60:
        kinds.append("no_contact")
    days = [d for a in person.accounts for d, _ in a.balances]
    if not days or today - max(days) > 60:
        kinds.append("no_transaction")
    if any(not resolved for _, resolved in person.complaints):
        kinds.append("open_complaint")
    for a in person.accounts:
        if not a.maturities:
            continue
        due = a.maturities[-1]
        replaced = any(
            b.product_type == a.product_type and b.opened >= due - 7 for b in person.accounts
        )
        if today - 90 <= due <= today - 7 and not replaced:
            kinds.append("maturity_not_rolled_over")
            break
    return kinds


def held(person: Person) -> set[str]:
    return {a.product_type for a in person.accounts if a.closed is None}


def expected_cross_sell(
    book: list[Person], min_rate: int, min_customers: int
) -> dict[str, list[str]]:
    """Active customers with a segment -> the usual types of their segment they lack."""
    members: dict[str, list[Person]] = defaultdict(list)
    for p in book:
        if p.status == "active" and p.band is not None:
            members[p.band].append(p)
    usual: dict[str, set[str]] = {}
    for band, people in members.items():
        counts: dict[str, int] = defaultdict(int)
        for p in people:
            for t in held(p):
                counts[t] += 1
        big_enough = len(people) >= min_customers
        usual[band] = {
            t for t, n in counts.items() if big_enough and n * 100 >= min_rate * len(people)
        }
    return {
        p.customer_id: sorted(usual[band] - held(p))
        for band, people in members.items()
        for p in people
        if usual[band] - held(p)
    }


def expected_dormant(person: Person, today: int, days: int = 90) -> bool:
    if person.status != "active":
        return False
    moments = person.contacts + [d for a in person.accounts for d, _ in a.balances]
    return bool(moments) and today - max(moments) > days


def in_reach(staff_id: str, person: Person) -> bool:
    """docs/access.md on the test organisation, by hand."""
    if staff_id.startswith("RM-"):
        return person.manager_id == staff_id
    if staff_id == "BM-0001":
        return person.branch_id == "BR-001"
    return staff_id == "HO-0001"
