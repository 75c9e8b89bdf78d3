"""Who issued the command being handled, carried into every event it causes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True)
class CommandContext:
    actor: str
    correlation_id: str
    causation_id: str | None = None
    client: str | None = None
    """The OAuth client the command came through (a token's ``azp``); None for the
    service's own workers."""


SYSTEM = CommandContext(actor="system", correlation_id="system")
_current: ContextVar[CommandContext] = ContextVar("command_context", default=SYSTEM)


def current_context() -> CommandContext:
    return _current.get()


@contextmanager
def command_context(
    actor: str,
    correlation_id: str | None = None,
    causation_id: str | None = None,
    client: str | None = None,
) -> Iterator[CommandContext]:
    """Run a command as ``actor`` (through ``client``); events it triggers record actor,
    client and correlation."""
    context = CommandContext(actor, correlation_id or str(uuid.uuid4()), causation_id, client)
    token = _current.set(context)
    try:
        yield context
    finally:
        _current.reset(token)
