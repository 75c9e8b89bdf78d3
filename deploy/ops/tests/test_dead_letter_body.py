"""``crm-ops dlq show`` prints no personal data in clear: an upstream record's (the bank
publishes in clear) is masked field by field, a sealed one's tokens stay tokens, and a
body of no known type is not printed at all."""

from __future__ import annotations

from crm_backbone.dead_letter_sealing import OpenedLetter
from crm_events import to_kafka
from crm_events.common import CustomerName
from crm_events.core_banking import CustomerDataChanged
from crm_events.envelope import Envelope
from crm_ops.dlq_commands import shown_body

CLEAR = CustomerDataChanged(
    name=CustomerName(full_name="Tang Ruolan", family_name="Tang"),
    phone="+86 139 2468 0246",
    email="tang.ruolan@example.cn",
)


def letter(value: bytes, headers: list[tuple[str, bytes]]) -> OpenedLetter:
    return OpenedLetter(value, tuple(headers), erased=False)


def test_an_upstream_record_is_shown_masked() -> None:
    record = to_kafka(Envelope.new(CLEAR, "C-1", 1, "core-banking", "/bank/core-banking"))

    shown = shown_body(letter(record.value, record.headers))

    assert shown is not None
    assert shown["phone"] == "+86 139****0246"
    assert shown["email"] == "t***@example.cn"
    assert shown["name"]["full_name"] == "Tang R***"
    assert not any(text in str(shown) for text in ("Ruolan", "2468", "tang.ruolan"))


def test_a_body_of_no_known_type_is_not_shown() -> None:
    record = to_kafka(Envelope.new(CLEAR, "C-1", 1, "core-banking", "/bank/core-banking"))
    unknown = [(name, b"bank.unknown" if name == "ce_type" else v) for name, v in record.headers]

    assert shown_body(letter(record.value, unknown)) is None
    assert shown_body(letter(b"not json", record.headers)) is None
    assert shown_body(letter(b'["a list"]', record.headers)) is None
