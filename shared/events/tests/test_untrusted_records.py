"""``from_kafka`` on whatever bytes an outside producer sends: an envelope or a ContractError.

Nothing else may come out of it (no ``UnicodeDecodeError``, no ``KeyError``), since the
consumers dead-letter exactly the ``ContractError`` s, one record at a time.
"""

from __future__ import annotations

import pytest
from crm_events import ContractError, Envelope, InvalidKey, KafkaRecord, MalformedEvent
from crm_events.common import Channel
from crm_events.customer import ConsentChanged
from crm_events.envelope import HEADERS, REQUIRED_HEADERS, from_kafka, to_kafka
from hypothesis import given, settings
from hypothesis import strategies as st

CE_HEADERS = sorted(HEADERS.values())
RECORD = to_kafka(
    Envelope.new(
        ConsentChanged(channel=Channel.SMS, opted_in=True, reason="asked in branch"),
        "C-42",
        3,
        actor="rm-1",
        source="/crm/customer",
        client="crm-console",
    )
)
INVALID_UTF8 = st.sampled_from([b"\xed\xa0\x80", b"\xff", b"\xc3", b"ok\x80"])
header_values = st.one_of(st.binary(max_size=40), INVALID_UTF8)
header_names = st.one_of(st.sampled_from(CE_HEADERS), st.text(max_size=12))
values = st.one_of(
    st.just(RECORD.value),
    st.binary(max_size=200),
    st.sampled_from([b"", b"null", b"[]", b"42", b'"text"', b"{}", b"{" * 10_000]),
    st.just(b'{"channel": "sms", "opted_in": true, "x": "' + b"a" * 1_000_000 + b'"}'),
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    key=st.one_of(st.none(), st.just(RECORD.key), st.binary(max_size=12)),
    value=values,
    replaced=st.dictionaries(st.sampled_from(CE_HEADERS), header_values, max_size=3),
    dropped=st.sets(st.sampled_from(CE_HEADERS), max_size=2),
    added=st.lists(st.tuples(header_names, header_values), max_size=3),
)
def test_any_record_is_an_envelope_or_a_contract_error(
    key: bytes | None,
    value: bytes,
    replaced: dict[str, bytes],
    dropped: set[str],
    added: list[tuple[str, bytes]],
) -> None:
    headers = [
        (name, replaced.get(name, raw)) for name, raw in RECORD.headers if name not in dropped
    ] + added
    rejected: ContractError | None = None
    try:
        envelope = from_kafka(key, value, headers)
    except ContractError as error:
        rejected = error
    if rejected is not None:
        assert rejected.code
        assert rejected.reason
        return
    # Accepted: the contract's headers (the optional ones may be missing), once each, and
    # the key is the aggregate.
    names = [name for name, _ in headers if name in HEADERS.values()]
    assert len(names) == len(set(names))
    assert set(REQUIRED_HEADERS.values()) <= set(names)
    assert key == envelope.aggregateid.encode()


def test_no_key_is_an_invalid_key() -> None:
    with pytest.raises(InvalidKey, match="no key"):
        from_kafka(None, RECORD.value, RECORD.headers)


@pytest.mark.parametrize("header", CE_HEADERS)
def test_a_cloudevents_header_given_twice_is_malformed(header: str) -> None:
    again = next(raw for name, raw in RECORD.headers if name == header)
    with pytest.raises(MalformedEvent, match=f"{header} appears more than once"):
        from_kafka(RECORD.key, RECORD.value, [*RECORD.headers, (header, again)])


@pytest.mark.parametrize("raw", [b"\xed\xa0\x80", b"\xff\xfe"])
def test_header_bytes_that_are_not_utf8_are_malformed(raw: bytes) -> None:
    headers = [(name, raw if name == "ce_id" else value) for name, value in RECORD.headers]
    with pytest.raises(MalformedEvent, match="ce_id is not UTF-8"):
        from_kafka(RECORD.key, RECORD.value, headers)


def test_unknown_headers_are_ignored() -> None:
    record = KafkaRecord(RECORD.key, RECORD.value, [*RECORD.headers, ("trace", b"\xff")])
    assert from_kafka(*record).aggregateid == "C-42"
