"""An exact decimal read from JSON is the string its schema documents, nothing else: what
the schema refuses (a number, an exponent, spaces, ``NaN``), validation refuses too."""

import json
import re
from decimal import Decimal
from typing import Any

import pytest
from crm_events.common import DECIMAL_PATTERN, Money
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=5,
)


def read(amount: Any) -> Money:
    return Money.model_validate_json(json.dumps({"amount": amount, "currency": "CNY"}))


@given(JSON_VALUES)
def test_json_is_accepted_exactly_when_the_schema_accepts_it(amount: Any) -> None:
    documented = isinstance(amount, str) and re.search(DECIMAL_PATTERN, amount) is not None
    documented = documented and not amount.endswith("\n")  # JSON Schema's $ is the very end
    if documented:
        assert read(amount).amount == Decimal(amount)
    else:
        with pytest.raises(ValidationError):
            read(amount)


@given(st.decimals(allow_nan=False, allow_infinity=False))
def test_what_the_contracts_write_they_read_back(amount: Decimal) -> None:
    written = Money(amount=amount, currency="CNY")
    assert read(json.loads(written.model_dump_json())["amount"]) == written


@pytest.mark.parametrize("amount", [12.5, 12, True, "1e3", " 12 ", "1_000", "12.", ".5", "NaN"])
def test_what_a_careless_client_sends_is_refused(amount: Any) -> None:
    with pytest.raises(ValidationError, match="decimal_string"):
        read(amount)
