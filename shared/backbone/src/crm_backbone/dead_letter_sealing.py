"""Dead letters sealed: a record a consumer gives up on may hold a person's data in clear
(an upstream ``bank.*`` record), so its body goes to the dead-letter topic sealed.

The letter's value, and each original header that is not a CloudEvents attribute, is
sealed under the data subject's key (:func:`record_subject`); an erasure destroys that key,
and the letter with it. A record whose subject cannot be told is sealed under the key of
its month's dead letters (``deadletters:<yyyy-mm>``), destroyed once the dead-letter topic's
retention has passed over the whole month (:func:`expired_dead_letter_keys`, run by
``python -m crm_backbone.keys expire-dead-letters``). The ``dlq_*`` headers stay clear and
hold no personal data: contract errors name headers, fields and codes; a handler's error is
clear by its type only, its full text sealed in ``dlq_detail``.

The parking lot (:mod:`crm_backbone.parking`) seals what it holds back the same way
(:func:`record_subject`, :func:`seal_record`, :func:`open_record`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from crm_events.envelope import HEADERS
from crm_events.errors import ContractError
from crm_events.personal import FieldSealer, KeyDestroyed, is_token, subject_of
from crm_events.registry import registry
from crm_events.topics import COREBANKING_CUSTOMERS, CUSTOMER_EVENTS, DEAD_LETTER

SEALED_FOR_HEADER = "dlq_sealed_for"
"""The subject whose key sealed the letter (an id, never personal data)."""
ERASED_HEADER = "dlq_erased"
"""Set when the subject was erased before the record was set aside: no body was kept."""
DETAIL_HEADER = "dlq_detail"
"""A handler's error in full, sealed (it may quote what it read)."""
HANDLER_ERROR = "handler_error"
DEAD_LETTER_SUBJECT_PREFIX = "deadletters:"
CLEAR_HEADERS = frozenset(HEADERS.values())
"""The CloudEvents attributes: ids, types, versions, times, sources; no personal data."""
CUSTOMER_KEYED_TOPICS = (CUSTOMER_EVENTS.name, COREBANKING_CUSTOMERS.name)
"""Topics whose record key is a customer id: the subject of a record no one can read."""
SUBJECT_SHAPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,99}")
"""What an id looks like; a subject taken from a bad record's body must look like one."""
DEAD_LETTER_RETENTION = timedelta(milliseconds=DEAD_LETTER.retention_ms)

Headers = Sequence[tuple[str, bytes]]


def month_subject(at: datetime, prefix: str = DEAD_LETTER_SUBJECT_PREFIX) -> str:
    """The subject of the records set aside in ``at``'s month with no subject of their own
    (dead letters by default; ``prefix`` names another kind, e.g. parked records)."""
    return f"{prefix}{at.astimezone(UTC):%Y-%m}"


def _header(headers: Headers, name: str) -> str | None:
    values = [value for header, value in headers if header == name]
    try:
        return values[0].decode() if len(values) == 1 else None
    except UnicodeDecodeError:
        return None


def record_subject(
    topic: str, key: bytes | None, value: bytes | None, headers: Headers
) -> str | None:
    """Whose data the record holds: the contract's subject rule where its type is known and
    its body a JSON object, else its key on a topic keyed by customer; None if unknown."""
    try:
        aggregate = key.decode() if key else None
    except UnicodeDecodeError:
        aggregate = None
    subject: str | None = None
    try:
        model = registry.model(
            _header(headers, HEADERS["type"]) or "",
            int(_header(headers, HEADERS["schemaversion"]) or ""),
        )
        data = json.loads(value or b"")
        if isinstance(data, dict) and aggregate:
            subject = subject_of(model, data, aggregate)
    except (ContractError, ValueError):
        pass
    if subject is None and aggregate and topic.endswith(CUSTOMER_KEYED_TOPICS):
        subject = aggregate
    return subject if subject and SUBJECT_SHAPE.fullmatch(subject) else None


@dataclass(frozen=True)
class SealedLetter:
    """What goes to the dead-letter topic: value and headers sealed, plus clear headers."""

    value: bytes | None
    headers: list[tuple[str, bytes]]


def seal_record(
    subject: str, value: bytes | None, headers: Headers, sealer: FieldSealer
) -> SealedLetter:
    """A record's value, and each header but the CloudEvents attributes, sealed under
    ``subject``'s key; raises ``KeyDestroyed`` once that key is destroyed."""
    return SealedLetter(
        None if value is None else sealer.seal(subject, value).encode(),
        [
            (name, raw if name in CLEAR_HEADERS else sealer.seal(subject, raw).encode())
            for name, raw in headers
        ],
    )


def seal_letter(
    topic: str,
    key: bytes | None,
    value: bytes | None,
    headers: Headers,
    reason: tuple[str, str],
    sealer: FieldSealer,
    now: datetime,
) -> SealedLetter:
    """The record's value and non-CloudEvents headers sealed under its subject's key (or its
    month's); ``reason`` is (code, reason). A record about an erased subject keeps no body."""
    code, text = reason
    subject = record_subject(topic, key, value, headers) or month_subject(now)
    original = list(headers)
    clear_reason = text
    if code == HANDLER_ERROR:
        clear_reason = text.split("(", 1)[0]
        original.append((DETAIL_HEADER, text.encode()))
    try:
        sealed = seal_record(subject, value, original, sealer)
    except KeyDestroyed:
        cleared = [(name, raw) for name, raw in original if name in CLEAR_HEADERS]
        sealed = SealedLetter(None, [*cleared, (ERASED_HEADER, b"true")])
    return SealedLetter(
        sealed.value,
        [
            *sealed.headers,
            ("dlq_code", code.encode()),
            ("dlq_reason", clear_reason.encode()),
            (SEALED_FOR_HEADER, subject.encode()),
        ],
    )


@dataclass(frozen=True)
class OpenedLetter:
    """A dead letter's original value and headers; ``erased``: its key is destroyed, and
    nothing of the original is left (value None, only the clear headers)."""

    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    erased: bool


def _token(raw: bytes | None) -> str | None:
    try:
        text = raw.decode() if raw is not None else None
    except UnicodeDecodeError:
        return None
    return text if is_token(text) else None


def open_letter(value: bytes | None, headers: Headers, sealer: FieldSealer) -> OpenedLetter:
    """The letter's original bytes, opened under the subject its ``dlq_sealed_for`` names
    (a letter of before sealing, with no such header, is returned as it is)."""
    subject = _header(headers, SEALED_FOR_HEADER)
    if subject is None:
        return OpenedLetter(value, tuple(headers), erased=False)
    erased = _header(headers, ERASED_HEADER) is not None
    return open_record(subject, value, headers, sealer, erased=erased)


def open_record(
    subject: str,
    value: bytes | None,
    headers: Headers,
    sealer: FieldSealer,
    *,
    erased: bool = False,
) -> OpenedLetter:
    """A record sealed by :func:`seal_record` under ``subject``'s key, opened; ``erased``
    (or a token that no longer opens): nothing of the original but its clear headers."""
    opened: list[tuple[str, bytes]] = []
    for name, raw in headers:
        token = _token(raw)
        plaintext = raw if token is None else sealer.open(subject, token)
        erased = erased or plaintext is None
        if plaintext is not None:
            opened.append((name, plaintext))
    token = _token(value)
    body = value if token is None else sealer.open(subject, token)
    erased = erased or (value is not None and body is None)
    if erased:
        kept = tuple((name, raw) for name, raw in opened if not may_hold_personal_data(name))
        return OpenedLetter(None, kept, erased=True)
    return OpenedLetter(body, tuple(opened), erased=False)


def may_hold_personal_data(header: str) -> bool:
    """Whether a dead letter's header may hold personal data (it is sealed, and printed by
    no tool): every header but the CloudEvents attributes and the ``dlq_*`` ones, and the
    handler's error in full."""
    return header == DETAIL_HEADER or not (header in CLEAR_HEADERS or header.startswith("dlq_"))


def is_sealed(headers: Headers) -> bool:
    return _header(headers, SEALED_FOR_HEADER) is not None


def expired_dead_letter_keys(now: datetime, months_back: int = 24) -> Iterator[str]:
    """The month keys of dead letters all past the topic's retention at ``now``: every
    month that ended at least the retention period ago, up to ``months_back`` months back."""
    month = now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    for _ in range(months_back):
        ended = month
        month = (month - timedelta(days=1)).replace(day=1)
        if ended + DEAD_LETTER_RETENTION <= now:
            yield month_subject(month)
