"""Who the simulated bank's people and systems are to the CRM: bearer tokens of its
identity provider.

A relationship manager or branch manager logs in as their own user of the realm (the
staff id in lower case, :mod:`crm_simulator.realm`), through the realm's client with the
password grant; an upstream system (core banking, the channel gateway, HR) as its
client's service account (client credentials). Passwords and secrets come from
configuration (:class:`Logins`), never from code: given, or read from the secrets folder
(:meth:`Logins.from_secrets`, the local launcher's, made at random). Tokens are kept until
shortly before they expire, then fetched again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from crm_backbone.credentials import DEMO_STAFF, KEYCLOAK
from pydantic import SecretStr

LOGIN_CLIENT = "crm-cli"
"""The local realm's public client that accepts the password grant."""
RENEW_BEFORE_S = 30.0
"""A token this close to its expiry is fetched again."""


class LoginRefused(RuntimeError):
    """The identity provider refused a login (the message names who, never a secret)."""


@dataclass(frozen=True)
class Logins:
    """Where to log in, and the credentials: ``client_secrets`` is a folder holding a file
    per client (``<folder>/<client id>``)."""

    issuer: str
    staff_password: SecretStr
    client_secrets: Path
    login_client: str = LOGIN_CLIENT

    @classmethod
    def from_secrets(cls, issuer: str, secrets_dir: Path) -> Logins:
        """The credentials a secrets folder holds (``CRM_SECRETS_DIR``: ``keycloak/``)."""
        folder = secrets_dir / KEYCLOAK
        return cls(issuer, SecretStr(_read(folder / DEMO_STAFF)), folder)

    def client_secret(self, client_id: str) -> SecretStr:
        return SecretStr(_read(self.client_secrets / client_id))


def _read(secret: Path) -> str:
    try:
        return secret.read_text().strip()
    except OSError as error:
        raise LoginRefused(f"no secret at {secret}: {error.strerror}") from None


@dataclass
class Tokens:
    """Request headers carrying the token of a staff member or of a system, cached."""

    logins: Logins
    http: httpx.AsyncClient
    clock: Callable[[], float] = time.monotonic
    _cache: dict[str, tuple[str, float]] = field(default_factory=dict)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def staff(self, staff_id: str) -> dict[str, str]:
        """Headers of a call by the staff member ``staff_id`` (``RM-0001``), as themselves."""
        username = staff_id.lower()
        form = {
            "grant_type": "password",
            "client_id": self.logins.login_client,
            "username": username,
            "password": self.logins.staff_password.get_secret_value(),
        }
        return await self._bearer(f"user {username}", form)

    async def system(self, client_id: str) -> dict[str, str]:
        """Headers of a call by the upstream system ``client_id`` (its service account)."""
        form = {
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": self.logins.client_secret(client_id).get_secret_value(),
        }
        return await self._bearer(f"client {client_id}", form)

    async def _bearer(self, who: str, form: dict[str, str]) -> dict[str, str]:
        async with self._lock:
            cached = self._cache.get(who)
            if cached is None or cached[1] - RENEW_BEFORE_S <= self.clock():
                cached = await self._fetch(who, form)
                self._cache[who] = cached
        return {"Authorization": f"Bearer {cached[0]}"}

    async def _fetch(self, who: str, form: dict[str, str]) -> tuple[str, float]:
        asked = self.clock()
        url = f"{self.logins.issuer.rstrip('/')}/protocol/openid-connect/token"
        answer = await self.http.post(url, data=form)
        if answer.status_code != 200:
            raise LoginRefused(f"the identity provider refused the login of {who}: {answer.text}")
        grant = answer.json()
        return grant["access_token"], asked + float(grant["expires_in"])
