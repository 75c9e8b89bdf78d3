"""The derived-task inputs view: redelivered or repeated triggers write the same documents,
and an activity naming a derived task takes it on until its trigger fires again.

Events go through the projections into an in-memory stand-in for MongoDB
(:class:`crm_contactlog.testing.Bank`).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from crm_contactlog.testing import (
    OTHER,
    RM,
    T0,
    TODAY,
    Bank,
    assign,
    cny,
    complaint,
    customer,
    days,
    maturity,
    opportunity,
    take_on,
)
from crm_events import campaign as cmp
from crm_events import core_banking as cb
from crm_events import customer as cu
from crm_events import opportunity as op
from crm_events.envelope import Envelope
from crm_events.registry import EventPayload
from crm_events.topics import Service


def test_an_activity_naming_a_derived_task_stands_for_it_until_the_trigger_fires_again() -> None:
    bank = Bank()
    customer(bank, "C1", None, None)
    assign(bank, "C1", RM)
    task_id = bank.tasks().this_week[0].task_id
    take_on(bank, "A-1", task_id, at=T0 + days(0.1))
    assert bank.kinds() == [("this_week", "activity", "C1")]
    assign(bank, "C1", OTHER, at=T0 + days(1))
    assign(bank, "C1", RM, at=T0 + days(2))  # a new assignment: a new introduction
    assert bank.kinds(at=T0 + days(2)) == [
        ("overdue", "activity", "C1"),
        ("this_week", "introduction", "C1"),
    ]


def test_redelivering_every_trigger_changes_nothing() -> None:
    bank = Bank()
    customer(bank, "C1", None, date(1970, 11, 25))
    assign(bank, "C1", RM)
    maturity(bank, "ACC-1", TODAY + days(5))
    opportunity(bank, "OPP-1", at=T0 - days(20))
    complaint(bank, "N-1", T0 + days(1), op.NeedKind.COMPLAINT)
    bank.emit(
        Service.CAMPAIGN,
        "CMP-1",
        cmp.CallListAssigned(manager_id=RM, customer_ids=["C1"], due_on=TODAY),
    )
    before = bank.kinds()
    assert sorted(kind for _, kind, _ in before) == [
        "birthday",
        "call_list",
        "complaint_sla",
        "idle_opportunity",
        "introduction",
        "maturity",
    ]
    for envelope in _every_event_again():
        bank.deliver(envelope)
    assert bank.kinds() == before


def _every_event_again() -> Iterable[Envelope[EventPayload]]:
    """The same triggers re-sent as new versions of their aggregates."""
    yield Envelope.new(
        cu.RelationshipManagerAssigned(manager_id=RM, branch_id="BR-1"),
        "C1",
        9,
        actor="t",
        source=Service.CUSTOMER.source,
        time=T0,
    )
    yield Envelope.new(
        cb.ProductMaturityScheduled(
            customer_id="C1",
            product_code="TD-1Y",
            product_type=cb.ProductType.TIME_DEPOSIT,
            maturity_date=TODAY + days(5),
            amount_at_maturity=cny("100000.00"),
        ),
        "ACC-1",
        9,
        actor="t",
        source=Service.CORE_BANKING.source,
        time=T0,
    )
    yield Envelope.new(
        cmp.CallListAssigned(manager_id=RM, customer_ids=["C1", "C1"], due_on=TODAY),
        "CMP-1",
        9,
        actor="t",
        source=Service.CAMPAIGN.source,
        time=T0,
    )
