"""The churn and dormancy rules (``churn.py``) and the balance history they read
(``balance_history.py``): each rule at its boundaries, the bounded history against the
plain record of every balance (hypothesis)."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from crm_backbone.application import StaleVersion
from crm_backbone.projection import ViewUpdate
from crm_customer.application import CustomerApplication
from crm_customer.balance_history import (
    BALANCE_HISTORY,
    BalanceHistory,
    histories,
)
from crm_customer.churn import (
    DAYS_KEPT,
    AccountHistory,
    ChurnParameters,
    CustomerFacts,
    SignalKind,
    balance_fall,
    churn_signals,
    dormancy_reason,
    maturities_lost,
)
from crm_events import core_banking as cb
from crm_events.common import Money
from crm_events.customer import CustomerStatus
from crm_events.envelope import Envelope
from crm_events.registry import EventPayload
from crm_events.topics import Service
from hypothesis import given, settings
from hypothesis import strategies as st

AS_OF = date(2026, 6, 30)
PARAMS = ChurnParameters()  # 20 % over 30 days, 60 days quiet, grace 7, lookback 90


def at(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 12, tzinfo=UTC)


def account(days: dict[date, tuple[str, str]], **kwargs: Any) -> AccountHistory:
    """An account's (opening, closing) balance per day it changed on."""
    figures = {d: (Decimal(o), Decimal(c)) for d, (o, c) in days.items()}
    return AccountHistory("CNY", figures, **kwargs)


START = AS_OF - timedelta(days=30)


@pytest.mark.parametrize(
    ("before", "now", "signals"),
    [("1000", "790", True), ("1000", "800", False), ("1000", "1200", False), ("0", "0", False)],
)
def test_a_fall_counts_when_it_exceeds_the_share(before: str, now: str, signals: bool) -> None:
    history = account(
        {START - timedelta(days=3): ("0", before), AS_OF - timedelta(days=1): (before, now)}
    )
    found = balance_fall([history], AS_OF, PARAMS)
    assert (found is not None) is signals
    if found is not None:
        assert found.kind is SignalKind.BALANCE_FALLING
        assert found.since == START.isoformat()


def test_money_moved_to_a_new_account_is_no_fall() -> None:
    savings = account({START - timedelta(days=5): ("0", "1000"), AS_OF: ("1000", "0")})
    deposit = account({AS_OF: ("0", "1000")})
    assert balance_fall([savings, deposit], AS_OF, PARAMS) is None


def test_a_closed_account_counts_zero_from_its_closing() -> None:
    wealth = account(
        {START - timedelta(days=5): ("0", "1000")}, closed_on=AS_OF - timedelta(days=2)
    )
    current = account({START - timedelta(days=5): ("0", "100")})
    found = balance_fall([wealth, current], AS_OF, PARAMS)
    assert found is not None
    assert "90.9%" in found.detail


def test_before_its_first_day_kept_an_account_stands_at_that_day_s_opening() -> None:
    idle = account({AS_OF - timedelta(days=2): ("500", "20")})
    assert idle.closing(START) == Decimal(500)
    assert idle.closing(AS_OF) == Decimal(20)
    assert account({}).closing(AS_OF) == 0


def test_each_currency_is_judged_on_its_own() -> None:
    cny = account({START: ("0", "1000"), AS_OF: ("1000", "1000")})
    usd = AccountHistory(
        "USD", {START: (Decimal(0), Decimal(100)), AS_OF: (Decimal(100), Decimal(10))}
    )
    found = balance_fall([cny, usd], AS_OF, PARAMS)
    assert found is not None
    assert found.detail.startswith("USD assets fell 90.0%")


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, DAYS_KEPT * 3), st.integers(0, 10_000)), min_size=1, max_size=60
    ),
    st.integers(0, DAYS_KEPT - 1),
    st.randoms(use_true_random=False),
)
def test_the_bounded_history_answers_as_the_whole_record_within_its_window(
    changes: list[tuple[int, int]], back: int, rng: random.Random
) -> None:
    """Balances applied through the projection's handler in any order, some twice: the
    closing on any of the ``DAYS_KEPT`` days before the last change is the last balance
    set on or before it (zero before the first)."""
    origin = date(2026, 1, 1)
    changes = sorted(changes, key=lambda change: change[0])
    handler = BalanceHistory().handlers()[cb.HoldingBalanceChanged.event_type]
    updates, previous = [], 0
    for version, (offset, balance) in enumerate(changes, start=1):
        payload = cb.HoldingBalanceChanged(
            customer_id="C1",
            product_type=cb.ProductType.SAVINGS,
            previous_balance=Money(amount=Decimal(previous), currency="CNY"),
            balance=Money(amount=Decimal(balance), currency="CNY"),
            changed_at=at(origin + timedelta(days=offset)),
        )
        previous = balance
        updates += list(handler(envelope("ACC.1", version, payload)))
    delivered = updates + rng.sample(updates, len(updates) // 3)
    rng.shuffle(delivered)
    document: dict[str, Any] = {}
    for update in delivered:
        apply_update(document, update)
    day = origin + timedelta(days=changes[-1][0] - back)
    on_or_before = [b for offset, b in changes if origin + timedelta(days=offset) <= day]
    (history,) = histories(document)
    assert history.closing(day) == (on_or_before[-1] if on_or_before else 0)
    assert len(history.days) <= DAYS_KEPT


def envelope(aggregate: str, version: int, payload: EventPayload) -> Envelope[EventPayload]:
    return Envelope.new(
        payload,
        aggregate,
        version,
        actor="test",
        source=Service.CORE_BANKING.source,
        event_id=str(uuid.uuid4()),
    )


def apply_update(document: dict[str, Any], update: ViewUpdate) -> None:
    """``$set`` and ``$max`` of dotted paths applied to a plain dict, as MongoDB does."""
    assert update.collection == BALANCE_HISTORY
    for operator, fields in update.update.items():
        for path, value in fields.items():
            *parents, leaf = path.split(".")
            node = document
            for part in parents:
                node = node.setdefault(part, {})
            if operator == "$set" or leaf not in node or value > node[leaf]:
                node[leaf] = value


def facts(**kwargs: Any) -> CustomerFacts:
    values: dict[str, Any] = {
        "status": "active",
        "last_contact_at": at(AS_OF - timedelta(days=10)),
        "last_transaction_at": at(AS_OF - timedelta(days=10)),
    }
    return CustomerFacts(**(values | kwargs))


def test_quiet_signals_start_the_day_after_the_limit() -> None:
    assert churn_signals(facts(last_contact_at=at(AS_OF - timedelta(days=60))), AS_OF, PARAMS) == []
    quiet = facts(last_contact_at=at(AS_OF - timedelta(days=61)), last_transaction_at=None)
    kinds = [s.kind for s in churn_signals(quiet, AS_OF, PARAMS)]
    assert kinds == [SignalKind.NO_CONTACT, SignalKind.NO_TRANSACTION]


def test_an_open_complaint_is_a_signal_until_resolved() -> None:
    open_one = {"kind": "complaint", "status": "open", "started_at": "2026-06-01T08:00:00Z"}
    closed = {"kind": "complaint", "status": "resolved"}
    other = {"kind": "enquiry", "status": "open"}
    (signal,) = churn_signals(facts(needs=(open_one, closed, other)), AS_OF, PARAMS)
    assert (signal.kind, signal.since) == (SignalKind.OPEN_COMPLAINT, "2026-06-01")


def maturity(due: date, product_type: str = "time_deposit") -> dict[str, Any]:
    return {"account_id": "TD.1", "product_type": product_type, "maturity_date": due.isoformat()}


@pytest.mark.parametrize(
    ("days_ago", "lost"), [(6, False), (7, True), (90, True), (91, False), (-30, False)]
)
def test_a_maturity_counts_between_its_grace_and_the_lookback(days_ago: int, lost: bool) -> None:
    due = AS_OF - timedelta(days=days_ago)
    found = maturities_lost([maturity(due)], [], AS_OF, PARAMS)
    assert (found is not None) is lost


def test_a_maturity_replaced_by_a_new_product_of_its_type_is_rolled_over() -> None:
    due = AS_OF - timedelta(days=20)
    new = {"product_type": "time_deposit", "opened_on": (due - timedelta(days=3)).isoformat()}
    other = {"product_type": "fund", "opened_on": due.isoformat()}
    assert maturities_lost([maturity(due)], [new], AS_OF, PARAMS) is None
    assert maturities_lost([maturity(due)], [other], AS_OF, PARAMS) is not None


def test_parameters_refuse_a_window_longer_than_the_history() -> None:
    with pytest.raises(ValueError, match="fall_days"):
        ChurnParameters(fall_days=DAYS_KEPT)


QUIET = AS_OF - timedelta(days=91)


@pytest.mark.parametrize(
    ("kwargs", "due"),
    [
        ({"last_contact_at": at(QUIET), "last_transaction_at": at(QUIET)}, True),
        ({"last_contact_at": at(QUIET), "last_transaction_at": at(AS_OF)}, False),
        ({"last_contact_at": None, "last_transaction_at": at(QUIET)}, True),
        ({"last_contact_at": None, "last_transaction_at": None}, False),
        (
            {
                "last_contact_at": at(QUIET),
                "last_transaction_at": at(QUIET),
                "reactivated_at": at(AS_OF - timedelta(days=5)),
            },
            False,
        ),
        ({"status": "dormant", "last_contact_at": at(QUIET), "last_transaction_at": None}, False),
        ({"status": "prospect", "last_contact_at": at(QUIET), "last_transaction_at": None}, False),
    ],
)
def test_the_dormancy_rule(kwargs: dict[str, Any], due: bool) -> None:
    reason = dormancy_reason(facts(**kwargs), AS_OF, 90)
    assert (reason is not None) is due
    if reason is not None:
        assert "more than 90 days" in reason
        assert QUIET.isoformat() in reason


@given(st.integers(0, 400), st.integers(0, 400), st.integers(1, 200))
def test_dormant_exactly_when_both_are_older_than_the_limit(
    contact_days: int, transaction_days: int, days: int
) -> None:
    quiet = facts(
        last_contact_at=at(AS_OF - timedelta(days=contact_days)),
        last_transaction_at=at(AS_OF - timedelta(days=transaction_days)),
    )
    due = dormancy_reason(quiet, AS_OF, days) is not None
    assert due is (min(contact_days, transaction_days) > days)


PERSON: dict[str, Any] = {
    "customer_type": "individual",
    "name": {"full_name": "Wang Fang"},
    "status": "active",
    "branch_id": "BR-001",
    **dict.fromkeys(
        ("birth_date", "phone", "email", "address", "occupation", "industry", "preferred_channel")
    ),
    "id_documents": [],
}


def test_the_rule_makes_only_an_active_customer_dormant_at_the_version_it_judged() -> None:
    app = CustomerApplication(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    app.register("C1", PERSON)
    app.register("C2", PERSON | {"status": "prospect"})
    with pytest.raises(StaleVersion):
        app.flag_dormant("C1", 2, "dormancy rule: quiet")
    assert app.flag_dormant("C1", 1, "dormancy rule: quiet") == 2
    customer = app.get("C1")
    assert (customer.status, customer.version) == (CustomerStatus.DORMANT, 2)
    assert app.flag_dormant("C1", 2, "dormancy rule: quiet") == 2  # already dormant
    assert app.flag_dormant("C2", 1, "dormancy rule: quiet") == 1  # a prospect stays one
