"""The credit exposure rule (``exposure.py``): direct, through guarantees, once per group."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from crm_customer.exposure import Facility, Relation, exposure
from hypothesis import given
from hypothesis import strategies as st

D = Decimal


def facility(
    facility_id: str,
    borrower: str,
    limit: str,
    drawn: str,
    *,
    open: bool = True,
    maturity: date = date(2027, 6, 30),
    currency: str = "CNY",
    guarantees: dict[str, Decimal] | None = None,
) -> Facility:
    return Facility(
        facility_id,
        borrower,
        "revolving",
        currency,
        D(limit),
        D(drawn),
        maturity,
        open,
        guarantees or {},
    )


def test_a_borrower_counts_the_limit_while_open_and_what_is_drawn_once_matured() -> None:
    figures = exposure(
        {"A"},
        [
            facility("F1", "A", "1000", "400"),
            facility("F2", "A", "500", "600"),  # over its limit: the drawn amount counts
            facility("F3", "A", "800", "300", open=False),
        ],
    )
    (cny,) = figures.by_currency
    assert (cny.limit, cny.drawn) == (D(2300), D(1300))
    assert cny.direct_exposure == D(1000) + D(600) + D(300)
    assert cny.utilisation_percent == D("66.67")  # 1000 of the open 1500
    assert [c.relation for c in figures.counted] == [Relation.BORROWER] * 3


def test_a_guarantor_counts_the_guarantee_capped_at_the_facility() -> None:
    figures = exposure(
        {"G"},
        [
            facility("F1", "B", "1000", "400", guarantees={"G": D(600)}),
            facility("F2", "C", "300", "100", guarantees={"G": D(900)}),
            facility("F3", "D", "300", "100", guarantees={"X": D(300)}),
        ],
    )
    (cny,) = figures.by_currency
    assert cny.direct_exposure == cny.limit == 0
    assert cny.utilisation_percent is None
    assert cny.guaranteed_exposure == D(600) + D(300)
    assert cny.guaranteed_drawn == D(400) + D(100)
    assert [c.facility.facility_id for c in figures.counted] == ["F1", "F2"]


def test_a_group_counts_a_facility_its_members_borrow_and_guarantee_once() -> None:
    facilities = [
        facility("F1", "A", "1000", "400", guarantees={"B": D(1000)}),
        facility("F2", "X", "200", "200", guarantees={"A": D(100), "B": D(150)}),
    ]
    figures = exposure({"A", "B"}, facilities)
    (cny,) = figures.by_currency
    assert cny.direct_exposure == D(1000)
    assert cny.guaranteed_exposure == D(200)  # 250 guaranteed, capped at the facility
    assert cny.total_exposure == D(1200)


def test_currencies_are_kept_apart_and_the_next_maturity_is_the_earliest_open() -> None:
    figures = exposure(
        {"A"},
        [
            facility("F1", "A", "10", "0", maturity=date(2027, 1, 31)),
            facility("F2", "A", "10", "5", currency="USD", maturity=date(2026, 12, 31)),
            facility("F3", "A", "10", "5", open=False, maturity=date(2026, 1, 31)),
        ],
    )
    assert [c.currency for c in figures.by_currency] == ["CNY", "USD"]
    assert figures.next_maturity is not None
    assert figures.next_maturity.facility_id == "F2"


amounts = st.integers(0, 10**9).map(D)


@given(
    st.lists(
        st.tuples(
            st.sampled_from("ABCX"),
            amounts,
            amounts,
            st.booleans(),
            st.dictionaries(st.sampled_from("ABCX"), amounts, max_size=3),
        ),
        max_size=8,
    )
)
def test_a_groups_exposure_never_exceeds_its_members_exposures_added_up(
    rows: list[tuple[str, Decimal, Decimal, bool, dict[str, Decimal]]],
) -> None:
    facilities = [
        facility(
            f"F{i}",
            borrower,
            str(limit),
            str(drawn),
            open=is_open,
            guarantees={g: a for g, a in guarantees.items() if g != borrower},
        )
        for i, (borrower, limit, drawn, is_open, guarantees) in enumerate(rows)
    ]

    def total(customers: set[str]) -> Decimal:
        return sum((c.total_exposure for c in exposure(customers, facilities).by_currency), D(0))

    group = total({"A", "B", "C"})
    assert group <= total({"A"}) + total({"B"}) + total({"C"})
    own = sum((f.exposure for f in facilities if f.borrower_id in "ABC"), D(0))
    assert own <= group
