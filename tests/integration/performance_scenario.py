"""A generated book for the league table's tests: customers owned by managers who change,
accounts whose balances change on random days (several times on some), contacts, tasks,
complaints and opportunities won; the events they make, and the figures expected of them,
worked out day by day from the plain facts (never by the service's code)."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from crm_backbone.testing import InMemoryRecord
from crm_events import contact_log as cl
from crm_events import customer as cu
from crm_events import opportunity as op
from crm_events import organisation as hr
from crm_events.common import Channel, CustomerName, CustomerType
from crm_events.registry import EventPayload
from crm_events.topics import Service

from tests.integration.book_scenario import Account, _account, _records, at, contact_stream, money

MANAGERS = {"RM-0001": "BR-001", "RM-0002": "BR-001", "RM-0005": "BR-002", "RM-0009": "BR-003"}
REGIONS = {"BR-001": "RG-01", "BR-002": "RG-01", "BR-003": "RG-02"}
RATES = {"CNY": Decimal(1), "USD": Decimal("7.1")}
DEPOSITS = {"current", "savings", "time_deposit"}
LOANS = {"loan"}
AUM = {"current", "savings", "time_deposit", "wealth_management", "fund", "insurance"}
TYPES = ["current", "savings", "time_deposit", "loan", "fund", "credit_card"]


@dataclass
class Customer:
    customer_id: str
    registered: int
    owners: list[tuple[int, str]]
    """(day, manager), in order; the first on the registration day."""
    lost: int | None = None
    accounts: list[Account] = field(default_factory=list)
    contacts: list[int] = field(default_factory=list)
    tasks: list[tuple[int, int, int]] = field(default_factory=list)
    """(scheduled day, due day, completed day), minutes apart by the index."""
    complaints: list[tuple[int, int, int]] = field(default_factory=list)
    """(logged day, SLA hours, hours to resolve)."""
    won: list[tuple[int, int, str]] = field(default_factory=list)
    """(won day, value, currency)."""


def generate(seed: int, customers: int, span: int) -> list[Customer]:
    rng = random.Random(seed)
    book = []
    for i in range(customers):
        registered = rng.randrange(span // 2)
        owners = [(registered, rng.choice(list(MANAGERS)))]
        for _ in range(rng.choice([0, 0, 1, 2])):
            owners.append((rng.randrange(owners[-1][0], span), rng.choice(list(MANAGERS))))
        person = Customer(f"C9{i:07d}", registered, owners)
        if rng.random() < 0.2:
            person.lost = rng.randrange(registered + 1, span)
        for n in range(rng.randint(1, 3)):
            account = Account(
                f"AC-{i}-{n}", rng.choice(TYPES), rng.choice(["CNY", "CNY", "USD"]), registered
            )
            days = sorted(rng.randrange(registered, span) for _ in range(rng.randint(1, 6)))
            account.balances = [(d, rng.randrange(0, 500_000)) for d in days]
            if rng.random() < 0.2:
                account.closed = rng.randrange(days[-1], span)
                account.balances.append((account.closed, 0))
            person.accounts.append(account)
        person.contacts = [rng.randrange(registered, span) for _ in range(rng.randint(0, 4))]
        for _ in range(rng.randint(0, 2)):
            scheduled = rng.randrange(registered, span - 3)
            due = scheduled + rng.randint(0, 3)
            person.tasks.append((scheduled, due, due + rng.choice([-1, 0, 0, 1, 2])))
        for _ in range(rng.randint(0, 1)):
            person.complaints.append(
                (rng.randrange(registered, span - 3), rng.choice([24, 48]), rng.randint(1, 72))
            )
        for _ in range(rng.randint(0, 1)):
            won = rng.randrange(registered + 1, span)
            person.won.append((won, rng.randrange(1_000, 90_000), rng.choice(["CNY", "USD"])))
        book.append(person)
    return book


# The events -------------------------------------------------------------------------------

Stream = list[InMemoryRecord]


def organisation(origin: date) -> list[Stream]:
    return [
        _records(
            Service.HR,
            branch,
            [(0, hr.BranchOpened(name=branch, region_id=region, opened_on=origin))],
            origin,
        )
        for branch, region in REGIONS.items()
    ]


def streams(book: list[Customer], origin: date) -> list[Stream]:
    """Each aggregate's events in its own order (versions from 1)."""
    out: list[Stream] = []
    for p in book:
        out.append(_records(Service.CUSTOMER, p.customer_id, _customer(p), origin))
        for account in p.accounts:
            events = _account(p.customer_id, account, origin)
            out.append(_records(Service.CORE_BANKING, account.account_id, events, origin))
        for n, day in enumerate(p.contacts):  # whoever made it, credited to the book
            out.append(contact_stream(p.customer_id, "RM-0001", n, day, origin))
        for n, task in enumerate(p.tasks):
            aggregate = f"AT-{p.customer_id}-{n}"
            out.append(_records(Service.CONTACT_LOG, aggregate, _task(p, task, n, origin), origin))
        for n, complaint in enumerate(p.complaints):
            events = _complaint(p, complaint, origin)
            out.append(_records(Service.OPPORTUNITY, f"ND-{p.customer_id}-{n}", events, origin))
        for n, won in enumerate(p.won):
            events = _opportunity(p, won, origin)
            out.append(_records(Service.OPPORTUNITY, f"OP-{p.customer_id}-{n}", events, origin))
    return out


def _customer(p: Customer) -> list[tuple[int, EventPayload]]:
    events: list[tuple[int, EventPayload]] = [
        (
            p.registered,
            cu.CustomerRegistered(
                customer_type=CustomerType.INDIVIDUAL,
                name=CustomerName(full_name=f"League {p.customer_id}", family_name="League"),
                status=cu.CustomerStatus.ACTIVE,
                branch_id=MANAGERS[p.owners[0][1]],
            ),
        )
    ]
    for day, manager in p.owners:
        assigned = cu.RelationshipManagerAssigned(manager_id=manager, branch_id=MANAGERS[manager])
        events.append((day, assigned))
    if p.lost is not None:
        lost = cu.CustomerStatusChanged(
            previous_status=cu.CustomerStatus.ACTIVE,
            status=cu.CustomerStatus.CHURNED,
            reason="left",
        )
        events.append((p.lost, lost))
    return sorted(events, key=lambda e: e[0])


def _task(
    p: Customer, task: tuple[int, int, int], n: int, origin: date
) -> list[tuple[int, EventPayload]]:
    scheduled, due, completed = task
    first_due = at(origin, due + 5)  # rescheduled to the real due time
    return [
        (
            scheduled,
            cl.ActivityScheduled(
                customer_id=p.customer_id,
                category=cl.ActivityCategory.FOLLOW_UP,
                description="follow up",
                priority=cl.Priority.NORMAL,
                due_at=first_due,
                assignee_id="RM-0001",
                started_at=at(origin, scheduled),
            ),
        ),
        (
            scheduled,
            cl.ActivityRescheduled(
                customer_id=p.customer_id,
                due_at=at(origin, due, 60),
                started_at=at(origin, scheduled),
            ),
        ),
        (
            max(completed, scheduled),
            cl.ActivityCompleted(
                customer_id=p.customer_id, completed_at=completed_at(origin, task)
            ),
        ),
    ]


def completed_at(origin: date, task: tuple[int, int, int]) -> datetime:
    scheduled, _, completed = task
    return at(origin, max(completed, scheduled), 60)


def _complaint(
    p: Customer, complaint: tuple[int, int, int], origin: date
) -> list[tuple[int, EventPayload]]:
    day, sla_hours, hours = complaint
    logged_at = at(origin, day)
    logged = op.NeedLogged(
        customer_id=p.customer_id,
        kind=op.NeedKind.COMPLAINT,
        summary="fees",
        content="charged twice",
        severity=op.Severity.HIGH,
        urgency=op.Urgency.HIGH,
        channel=Channel.PHONE,
        started_at=logged_at,
        sla_due_at=logged_at + timedelta(hours=sla_hours),
    )
    resolved_at = logged_at + timedelta(hours=hours)
    resolved = op.NeedResolved(
        customer_id=p.customer_id, resolution="refunded", resolved_at=resolved_at
    )
    return [(day, logged), (day, resolved)]


def _opportunity(
    p: Customer, won: tuple[int, int, str], origin: date
) -> list[tuple[int, EventPayload]]:
    day, value, currency = won
    created = op.OpportunityCreated(
        customer_id=p.customer_id,
        title="deposit",
        products=["P1"],
        probability=50,
        expected_value=money(value // 2, currency),
        start_date=origin,
        expected_close_date=origin + timedelta(days=day),
        manager_id="RM-0001",
        branch_id="BR-001",
        source=op.LeadSource.REFERRAL,
    )
    changed = op.OpportunityExpectedValueChanged(
        customer_id=p.customer_id,
        previous_expected_value=money(value // 2, currency),
        expected_value=money(value, currency),
    )
    stage = op.OpportunityStageChanged(
        customer_id=p.customer_id,
        previous_stage=op.OpportunityStage.OPPORTUNITY_CREATED,
        stage=op.OpportunityStage.CLOSED_WON,
        probability=100,
    )
    return [(day - 1, created), (day - 1, changed), (day, stage)]


# Expected, from the plain facts -----------------------------------------------------------


def owner_on(p: Customer, day: int) -> str | None:
    """The manager holding the customer on ``day``: the day's last assignment, or the
    latest before."""
    held = [manager for since, manager in p.owners if since <= day]
    return held[-1] if held else None


def closing(a: Account, day: int) -> int:
    balances = [balance for changed, balance in a.balances if changed <= day]
    return balances[-1] if balances else 0


ZERO = Decimal(0)


def expected_tallies(
    book: list[Customer], origin: date, first: date, last: date
) -> dict[str, dict[str, Decimal]]:
    """Manager → additive figures of the period ``first``..``last``, day by day."""
    start, end = (first - origin).days, (last - origin).days
    out: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for p in book:
        for day in range(start, end + 1):
            manager = owner_on(p, day)
            if manager is None:
                continue
            for a in p.accounts:
                if a.balances[0][0] > day:
                    continue
                value = closing(a, day) * RATES[a.currency]
                for name, kinds in (("deposits", DEPOSITS), ("loans", LOANS), ("aum", AUM)):
                    amount = value if a.product_type in kinds else ZERO
                    out[manager][f"{name}_day_sum"] += amount
                    if day == end:
                        out[manager][f"{name}_end"] += amount
        holder = owner_on(p, end)
        if holder is not None:
            out[holder]["customers"] += 1
            out[holder]["products"] += sum(
                1 for a in p.accounts if a.opened <= end and (a.closed is None or a.closed > end)
            )
        for name, day, extra in _facts(p, origin):
            if start <= day <= end and (manager := owner_on(p, day)) is not None:
                out[manager][name] += 1 if extra is None else extra
    return out


def _facts(p: Customer, origin: date) -> Iterable[tuple[str, int, Decimal | None]]:
    yield "new_customers", p.registered, None
    if p.lost is not None:
        yield "customers_lost", p.lost, None
    for day in p.contacts:
        yield "contacts", day, None
    for task in p.tasks:
        done = completed_at(origin, task)
        yield "tasks_done", (done.date() - origin).days, None
        if done <= at(origin, task[1], 60):
            yield "tasks_done_on_time", (done.date() - origin).days, None
    for day, sla_hours, hours in p.complaints:
        resolved = at(origin, day) + timedelta(hours=hours)
        yield "complaints_closed", (resolved.date() - origin).days, None
        if hours <= sla_hours:
            yield "complaints_closed_within_sla", (resolved.date() - origin).days, None
    for day, value, currency in p.won:
        yield "opportunities_won", day, None
        yield "won_value", day, value * RATES[currency]
