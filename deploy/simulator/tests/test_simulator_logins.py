"""The scripted day's logins: the right grant per caller, tokens kept until near expiry."""

from __future__ import annotations

from pathlib import Path
from secrets import token_urlsafe
from urllib.parse import parse_qsl

import httpx
import pytest
from crm_simulator.logins import RENEW_BEFORE_S, LoginRefused, Logins, Tokens
from pydantic import SecretStr

ISSUER = "http://idp.test/realms/crm"


class FakeProvider:
    """A token endpoint that answers a fresh token per request and remembers the forms."""

    def __init__(self, expires_in: float = 300, status: int = 200) -> None:
        self.forms: list[dict[str, str]] = []
        self.expires_in = expires_in
        self.status = status

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert str(request.url) == f"{ISSUER}/protocol/openid-connect/token"
        self.forms.append(dict(parse_qsl(request.content.decode())))
        if self.status != 200:
            return httpx.Response(self.status, json={"error": "invalid_grant"})
        token = f"token-{len(self.forms)}"
        return httpx.Response(200, json={"access_token": token, "expires_in": self.expires_in})


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


STAFF_SECRET = token_urlsafe(16)
"""The staff users' password in this run's secrets folder."""
CLIENT_SECRET = token_urlsafe(16)
"""Core banking's client secret there."""


def configured(secrets: Path) -> Logins:
    """Logins from a secrets folder laid out as the local launcher's."""
    (secrets / "keycloak").mkdir(exist_ok=True)
    (secrets / "keycloak" / "demo-staff").write_text(STAFF_SECRET + "\n")
    (secrets / "keycloak" / "core-banking").write_text(CLIENT_SECRET + "\n")
    return Logins.from_secrets(ISSUER, secrets)


def tokens(provider: FakeProvider, clock: Clock, logins: Logins | None = None) -> Tokens:
    http = httpx.AsyncClient(transport=httpx.MockTransport(provider))
    return Tokens(logins or Logins(ISSUER, SecretStr(STAFF_SECRET), Path("/nowhere")), http, clock)


async def test_staff_log_in_as_their_lower_case_user_with_the_password_grant() -> None:
    provider = FakeProvider()
    headers = await tokens(provider, Clock()).staff("RM-0001")
    assert headers == {"Authorization": "Bearer token-1"}
    assert provider.forms == [
        {
            "grant_type": "password",
            "client_id": "crm-cli",
            "username": "rm-0001",
            "password": STAFF_SECRET,
        }
    ]


async def test_systems_use_client_credentials_with_the_secret_of_the_secrets_folder(
    tmp_path: Path,
) -> None:
    provider = FakeProvider()
    await tokens(provider, Clock(), configured(tmp_path)).system("core-banking")
    assert provider.forms == [
        {
            "grant_type": "client_credentials",
            "client_id": "core-banking",
            "client_secret": CLIENT_SECRET,
        }
    ]


async def test_a_missing_secret_is_refused_naming_where_it_was_looked_for(tmp_path: Path) -> None:
    source = tokens(FakeProvider(), Clock(), configured(tmp_path))
    with pytest.raises(LoginRefused, match="channel-gateway"):
        await source.system("channel-gateway")


async def test_a_token_is_reused_until_shortly_before_it_expires() -> None:
    provider, clock = FakeProvider(expires_in=300), Clock()
    source = tokens(provider, clock)
    first = await source.staff("RM-0001")
    clock.now += 300 - RENEW_BEFORE_S - 1
    assert await source.staff("RM-0001") == first
    assert await source.staff("RM-0002") != first  # each user their own
    clock.now += 1
    renewed = await source.staff("RM-0001")
    assert renewed != first
    assert len(provider.forms) == 3


async def test_a_refused_login_names_who_but_not_the_secret(tmp_path: Path) -> None:
    source = tokens(FakeProvider(status=401), Clock(), configured(tmp_path))
    with pytest.raises(LoginRefused) as refused:
        await source.system("core-banking")
    assert "core-banking" in str(refused.value)
    assert CLIENT_SECRET not in str(refused.value)
