"""Errors raised when a Kafka record breaks the event contract.

Each error has a short machine ``code``: the dead-letter reason code.
"""

from typing import ClassVar

from pydantic import ValidationError


class ContractError(Exception):
    """A record that cannot be read as a contract event."""

    code: ClassVar[str] = "contract"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class MalformedEvent(ContractError):
    """Body is not JSON, or a required header is missing or invalid."""

    code = "malformed"


class InvalidKey(ContractError):
    """The record has no key, or a key other than its aggregate id."""

    code = "invalid_key"


class UnknownEventType(ContractError):
    """No payload model is registered for the event type."""

    code = "unknown_type"


class UnknownSchemaVersion(ContractError):
    """The schema version is newer than any registered, or was never registered."""

    code = "unknown_version"


class InvalidEventBody(ContractError):
    """The JSON body does not validate against the payload model."""

    code = "invalid_body"


def summarise(error: ValidationError, limit: int = 5) -> str:
    """One line naming the first ``limit`` validation errors by location."""
    parts = [
        f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}"
        for e in error.errors(include_url=False)[:limit]
    ]
    more = error.error_count() - limit
    if more > 0:
        parts.append(f"... and {more} more")
    return "; ".join(parts)
