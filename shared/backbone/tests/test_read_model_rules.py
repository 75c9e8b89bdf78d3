"""The read-model rules every service shares: field names, view versions, page cursors."""

from __future__ import annotations

import base64
import contextlib
import json
from datetime import UTC, datetime

import pytest
from crm_backbone.cursor import InvalidCursor, decode_cursor, encode_cursor
from crm_backbone.readmodel import APPLIED, document_version, field_key, guard_key
from hypothesis import given
from hypothesis import strategies as st


@given(st.text())
def test_a_field_key_is_a_safe_mongodb_field_name(identifier: str) -> None:
    key = field_key(identifier)
    assert "." not in key
    assert "$" not in key
    assert len(key) == len(identifier)


def test_a_guard_key_names_the_producer_and_the_aggregate() -> None:
    assert guard_key("/crm/customer", "C.1") == field_key("/crm/customer|C.1")


def test_a_document_gives_the_version_it_holds_of_an_aggregate() -> None:
    document = {"_id": "C1", APPLIED: {guard_key("/crm/customer", "C1"): 4}}
    assert document_version(document, "/crm/customer", "C1") == 4
    assert document_version(document, "/crm/customer", "C2") == 0
    assert document_version({"_id": "C1"}, "/crm/customer", "C1") == 0


@given(key=st.text(), last_id=st.text())
def test_a_text_cursor_round_trips(key: str, last_id: str) -> None:
    assert decode_cursor(encode_cursor(key, last_id), str) == (key, last_id)


@given(moment=st.datetimes(timezones=st.just(UTC)), last_id=st.text())
def test_a_time_cursor_round_trips(moment: datetime, last_id: str) -> None:
    cursor = encode_cursor(moment, last_id)
    assert decode_cursor(cursor, datetime.fromisoformat) == (moment, last_id)


def test_the_cursor_wire_format_is_base64_of_a_json_pair() -> None:
    cursor = encode_cursor("li na", "C1")
    assert json.loads(base64.urlsafe_b64decode(cursor)) == ["li na", "C1"]


@pytest.mark.parametrize(
    "cursor",
    ["", "not base64!", base64.urlsafe_b64encode(b"[1, 2, 3]").decode(), "\udcff"],
)
def test_a_cursor_not_made_here_is_refused(cursor: str) -> None:
    with pytest.raises(InvalidCursor):
        decode_cursor(cursor, str)


@given(st.text())
def test_any_text_decodes_or_is_refused_as_a_cursor(cursor: str) -> None:
    """Never another exception: the API turns :class:`InvalidCursor` into a 400."""
    for parse in (str, datetime.fromisoformat):
        with contextlib.suppress(InvalidCursor):
            decode_cursor(cursor, parse)
