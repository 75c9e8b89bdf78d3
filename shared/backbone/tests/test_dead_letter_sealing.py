"""Dead letters sealed under their data subject's key (or their month's when no subject can
be told), opened to the original bytes, and erased once that key is destroyed."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from crm_backbone.dead_letter_sealing import (
    DETAIL_HEADER,
    ERASED_HEADER,
    SEALED_FOR_HEADER,
    expired_dead_letter_keys,
    month_subject,
    open_letter,
    record_subject,
    seal_letter,
)
from crm_backbone.keys import KeySealer
from crm_backbone.keys.__main__ import KEY_OWNER
from crm_backbone.keys.__main__ import cli as key_cli
from crm_backbone.keys.factory import subject_keys
from crm_backbone.keys.memory import InMemoryKeys
from crm_backbone.settings import ServiceSettings
from crm_events import to_kafka
from crm_events.common import CustomerName
from crm_events.core_banking import CustomerDataChanged
from crm_events.envelope import Envelope
from crm_events.topics import COREBANKING_CUSTOMERS, HR_ORGANISATION
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

NOW = datetime(2026, 11, 24, 23, 0, tzinfo=UTC)
UPSTREAM = COREBANKING_CUSTOMERS.name
distinctive = st.text(alphabet=st.characters(categories=("Lu", "Ll", "Lo")), max_size=30).map(
    "Tang Ruolan {}".format
)
PHONE = "+86 139 1111 2222"


def upstream_record(full_name: str, customer: str = "C-1") -> tuple[bytes, list[tuple[str, bytes]]]:
    """A bank record in clear (the bank seals nothing) with an extra header of its own."""
    payload = CustomerDataChanged(name=CustomerName(full_name=full_name), phone=PHONE)
    record = to_kafka(Envelope.new(payload, customer, 1, "core-banking", "/bank/core-banking"))
    return record.value, [*record.headers, ("bank_operator_note", full_name.encode())]


def header(headers: list[tuple[str, bytes]], name: str) -> bytes | None:
    return next((value for header, value in headers if header == name), None)


def sealer() -> KeySealer:
    return KeySealer(InMemoryKeys())


@given(distinctive)
def test_an_upstream_letter_holds_no_clear_byte_of_the_person_and_opens_to_the_original(
    full_name: str,
) -> None:
    keys = sealer()
    value, headers = upstream_record(full_name)

    letter = seal_letter(UPSTREAM, b"C-1", value, headers, ("invalid_body", "x"), keys, NOW)

    everything = (letter.value or b"") + b"".join(raw for _, raw in letter.headers)
    assert full_name.encode() not in everything
    assert PHONE.encode() not in everything
    assert header(letter.headers, SEALED_FOR_HEADER) == b"C-1"
    opened = open_letter(letter.value, letter.headers, keys)
    assert not opened.erased
    assert opened.value == value
    assert [h for h in opened.headers if not h[0].startswith("dlq_")] == headers


def test_an_erased_subjects_letter_opens_as_erased_with_nothing_of_the_person() -> None:
    keys = sealer()
    value, headers = upstream_record("Qiu Xiaoyan")
    letter = seal_letter(UPSTREAM, b"C-1", value, headers, ("invalid_body", "x"), keys, NOW)

    keys.destroy("C-1")

    opened = open_letter(letter.value, letter.headers, keys)
    assert opened.erased
    assert opened.value is None
    assert all(b"Qiu" not in raw for _, raw in opened.headers)
    assert "bank_operator_note" not in dict(opened.headers)


def test_a_record_about_an_already_erased_subject_is_set_aside_without_its_body() -> None:
    keys = sealer()
    keys.destroy("C-1")
    value, headers = upstream_record("Qiu Xiaoyan")

    letter = seal_letter(UPSTREAM, b"C-1", value, headers, ("invalid_body", "x"), keys, NOW)

    assert letter.value is None
    assert header(letter.headers, ERASED_HEADER) == b"true"
    assert all(b"Qiu" not in raw for _, raw in letter.headers)
    assert open_letter(letter.value, letter.headers, keys).erased


def test_a_letter_with_no_subject_is_sealed_under_its_months_key_destroyed_after_retention() -> (
    None
):
    keys = sealer()
    unreadable = b'{"not": "a contract"} Wen Jiahui'

    letter = seal_letter(HR_ORGANISATION.name, None, unreadable, [], ("malformed", "x"), keys, NOW)

    assert header(letter.headers, SEALED_FOR_HEADER) == b"deadletters:2026-11"
    assert b"Wen Jiahui" not in (letter.value or b"")
    assert open_letter(letter.value, letter.headers, keys).value == unreadable
    for subject in expired_dead_letter_keys(datetime(2027, 1, 1, tzinfo=UTC)):
        keys.destroy(subject)
    assert open_letter(letter.value, letter.headers, keys).erased


def test_a_months_key_expires_once_the_retention_passed_over_the_whole_month() -> None:
    assert month_subject(NOW) == "deadletters:2026-11"
    expired = list(expired_dead_letter_keys(NOW, months_back=4))
    assert expired == ["deadletters:2026-09", "deadletters:2026-08", "deadletters:2026-07"]
    assert "deadletters:2026-10" in expired_dead_letter_keys(datetime(2026, 12, 1, tzinfo=UTC))


def test_the_subject_follows_the_contract_and_never_takes_a_value_that_is_no_id() -> None:
    value, headers = upstream_record("Qiu Xiaoyan")
    assert record_subject(UPSTREAM, b"C-7", value, headers) == "C-7"
    assert record_subject(UPSTREAM, b"C-7", b"not json", headers) == "C-7"  # keyed by customer
    assert record_subject(HR_ORGANISATION.name, b"P-1", b"not json", []) is None
    opportunity = [("ce_type", b"crm.opportunity.created"), ("ce_schemaversion", b"1")]
    named = json.dumps({"customer_id": "C-9"}).encode()
    assert record_subject("crm.opportunity.events", b"O-1", named, opportunity) == "C-9"
    misnamed = json.dumps({"customer_id": "Qiu Xiaoyan"}).encode()
    assert record_subject("crm.opportunity.events", b"O-1", misnamed, opportunity) is None


def test_a_handlers_error_is_clear_by_its_type_only_and_sealed_in_full() -> None:
    keys = sealer()
    value, headers = upstream_record("Qiu Xiaoyan")
    reason = ("handler_error", "KeyError('Qiu Xiaoyan')")

    letter = seal_letter(UPSTREAM, b"C-1", value, headers, reason, keys, NOW)

    assert header(letter.headers, "dlq_reason") == b"KeyError"
    assert b"Qiu" not in (header(letter.headers, DETAIL_HEADER) or b"")
    opened = open_letter(letter.value, letter.headers, keys)
    assert dict(opened.headers)[DETAIL_HEADER] == reason[1].encode()


def test_a_letter_of_before_sealing_opens_as_it_is() -> None:
    value, headers = upstream_record("Qiu Xiaoyan")
    opened = open_letter(value, headers, sealer())
    assert (opened.value, list(opened.headers), opened.erased) == (value, headers, False)


def test_the_operators_command_destroys_the_keys_of_months_past_retention(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRM_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CRM_KEY_DATABASE", "sqlite")
    store = subject_keys(ServiceSettings(), KEY_OWNER)
    now = datetime.now(UTC)
    current, old = month_subject(now), month_subject(now - timedelta(days=70))
    for subject in (current, old):
        store.key_for_writing(subject)

    expired = CliRunner().invoke(key_cli, ["expire-dead-letters"])

    assert expired.exit_code == 0, expired.output
    assert store.key_for_reading(old) is None
    assert store.key_for_reading(current) is not None
