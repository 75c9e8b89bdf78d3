"""The base of every service's ``eventsourcing`` application."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from eventsourcing.application import Application
from eventsourcing.persistence import Recording


class ServiceApplication(Application[uuid.UUID]):
    """An application that calls ``on_saved`` after each save: the relay uses it to
    publish at once instead of waiting for its next poll."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        super().__init__(env)
        self.on_saved: Callable[[], None] = lambda: None

    def _notify(self, recordings: list[Recording[uuid.UUID]]) -> None:
        self.on_saved()


class StaleVersion(Exception):
    """A command sent with an ``expected_version`` the aggregate has moved past (HTTP 409)."""

    def __init__(self, what: str, expected: int, current: int) -> None:
        super().__init__(
            f"{what} is at version {current}, not the expected {expected}: read it again and retry"
        )
        self.expected = expected
        self.current = current
