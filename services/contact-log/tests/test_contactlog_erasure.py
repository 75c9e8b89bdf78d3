"""On ``crm.customer.erased`` the derived-task inputs forget the person: no name on a list,
no birthday task; the tasks of the book's facts (a maturity) stay. In-memory stand-in."""

from __future__ import annotations

from datetime import date

from crm_contactlog.testing import RM, T0, TODAY, Bank, customer, days, maturity
from crm_events import customer as cu
from crm_events.topics import Service


def erased(bank: Bank, customer_id: str) -> None:
    bank.emit(
        Service.CUSTOMER,
        customer_id,
        cu.CustomerErased(
            erased_at=T0,
            erased_by="dpo-subject",
            legal_basis=cu.ErasureBasis.GDPR_OBJECTION,
            reason="request DPR-3",
        ),
    )


def test_an_erased_customer_has_no_name_and_no_birthday_and_the_others_keep_theirs() -> None:
    bank = Bank()
    born = date(1970, 11, 25)
    for customer_id in ("C1", "C2"):
        customer(bank, customer_id, RM, born)
    maturity(bank, "ACC-1", TODAY + days(5))
    assert sorted(bank.kinds()) == [
        ("this_week", "birthday", "C1"),
        ("this_week", "birthday", "C2"),
        ("this_week", "maturity", "C1"),
    ]
    erased(bank, "C1")
    assert sorted(bank.kinds()) == [
        ("this_week", "birthday", "C2"),
        ("this_week", "maturity", "C1"),
    ]
    names = {t.customer_id: t.customer_name for t in bank.tasks().this_week}
    assert names == {"C1": None, "C2": "Customer C2"}
    copy = bank.customers()["C1"]
    assert "full_name" not in copy
    assert "birth_date" not in copy
    assert copy["manager_id"] == RM  # the owners stay: not personal
