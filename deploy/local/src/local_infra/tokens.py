"""Bearer tokens of the local realm's users and clients, for tests, the simulator and the bench.

The local profiles' realm gives every demo user, and every confidential client, a secret
the launcher made at random into the profile's secrets folder
(``local_infra.keycloak_server.with_secrets``); a real deployment imports no users and
keeps its secrets out of files. Tokens are fetched from the genuine Keycloak and reused
until shortly before they expire.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import jwt

from local_infra.accounts import LocalSecrets
from local_infra.keycloak_server import (
    client_credentials_grant,
    client_secret,
    password_grant,
    staff_password,
)

RENEW_BEFORE_S = 30.0
"""A token this close to its expiry is fetched again."""


@dataclass
class RealmTokens:
    """Tokens of the realm behind ``issuer``, cached per user and per client."""

    issuer: str
    secrets: LocalSecrets
    """The profile's secrets folder (``CRM_SECRETS_DIR``), holding the realm's."""
    _cache: dict[tuple[str, str], tuple[str, float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def staff_token(self, username: str) -> str:
        """A demo user's access token (``rm-0001``, ``bm-0001``, ``ho-0001``, ...)."""
        password = staff_password(self.secrets).get_secret_value()
        return self._cached(
            ("user", username), lambda: password_grant(self.issuer, username, password)
        )

    def service_token(self, client_id: str) -> str:
        """A confidential client's service-account token (``crm-customer``, ``core-banking``)."""
        return self._cached(
            ("client", client_id),
            lambda: client_credentials_grant(
                self.issuer, client_id, client_secret(self.secrets, client_id).get_secret_value()
            ),
        )

    def staff(self, username: str, **headers: str) -> dict[str, str]:
        """Request headers of a call by the demo user ``username`` (plus ``headers``)."""
        return {"Authorization": f"Bearer {self.staff_token(username)}", **headers}

    def service(self, client_id: str, **headers: str) -> dict[str, str]:
        """Request headers of a call by the service account of ``client_id``."""
        return {"Authorization": f"Bearer {self.service_token(client_id)}", **headers}

    def _cached(self, key: tuple[str, str], fetch: Callable[[], str]) -> str:
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None and cached[1] - RENEW_BEFORE_S > time.time():
                return cached[0]
            token = fetch()
            expires = float(jwt.decode(token, options={"verify_signature": False})["exp"])
            self._cache[key] = (token, expires)
            return token
