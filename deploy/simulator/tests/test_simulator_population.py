"""The synthetic customer book: deterministic, realistic, fit for the contract."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import asdict

import pytest
from crm_events.common import CustomerType, IdDocumentKind
from crm_events.customer import CustomerRegistered, CustomerStatus
from crm_simulator.check_characters import credit_code_check, national_id_check
from crm_simulator.population import (
    AS_OF,
    BRANCH_IDS,
    SimulatedCustomer,
    branch_city,
    branch_managers,
    population,
)

PHONE = re.compile(r"^\+?[0-9][0-9 \-]{3,30}$")


@pytest.fixture(scope="module")
def book() -> list[SimulatedCustomer]:
    return population(seed=42, size=1000)


def test_same_seed_same_book_and_another_seed_another(book: list[SimulatedCustomer]) -> None:
    assert population(42, 1000) == book
    assert population(43, 1000) != book
    assert len(population(7, 0)) == 0


def test_identifiers_are_unique_and_well_formed(book: list[SimulatedCustomer]) -> None:
    assert len(book) == 1000
    for field in ("customer_id", "phone", "email"):
        values = [getattr(customer, field) for customer in book]
        assert len(set(values)) == len(values), field
    numbers = [d.number for c in book for d in c.id_documents]
    assert len(set(numbers)) == len(numbers)
    for customer in book:
        assert re.fullmatch(r"C[0-9]{8}", customer.customer_id)
        assert PHONE.match(customer.phone), customer.phone
        assert re.fullmatch(r"[a-z0-9.\-]+@[a-z0-9.\-]+\.[a-z]+", customer.email), customer.email
        assert customer.branch_id in BRANCH_IDS
        assert customer.manager_id in branch_managers(customer.branch_id)
        assert customer.address.city == branch_city(customer.branch_id).name


def test_mostly_individuals_with_some_organisations(book: list[SimulatedCustomer]) -> None:
    kinds = Counter(customer.customer_type for customer in book)
    assert 0.75 < kinds[CustomerType.INDIVIDUAL] / len(book) < 0.95
    assert kinds[CustomerType.CORPORATE] > 50
    assert kinds[CustomerType.INSTITUTION] > 5
    assert len({customer.branch_id for customer in book}) == len(BRANCH_IDS)
    assert len({customer.value_band for customer in book}) == 3
    western = [c for c in book if c.nationality != "CN"]
    assert 0 < len(western) < len(book) * 0.2


def test_individuals_have_a_person_s_data(book: list[SimulatedCustomer]) -> None:
    for customer in (c for c in book if not c.is_organisation):
        assert customer.birth_date is not None
        assert 17 <= (AS_OF - customer.birth_date).days / 365.25 <= 89
        assert customer.name.family_name
        assert customer.name.given_name
        assert customer.occupation
        assert customer.industry is None
        assert customer.corporate_tier is None
        (document,) = customer.id_documents
        if customer.nationality == "CN":
            assert document.kind is IdDocumentKind.NATIONAL_ID
            number = document.number
            assert re.fullmatch(r"[0-9]{17}[0-9X]", number)
            assert number[-1] == national_id_check(number[:17])
            assert number[6:14] == customer.birth_date.strftime("%Y%m%d")
        else:
            assert document.kind is IdDocumentKind.PASSPORT
            assert document.issuing_country == customer.nationality
            assert document.expires_on is not None
            assert document.expires_on > AS_OF


def test_organisations_have_credit_codes_and_an_industry(book: list[SimulatedCustomer]) -> None:
    for customer in (c for c in book if c.is_organisation):
        assert customer.birth_date is None
        assert customer.industry
        assert customer.occupation is None
        assert customer.corporate_tier is not None
        assert customer.name.family_name is None
        kinds = [d.kind for d in customer.id_documents]
        assert kinds[0] is IdDocumentKind.UNIFIED_SOCIAL_CREDIT_CODE
        code = customer.id_documents[0].number
        assert re.fullmatch(r"[0-9A-HJ-NPQRTUWXY]{18}", code)
        assert code[-1] == credit_code_check(code[:17])
        assert code[:2] == ("91" if customer.customer_type is CustomerType.CORPORATE else "12")
        for document in customer.id_documents[1:]:
            assert document.kind is IdDocumentKind.BUSINESS_LICENSE
            assert re.fullmatch(r"[0-9]{15}", document.number)
            assert _mod_11_10_valid(document.number)
        if customer.customer_type is CustomerType.CORPORATE:
            assert customer.name.full_name.endswith("Co., Ltd.")


def _mod_11_10_valid(number: str) -> bool:
    """ISO 7064 MOD 11,10 validation of a number ending in its check digit."""
    product = 10
    for digit in number:
        total = (product + int(digit)) % 10 or 10
        product = total * 2 % 11
    return total == 1


def test_check_characters_match_published_examples() -> None:
    assert national_id_check("11010519491231002") == "X"
    assert credit_code_check("91350100M000100Y4") == "3"


def test_every_customer_fits_the_registration_contract(book: list[SimulatedCustomer]) -> None:
    for customer in book:
        data = asdict(customer)
        fields = {name: data[name] for name in CustomerRegistered.model_fields if name in data}
        CustomerRegistered.model_validate(fields | {"status": CustomerStatus.ACTIVE})
