"""Rules the contracts define once for every service: birthdays, asset product types."""

from datetime import date, timedelta

from crm_events.core_banking import ASSET_TYPES, ProductType
from crm_events.customer import next_birthday
from hypothesis import given
from hypothesis import strategies as st


def test_a_29_february_birthday_is_kept_on_1_march_in_common_years() -> None:
    assert next_birthday(date(1988, 2, 29), date(2027, 2, 20)) == date(2027, 3, 1)
    assert next_birthday(date(1988, 2, 29), date(2028, 2, 20)) == date(2028, 2, 29)
    assert next_birthday(date(1988, 11, 1), date(2026, 11, 23)) == date(2027, 11, 1)


@given(
    born=st.dates(min_value=date(1900, 1, 1), max_value=date(2030, 12, 31)),
    today=st.dates(min_value=date(1990, 1, 1), max_value=date(2100, 12, 31)),
)
def test_the_next_birthday_is_the_first_anniversary_from_today(born: date, today: date) -> None:
    birthday = next_birthday(born, today)
    assert today <= birthday < today + timedelta(days=366)
    assert next_birthday(born, birthday - timedelta(days=1)) == birthday
    if (born.month, born.day) == (2, 29) and birthday.month == 3:
        assert birthday.day == 1
    else:
        assert (birthday.month, birthday.day) == (born.month, born.day)


def test_loans_and_cards_are_liabilities_every_other_product_an_asset() -> None:
    assert set(ProductType) - ASSET_TYPES == {ProductType.LOAN, ProductType.CREDIT_CARD}
