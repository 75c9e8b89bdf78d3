"""The legal holds on erasure (``erasure.legal_holds``), over generated account states,
KYC reviews, complaints and days."""

from __future__ import annotations

from datetime import date, timedelta

from crm_customer.erasure import (
    AccountState,
    HoldKind,
    RelationshipFacts,
    legal_holds,
    years_after,
)
from crm_customer.queries import relationship_facts
from hypothesis import given
from hypothesis import strategies as st

days = st.dates(min_value=date(2000, 1, 1), max_value=date(2040, 12, 31))
accounts = st.lists(
    st.builds(AccountState, st.from_regex(r"ACC-[0-9]{4}", fullmatch=True), days | st.none()),
    max_size=5,
    unique_by=lambda a: a.account_id,
)
relationships = st.builds(
    RelationshipFacts,
    accounts.map(tuple),
    days | st.none(),
    st.integers(min_value=0, max_value=3),
)


def kinds(facts: RelationshipFacts, today: date, years: int = 5) -> set[HoldKind]:
    return {hold.kind for hold in legal_holds(facts, today, retention_years=years)}


@given(relationships, days, st.integers(min_value=0, max_value=10))
def test_a_customer_is_erasable_exactly_when_no_hold_applies(
    facts: RelationshipFacts, today: date, years: int
) -> None:
    open_accounts = [a for a in facts.accounts if a.closed_on is None]
    closures = [a.closed_on for a in facts.accounts if a.closed_on is not None]
    known = [*closures, *([facts.last_kyc_review] if facts.last_kyc_review else [])]
    retained = bool(known) and today < years_after(max(known), years)
    expected = {
        *([HoldKind.OPEN_ACCOUNTS] if open_accounts else []),
        *([HoldKind.AML_RETENTION] if retained and not open_accounts else []),
        *([HoldKind.OPEN_COMPLAINTS] if facts.open_complaints else []),
    }
    assert kinds(facts, today, years) == expected


@given(relationships, days, st.integers(min_value=1, max_value=4000))
def test_once_erasable_a_customer_stays_erasable_as_days_pass(
    facts: RelationshipFacts, today: date, later: int
) -> None:
    if not legal_holds(facts, today):
        assert not legal_holds(facts, today + timedelta(days=later))


@given(accounts.filter(lambda a: any(x.closed_on is None for x in a)), days)
def test_an_open_account_holds_whatever_the_day_and_is_named(
    held: list[AccountState], today: date
) -> None:
    (hold,) = [
        h
        for h in legal_holds(RelationshipFacts(tuple(held)), today)
        if h.kind is HoldKind.OPEN_ACCOUNTS
    ]
    assert all(a.account_id in hold.detail for a in held if a.closed_on is None)
    assert hold.until is None


@given(days, st.integers(min_value=1, max_value=10))
def test_the_retention_period_runs_from_the_last_closure(closed: date, years: int) -> None:
    facts = RelationshipFacts((AccountState("ACC-1", closed - timedelta(days=400)),))
    facts = RelationshipFacts((*facts.accounts, AccountState("ACC-2", closed)))
    end = years_after(closed, years)
    (hold,) = legal_holds(facts, end - timedelta(days=1), retention_years=years)
    assert (hold.kind, hold.until) == (HoldKind.AML_RETENTION, end)
    assert legal_holds(facts, end, retention_years=years) == []


def test_a_prospect_the_bank_never_did_business_with_is_erasable_at_once() -> None:
    assert legal_holds(RelationshipFacts(), date(2026, 11, 24)) == []


def test_the_29th_of_february_retains_until_the_28th_in_a_common_year() -> None:
    assert years_after(date(2024, 2, 29), 5) == date(2029, 2, 28)
    assert years_after(date(2024, 2, 29), 4) == date(2028, 2, 29)


def test_the_facts_are_read_from_the_customer_view_and_its_merged_duplicates() -> None:
    """Accounts, KYC, open complaints and the leads naming the customer, its duplicates'
    included."""
    survivor = {
        "_id": "C1",
        "accounts": {
            "a1": {"account_id": "ACC-1", "status": "closed", "closed_on": "2020-05-01"},
            "a2": {"account_id": "ACC-2", "product_type": "savings"},  # a balance only: open
        },
        "kyc": {"reviewed_on": "2021-01-02"},
        "lead_ids": ["LEAD-2", "LEAD-1"],
        "needs": {
            "n1": {"kind": "complaint", "status": "in_progress"},
            "n2": {"kind": "complaint", "status": "resolved"},
            "n3": {"kind": "need", "status": "open"},
        },
    }
    duplicate = {
        "_id": "C9",
        "accounts": {"a3": {"account_id": "ACC-3", "status": "open"}},
        "kyc": {"reviewed_on": "2022-03-04"},
        "lead_ids": ["LEAD-1"],
    }
    assert relationship_facts([survivor, duplicate]) == RelationshipFacts(
        (
            AccountState("ACC-1", date(2020, 5, 1)),
            AccountState("ACC-2", None),
            AccountState("ACC-3", None),
        ),
        date(2022, 3, 4),
        1,
        ("LEAD-1", "LEAD-2"),
    )
