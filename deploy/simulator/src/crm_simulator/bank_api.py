"""Calls to a service's API as the simulated bank's people and systems, each with its own
bearer token, patient while the service catches up with Kafka."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import httpx

from crm_simulator.logins import Tokens

CATCHING_UP = frozenset({403, 404})
"""Answers of a service that does not know the caller's position or the customer yet."""
PATIENCE = 60
"""Retries (a second apart) a service may need in a row before the day stops waiting."""


@dataclass
class DayReport:
    calls: int = 0
    refused: dict[str, int] = field(default_factory=dict)

    def count(self, response: httpx.Response) -> None:
        self.calls += 1
        if response.status_code >= 400:
            kind = response.json().get("type", str(response.status_code))
            self.refused[kind] = self.refused.get(kind, 0) + 1


@dataclass
class Api:
    """One service's API, called as the simulated bank's people and systems."""

    client: httpx.AsyncClient
    tokens: Tokens
    report: DayReport = field(default_factory=DayReport)
    patience: int = PATIENCE

    async def as_staff(
        self, staff_id: str, method: str, path: str, body: Any = None
    ) -> httpx.Response:
        """The call as the staff member ``staff_id``, logged in as themselves."""
        return await self._call(method, path, body, staff=staff_id)

    async def as_system(
        self, client_id: str, method: str, path: str, body: Any = None
    ) -> httpx.Response:
        """The call as the upstream system ``client_id``'s service account."""
        return await self._call(method, path, body, system=client_id)

    async def _call(
        self, method: str, path: str, body: Any, *, staff: str = "", system: str = ""
    ) -> httpx.Response:
        while True:
            headers = await (self.tokens.staff(staff) if staff else self.tokens.system(system))
            response = await self.client.request(method, path, json=body, headers=headers)
            if response.status_code not in CATCHING_UP or self.patience <= 0:
                break
            self.patience -= 1
            await asyncio.sleep(1)
        if response.status_code not in CATCHING_UP:
            self.patience = PATIENCE
        self.report.count(response)
        return response
