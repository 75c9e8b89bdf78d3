"""The keyset cursor of paged queries: the sort key and id a page ended with, opaque.

On the wire: URL-safe base64 of the JSON list ``[sort key, id]`` (a datetime as ISO text).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

Key = TypeVar("Key")


class InvalidCursor(ValueError):
    """A cursor this service did not give (the API answers 400 ``invalid-cursor``)."""

    def __init__(self) -> None:
        super().__init__("cursor is not one this API returned")


def encode_cursor(sort_key: str | datetime, last_id: str) -> str:
    """The cursor of a page that ended with ``last_id``, sorted by ``sort_key``."""
    key = sort_key.isoformat() if isinstance(sort_key, datetime) else sort_key
    return base64.urlsafe_b64encode(json.dumps([key, last_id]).encode()).decode()


def decode_cursor(cursor: str, parse_key: Callable[[str], Key]) -> tuple[Key, str]:
    """The (sort key, id) a page ended with, the key read by ``parse_key`` (``str``,
    ``datetime.fromisoformat``); :class:`InvalidCursor` for a cursor not made here."""
    try:
        key, last_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return parse_key(key), str(last_id)
    except (ValueError, TypeError):  # binascii.Error and JSON errors are ValueErrors
        raise InvalidCursor from None
