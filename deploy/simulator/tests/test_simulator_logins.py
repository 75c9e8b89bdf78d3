"""The scripted day's logins: the right grant per caller, tokens kept until near expiry."""

from __future__ import annotations

from pathlib import Path
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


def tokens(provider: FakeProvider, clock: Clock, logins: Logins | None = None) -> Tokens:
    http = httpx.AsyncClient(transport=httpx.MockTransport(provider))
    return Tokens(logins or Logins(ISSUER), http, clock)


async def test_staff_log_in_as_their_lower_case_user_with_the_password_grant() -> None:
    provider = FakeProvider()
    headers = await tokens(provider, Clock()).staff("RM-0001")
    assert headers == {"Authorization": "Bearer token-1"}
    assert provider.forms == [
        {
            "grant_type": "password",
            "client_id": "crm-cli",
            "username": "rm-0001",
            "password": "crm-local",
        }
    ]


async def test_systems_use_client_credentials_with_the_configured_or_local_secret(
    tmp_path: Path,
) -> None:
    provider = FakeProvider()
    await tokens(provider, Clock()).system("core-banking")
    (tmp_path / "core-banking").write_text("from-a-file\n")
    configured = Logins(ISSUER, SecretStr("pw"), client_secrets=tmp_path)
    await tokens(provider, Clock(), configured).system("core-banking")
    assert [form["client_secret"] for form in provider.forms] == [
        "core-banking-local",
        "from-a-file",
    ]
    assert {form["grant_type"] for form in provider.forms} == {"client_credentials"}


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


async def test_a_refused_login_names_who_but_not_the_secret() -> None:
    source = tokens(FakeProvider(status=401), Clock())
    with pytest.raises(LoginRefused) as refused:
        await source.system("channel-gateway")
    assert "channel-gateway" in str(refused.value)
    assert "channel-gateway-local" not in str(refused.value)
