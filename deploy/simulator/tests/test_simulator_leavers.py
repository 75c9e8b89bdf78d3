"""The simulated bank's leavers: one customer in ``LEAVERS_EVERY`` takes its money out
from ``WITHDRAWING_FROM`` on and does nothing from ``QUIET_FROM`` on (what fills the
churn worklist and, later, the dormancy rule in ``make run``)."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from itertools import islice

from crm_events.core_banking import HoldingBalanceChanged, ProductType
from crm_simulator.core_bank import LEAVERS_EVERY, QUIET_FROM, WITHDRAWING_FROM
from crm_simulator.feed import feed
from crm_simulator.population import population

START = datetime(2026, 1, 1, tzinfo=UTC)
CUSTOMERS = population(seed=11, size=90)
DRAWN = {ProductType.CURRENT, ProductType.SAVINGS}
"""What a leaver's money moves on go down (deposits, wealth and funds are redeemed)."""
LEAVERS = {c.customer_id for n, c in enumerate(CUSTOMERS) if n % LEAVERS_EVERY == LEAVERS_EVERY - 1}


def test_leavers_withdraw_then_fall_silent_and_the_others_go_on() -> None:
    events = [e.envelope for e in islice(feed(CUSTOMERS, seed=11, start=START), 12_000)]
    assert events[-1] is not None
    assert events[-1].time - START > QUIET_FROM * 1.5
    last_seen: dict[str, datetime] = {}
    withdrawals: dict[str, int] = defaultdict(int)
    for envelope in events:
        assert envelope is not None
        data = envelope.data
        customer = getattr(data, "customer_id", None) or envelope.aggregateid
        last_seen[customer] = envelope.time
        leaving = customer in LEAVERS and envelope.time - START >= WITHDRAWING_FROM
        if leaving and isinstance(data, HoldingBalanceChanged) and data.product_type in DRAWN:
            assert data.balance.amount < data.previous_balance.amount
            withdrawals[customer] += 1
    assert len(LEAVERS) == len(CUSTOMERS) // LEAVERS_EVERY
    assert all(last_seen[c] - START < QUIET_FROM for c in LEAVERS if c in last_seen)
    assert withdrawals, "some leaver withdrew"
    staying = [c for c in last_seen if c not in LEAVERS]
    assert sum(last_seen[c] - START > QUIET_FROM for c in staying) > len(staying) / 2
