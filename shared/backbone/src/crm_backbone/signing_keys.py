"""The identity provider's signing keys (its JWKS), cached by key id and refreshed on rotation.

A token naming a key id the cache lacks makes the cache fetch the key set again, at most
once per ``refresh_interval`` whatever the number of unknown ids (so tokens with made-up
ids cannot hammer the provider); the set is also fetched again when older than
``max_age``, so a key the provider withdrew stops being accepted. Fetches are blocking
calls run in a thread of the cache's own, never on the event loop; concurrent requests
that need the same refresh wait for that one fetch.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.request
from collections.abc import Callable, Collection, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import structlog
from jwt import PyJWK, PyJWTError

log = structlog.get_logger(__name__)

SIGNATURE_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
"""The algorithms a token may be signed with: public-key signatures only. ``none`` and the
HMAC algorithms (whose key is a shared secret, and which a forger would "sign" with the
provider's public key) are never accepted."""

JwksSource = Callable[[], Mapping[str, Any]]
"""Returns the provider's current JSON Web Key Set (a blocking call)."""


def check_algorithms(algorithms: Collection[str]) -> tuple[str, ...]:
    """``algorithms`` as an allow-list, refused (``ValueError``) unless all are public-key ones."""
    refused = sorted(set(algorithms) - SIGNATURE_ALGORITHMS)
    if refused or not algorithms:
        raise ValueError(
            f"token algorithms must be public-key signatures among "
            f"{sorted(SIGNATURE_ALGORITHMS)}; refused: {refused or 'an empty list'}"
        )
    return tuple(algorithms)


class SigningKeysUnavailable(Exception):
    """The key set could not be fetched, and the key asked for is not in the cache."""


def http_jwks_source(issuer: str, jwks_uri: str | None = None, timeout: float = 5.0) -> JwksSource:
    """Fetches the key set over HTTP from ``jwks_uri``, or from the ``jwks_uri`` the issuer's
    OpenID discovery document names (read at the first fetch, then kept)."""
    found: list[str] = [jwks_uri] if jwks_uri else []

    def fetch() -> Mapping[str, Any]:
        if not found:
            discovery = _get_json(f"{issuer.rstrip('/')}/.well-known/openid-configuration", timeout)
            if discovery.get("issuer") != issuer or not isinstance(discovery.get("jwks_uri"), str):
                raise ValueError("the discovery document names another issuer or no jwks_uri")
            found.append(discovery["jwks_uri"])
        return _get_json(found[0], timeout)

    return fetch


def _get_json(url: str, timeout: float) -> dict[str, Any]:
    if not url.startswith(("http://", "https://")):
        raise ValueError("the identity provider's URLs must be http(s)")
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        document = json.load(response)
    if not isinstance(document, dict):
        raise ValueError("the identity provider answered something that is not a JSON object")
    return document


def _usable_keys(jwks: Mapping[str, Any], algorithms: Collection[str]) -> dict[str, PyJWK]:
    """The signature keys of ``jwks`` with an id and an allowed algorithm, by id; the rest
    (encryption keys, keys of other algorithms, malformed entries) are left out."""
    entries = jwks.get("keys")
    keys: dict[str, PyJWK] = {}
    for entry in entries if isinstance(entries, list) else ():
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
            continue
        try:
            key = PyJWK(entry)
        except PyJWTError:
            continue
        if isinstance(key.key_id, str) and key.algorithm_name in algorithms:
            keys[key.key_id] = key
    return keys


class SigningKeys:
    """The provider's signing keys by key id, fetched through ``source``."""

    def __init__(
        self,
        source: JwksSource,
        algorithms: Collection[str],
        *,
        refresh_interval: float = 10.0,
        max_age: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._source = source
        self.algorithms = check_algorithms(algorithms)
        """The algorithms tokens may be signed with; keys of others are left out."""
        self._refresh_interval = refresh_interval
        self._max_age = max_age
        self._clock = clock
        self._keys: dict[str, PyJWK] = {}
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._last_fetch_failed = False
        self._pending: Future[None] | None = None
        self._lock = threading.Lock()
        self._fetcher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="jwks")

    async def key(self, kid: str) -> PyJWK | None:
        """The key with id ``kid``, or None when the provider has no such key.

        Raises :class:`SigningKeysUnavailable` when the key is unknown and the last fetch
        failed (the provider is unreachable: the token may well be good)."""
        if kid not in self._keys or self._stale():
            pending = self._refresh_if_due()
            if pending is not None:
                await asyncio.shield(asyncio.wrap_future(pending))
        key = self._keys.get(kid)
        if key is None and self._last_fetch_failed:
            raise SigningKeysUnavailable
        return key

    def _stale(self) -> bool:
        return self._fetched_at is None or self._clock() - self._fetched_at > self._max_age

    def _refresh_if_due(self) -> Future[None] | None:
        """The fetch under way, or a new one unless one started within the interval."""
        with self._lock:
            if self._pending is not None:
                return self._pending
            now = self._clock()
            if self._attempted_at is not None and now - self._attempted_at < self._refresh_interval:
                return None
            self._attempted_at = now
            self._pending = self._fetcher.submit(self._refresh)
            return self._pending

    def _refresh(self) -> None:
        """Fetch the key set and replace the cache; on failure keep the keys held."""
        try:
            keys = _usable_keys(self._source(), self.algorithms)
        except Exception as error:
            log.warning("signing keys not fetched", error=f"{type(error).__name__}: {error}")
            with self._lock:
                self._last_fetch_failed = True
                self._pending = None
            return
        with self._lock:
            self._keys = keys
            self._fetched_at = self._clock()
            self._last_fetch_failed = False
            self._pending = None
        log.info("signing keys fetched", key_ids=sorted(keys))
