"""The ``manager_performance`` read model: what the league table (``performance.py``,
``performance_queries.py``) adds up, per customer, kept as long as the book.

Three collections, none holding anything of the person (ids, product types, amounts,
dates):

- ``performance_positions``: one document per customer and month (``<customer
  id>:<YYYY-MM>``). Each account of any product type keeps its product type, currency
  and a slot per day of the month it changed on, ``$max``-ed with ``<version>|<balance>``
  (the version zero-padded), so the day's last change wins whatever the order of
  arrival, late or twice. At most 31 slots per account and month: bounded.
- ``performance_books``: one document per customer: its owners over time (``owners.<day>``:
  ``$max``-ed ``<version>|<manager>|<branch>``, the day's last assignment wins; an owner
  holds the customer from that day until the next owner's day) and its accounts' opening
  and closing days (the products it holds).
- ``performance_facts``: one document per counted fact, named by its kind and aggregate:
  a registration, a customer lost (status became churned; one per such change), a contact,
  a task (its due time and completion), a need (complaint or not, its SLA due time and
  resolution), an opportunity (its expected value, and when won). ``on`` is the fact's
  moment, ``day`` its day; the read credits it to the customer's owner on that day.

Each fact stays with its aggregate, so the engine's per-aggregate version order and
guards make every handler's ``$set`` final whatever the streams' relative order.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any, ClassVar

from crm_backbone.projection import Document, Handler, Projection, ViewUpdate
from crm_backbone.readmodel import field_key
from crm_events import contact_log as cl
from crm_events import core_banking as cb
from crm_events import customer as cu
from crm_events import opportunity as op
from crm_events.envelope import Envelope
from crm_events.registry import EventPayload
from crm_events.topics import (
    CONTACTLOG_EVENTS,
    COREBANKING_ACCOUNTS,
    CUSTOMER_EVENTS,
    OPPORTUNITY_EVENTS,
)
from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

POSITIONS = "performance_positions"
BOOKS = "performance_books"
FACTS = "performance_facts"

Event = Envelope[EventPayload]


class FactKind:
    """The kinds of ``performance_facts`` documents."""

    NEW_CUSTOMER = "new_customer"
    CUSTOMER_LOST = "customer_lost"
    CONTACT = "contact"
    TASK = "task"
    COMPLAINT = "complaint"
    NEED = "need"
    OPPORTUNITY = "opportunity"


def versioned(version: int, *values: str) -> str:
    """A ``$max``-ed text: the greatest version wins (zero-padded, so texts compare)."""
    return "|".join((f"{version:013d}", *values))


def _moment(on: datetime) -> dict[str, Any]:
    return {"on": on, "day": on.date().isoformat()}


def _fact(kind: str, aggregate: str, customer_id: str, fields: Mapping[str, Any]) -> ViewUpdate:
    """The ``$set`` of a fact's document, ``<kind>:<aggregate>`` (a need's is ``need:<id>``,
    whether a complaint or not: its resolution does not say)."""
    document = f"{FactKind.NEED if kind == FactKind.COMPLAINT else kind}:{aggregate}"
    return ViewUpdate(
        FACTS, document, {"$set": {"kind": kind, "customer_id": customer_id, **fields}}
    )


# Balances and products --------------------------------------------------------------------


def balance_changed(e: Event) -> Iterator[ViewUpdate]:
    d = e.data
    assert isinstance(d, cb.HoldingBalanceChanged)
    day = d.changed_at.date()
    month = day.strftime("%Y-%m")
    account = f"accounts.{field_key(e.aggregateid)}"
    yield ViewUpdate(
        POSITIONS,
        f"{d.customer_id}:{month}",
        {
            "$set": {
                "customer_id": d.customer_id,
                "month": month,
                f"{account}.product_type": d.product_type.value,
                f"{account}.currency": d.balance.currency,
            },
            "$max": {
                f"{account}.days.{day.day:02d}": versioned(
                    e.aggregateversion, f"{d.balance.amount:f}"
                )
            },
        },
    )


def account_opened(e: Event) -> Iterator[ViewUpdate]:
    d = e.data
    assert isinstance(d, cb.AccountOpened)
    opened = {f"accounts.{field_key(e.aggregateid)}.opened_on": d.opened_on.isoformat()}
    yield ViewUpdate(BOOKS, d.customer_id, {"$set": opened})


def account_closed(e: Event) -> Iterator[ViewUpdate]:
    d = e.data
    assert isinstance(d, cb.AccountClosed)
    closed = {f"accounts.{field_key(e.aggregateid)}.closed_on": d.closed_on.isoformat()}
    yield ViewUpdate(BOOKS, d.customer_id, {"$set": closed})


# Owners, new and lost customers -------------------------------------------------------------


def manager_assigned(e: Event) -> Iterator[ViewUpdate]:
    d = e.data
    assert isinstance(d, cu.RelationshipManagerAssigned)
    owner = versioned(e.aggregateversion, d.manager_id, d.branch_id)
    yield ViewUpdate(BOOKS, e.aggregateid, {"$max": {f"owners.{e.time.date().isoformat()}": owner}})


def registered(e: Event) -> Iterator[ViewUpdate]:
    assert isinstance(e.data, cu.CustomerRegistered)
    yield _fact(FactKind.NEW_CUSTOMER, e.aggregateid, e.aggregateid, _moment(e.time))


def status_changed(e: Event) -> Iterator[ViewUpdate]:
    d = e.data
    assert isinstance(d, cu.CustomerStatusChanged)
    if d.status == cu.CustomerStatus.CHURNED and d.previous_status != cu.CustomerStatus.CHURNED:
        aggregate = f"{e.aggregateid}:{e.aggregateversion}"
        yield _fact(FactKind.CUSTOMER_LOST, aggregate, e.aggregateid, _moment(e.time))


# Contacts and tasks ---------------------------------------------------------------------------


def contact_logged(e: Event) -> Iterator[ViewUpdate]:
    d = e.data
    assert isinstance(d, cl.ContactLogged)
    yield _fact(FactKind.CONTACT, e.aggregateid, d.customer_id, _moment(d.started_at))


def activity_due(e: Event) -> Iterator[ViewUpdate]:
    d = e.data
    assert isinstance(d, cl.ActivityScheduled | cl.ActivityRescheduled)
    if d.customer_id is not None:
        yield _fact(FactKind.TASK, e.aggregateid, d.customer_id, {"due_at": d.due_at})


def activity_completed(e: Event) -> Iterator[ViewUpdate]:
    d = e.data
    assert isinstance(d, cl.ActivityCompleted)
    if d.customer_id is not None:
        yield _fact(FactKind.TASK, e.aggregateid, d.customer_id, _moment(d.completed_at))


# Complaints and opportunities ---------------------------------------------------------------


def need_logged(e: Event) -> Iterator[ViewUpdate]:
    d = e.data
    assert isinstance(d, op.NeedLogged)
    kind = FactKind.COMPLAINT if d.kind == op.NeedKind.COMPLAINT else FactKind.NEED
    yield _fact(kind, e.aggregateid, d.customer_id, {"sla_due_at": d.sla_due_at})


def need_resolved(e: Event) -> Iterator[ViewUpdate]:
    d = e.data
    assert isinstance(d, op.NeedResolved)
    fields = {"customer_id": d.customer_id, **_moment(d.resolved_at)}
    yield ViewUpdate(FACTS, f"{FactKind.NEED}:{e.aggregateid}", {"$set": fields})


def opportunity_valued(e: Event) -> Iterator[ViewUpdate]:
    """The expected value, as created or changed: what a win counts."""
    d = e.data
    assert isinstance(d, op.OpportunityCreated | op.OpportunityExpectedValueChanged)
    value = {"value": f"{d.expected_value.amount:f}", "currency": d.expected_value.currency}
    yield _fact(FactKind.OPPORTUNITY, e.aggregateid, d.customer_id, value)


def opportunity_stage_changed(e: Event) -> Iterator[ViewUpdate]:
    """Won: the stage change's moment is the fact's; leaving the won stage unsets it."""
    d = e.data
    assert isinstance(d, op.OpportunityStageChanged)
    document = f"{FactKind.OPPORTUNITY}:{e.aggregateid}"
    if d.stage == op.OpportunityStage.CLOSED_WON:
        fields = {"kind": FactKind.OPPORTUNITY, "customer_id": d.customer_id, **_moment(e.time)}
        yield ViewUpdate(FACTS, document, {"$set": fields})
    elif d.previous_stage == op.OpportunityStage.CLOSED_WON:
        yield ViewUpdate(FACTS, document, {"$unset": {"on": "", "day": ""}})


class ManagerPerformanceView(Projection):
    """Daily positions, owners over time and counted facts, per customer."""

    name: ClassVar[str] = "manager_performance"
    topics: ClassVar[tuple[str, ...]] = (
        CUSTOMER_EVENTS.name,
        COREBANKING_ACCOUNTS.name,
        OPPORTUNITY_EVENTS.name,
        CONTACTLOG_EVENTS.name,
    )

    def handlers(self) -> Mapping[str, Handler]:
        typed: dict[type[EventPayload], Handler] = {
            cb.HoldingBalanceChanged: balance_changed,
            cb.AccountOpened: account_opened,
            cb.AccountClosed: account_closed,
            cu.RelationshipManagerAssigned: manager_assigned,
            cu.CustomerRegistered: registered,
            cu.CustomerStatusChanged: status_changed,
            cl.ContactLogged: contact_logged,
            cl.ActivityScheduled: activity_due,
            cl.ActivityRescheduled: activity_due,
            cl.ActivityCompleted: activity_completed,
            op.NeedLogged: need_logged,
            op.NeedResolved: need_resolved,
            op.OpportunityCreated: opportunity_valued,
            op.OpportunityExpectedValueChanged: opportunity_valued,
            op.OpportunityStageChanged: opportunity_stage_changed,
        }
        return {model.event_type: handler for model, handler in typed.items()}

    async def setup(self, database: AsyncDatabase[Document]) -> None:
        await database[POSITIONS].create_indexes([IndexModel([("month", ASCENDING)])])
        await database[FACTS].create_indexes(
            [IndexModel([("on", ASCENDING), ("kind", ASCENDING)], sparse=True)]
        )
