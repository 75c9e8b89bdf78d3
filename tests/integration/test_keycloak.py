"""The genuine Keycloak the launcher starts, with the realm of ``deploy/keycloak/``: its
discovery document; a token for every demo user (password grant) and every service
account (client-credentials grant), each validated with PyJWT against the realm's JWKS
(signature, ``iss``, ``aud``, ``exp``) and carrying the roles the realm file gives; the
console's authorization-code flow, which Keycloak refuses without PKCE (S256).

The users and clients are read from the realm file, so the tests follow it."""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
import secrets
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import jwt
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from local_infra.keycloak_server import (
    TOKEN_CLIENT,
    client_credentials_grant,
    client_secret,
    password_grant,
    staff_password,
)
from local_infra.paths import KEYCLOAK_REALM_FILE
from local_infra.pytest_trust import IdentityProvider

pytestmark = pytest.mark.integration

REALM: dict[str, Any] = json.loads(KEYCLOAK_REALM_FILE.read_text())
AUDIENCE = "crm-api"
CONSOLE = "crm-console"
CONSOLE_REDIRECT = "http://localhost:5173/callback"

DEMO_USERS = [user for user in REALM["users"] if "serviceAccountClientId" not in user]
SERVICE_ACCOUNTS = {
    user["serviceAccountClientId"]: user["realmRoles"]
    for user in REALM["users"]
    if "serviceAccountClientId" in user
}
CONFIDENTIAL_CLIENTS = [client for client in REALM["clients"] if not client["publicClient"]]


@pytest.fixture(scope="module")
def discovery(oidc_issuer: str) -> dict[str, Any]:
    answer = httpx.get(f"{oidc_issuer}/.well-known/openid-configuration", timeout=30)
    assert answer.status_code == 200
    document: dict[str, Any] = answer.json()
    return document


@pytest.fixture(scope="module")
def signing_keys(discovery: dict[str, Any]) -> jwt.PyJWKClient:
    return jwt.PyJWKClient(discovery["jwks_uri"])


def validated(token: str, issuer: str, keys: jwt.PyJWKClient) -> dict[str, Any]:
    """The claims of ``token`` once its signature, issuer, audience and expiry hold."""
    claims: dict[str, Any] = jwt.decode(
        token,
        keys.get_signing_key_from_jwt(token).key,
        algorithms=["RS256"],
        audience=AUDIENCE,
        issuer=issuer,
        options={"require": ["exp", "iat", "iss", "aud", "sub"]},
    )
    return claims


def test_the_discovery_document_names_the_issuer_and_its_endpoints(
    oidc_issuer: str, discovery: dict[str, Any]
) -> None:
    assert discovery["issuer"] == oidc_issuer
    for endpoint in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        assert discovery[endpoint].startswith(oidc_issuer + "/")
    assert "S256" in discovery["code_challenge_methods_supported"]
    assert {"authorization_code", "client_credentials", "password"} <= set(
        discovery["grant_types_supported"]
    )
    keys = httpx.get(discovery["jwks_uri"], timeout=30).json()["keys"]
    assert any(key["kty"] == "RSA" and key.get("use") == "sig" for key in keys)


@pytest.mark.parametrize("user", DEMO_USERS, ids=[user["username"] for user in DEMO_USERS])
def test_every_demo_user_gets_a_valid_token_with_their_role(
    user: dict[str, Any], identity_provider: IdentityProvider, signing_keys: jwt.PyJWKClient
) -> None:
    oidc_issuer, secrets = identity_provider.issuer, identity_provider.secrets
    password = staff_password(secrets).get_secret_value()
    claims = validated(
        password_grant(oidc_issuer, user["username"], password), oidc_issuer, signing_keys
    )
    assert claims["sub"] == user["id"]
    assert claims["preferred_username"] == user["username"]
    assert claims["staff_id"] == user["attributes"]["staff_id"][0]
    assert sorted(claims["roles"]) == sorted(user["realmRoles"])
    assert claims["azp"] == TOKEN_CLIENT
    assert "client_id" not in claims


@pytest.mark.parametrize(
    "client", CONFIDENTIAL_CLIENTS, ids=[client["clientId"] for client in CONFIDENTIAL_CLIENTS]
)
def test_every_service_account_gets_a_valid_token_naming_its_client(
    client: dict[str, Any], identity_provider: IdentityProvider, signing_keys: jwt.PyJWKClient
) -> None:
    oidc_issuer, secrets = identity_provider.issuer, identity_provider.secrets
    secret = client_secret(secrets, client["clientId"]).get_secret_value()
    token = client_credentials_grant(oidc_issuer, client["clientId"], secret)
    claims = validated(token, oidc_issuer, signing_keys)
    assert claims["azp"] == claims["client_id"] == client["clientId"]
    assert sorted(claims["roles"]) == sorted(SERVICE_ACCOUNTS[client["clientId"]])
    assert claims["preferred_username"] == f"service-account-{client['clientId']}"


def test_a_wrong_client_secret_gets_no_token(identity_provider: IdentityProvider) -> None:
    client = CONFIDENTIAL_CLIENTS[0]
    secret = client_secret(identity_provider.secrets, client["clientId"]).get_secret_value()
    answer = httpx.post(
        f"{identity_provider.issuer}/protocol/openid-connect/token",
        data={
            "grant_type": "client_credentials",
            "client_id": client["clientId"],
            "client_secret": secret + "-wrong",
        },
        timeout=30,
    )
    assert answer.status_code == 401
    assert answer.json()["error"] == "unauthorized_client"


@settings(
    max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(password=st.text(min_size=1, max_size=40))
def test_a_wrong_password_gets_no_token(identity_provider: IdentityProvider, password: str) -> None:
    oidc_issuer = identity_provider.issuer
    assume(password != staff_password(identity_provider.secrets).get_secret_value())
    answer = httpx.post(
        f"{oidc_issuer}/protocol/openid-connect/token",
        data={
            "grant_type": "password",
            "client_id": TOKEN_CLIENT,
            "username": DEMO_USERS[0]["username"],
            "password": password,
        },
        timeout=30,
    )
    assert answer.status_code == 400  # RFC 6749: invalid_grant is a 400
    assert answer.json()["error"] == "invalid_grant"


def authorization_request(issuer: str, **extra: str) -> str:
    query = {
        "client_id": CONSOLE,
        "response_type": "code",
        "redirect_uri": CONSOLE_REDIRECT,
        "scope": "openid",
        "state": secrets.token_urlsafe(8),
    }
    return f"{issuer}/protocol/openid-connect/auth?{urlencode(query | extra)}"


def refusal(answer: httpx.Response) -> dict[str, list[str]]:
    """The error Keycloak sends back to the console's redirect URI."""
    assert answer.status_code == 302, answer.text
    location = answer.headers["location"]
    assert location.startswith(CONSOLE_REDIRECT)
    return parse_qs(urlsplit(location).query)


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def log_in(issuer: str, password: str, challenge: str) -> str:
    """Sign a demo user in through the login page as a new browser would (its own
    cookies, no session yet); the code Keycloak sends the console."""
    with httpx.Client(timeout=30) as browser:
        request = authorization_request(
            issuer, code_challenge=challenge, code_challenge_method="S256"
        )
        page = browser.get(request)
        assert page.status_code == 200, page.text
        forms = re.findall(r"<form[^>]*>", page.text)
        action = re.search(r'action="([^"]+)"', next(f for f in forms if "kc-form-login" in f))
        assert action is not None
        # Keycloak marks its login cookies Secure, which a browser sends to a loopback
        # address over http and httpx does not: send them as the browser would.
        cookies = "; ".join(f"{cookie.name}={cookie.value}" for cookie in page.cookies.jar)
        answer = browser.post(
            html.unescape(action.group(1)),
            data={"username": DEMO_USERS[0]["username"], "password": password},
            headers={"Cookie": cookies},
        )
    query = refusal(answer)  # a redirect to the console, with the code this time
    assert "error" not in query, query
    return query["code"][0]


def exchange(issuer: str, code: str, verifier: str) -> httpx.Response:
    return httpx.post(
        f"{issuer}/protocol/openid-connect/token",
        data={
            "grant_type": "authorization_code",
            "client_id": CONSOLE,
            "code": code,
            "redirect_uri": CONSOLE_REDIRECT,
            "code_verifier": verifier,
        },
        timeout=30,
    )


def test_the_console_is_refused_a_code_flow_without_pkce_s256(oidc_issuer: str) -> None:
    without = refusal(httpx.get(authorization_request(oidc_issuer), timeout=30))
    assert without["error"] == ["invalid_request"]
    plain = refusal(
        httpx.get(
            authorization_request(
                oidc_issuer, code_challenge="x" * 43, code_challenge_method="plain"
            ),
            timeout=30,
        )
    )
    assert plain["error"] == ["invalid_request"]


def test_the_console_signs_a_user_in_with_pkce_and_only_the_verifier_redeems_the_code(
    identity_provider: IdentityProvider, signing_keys: jwt.PyJWKClient
) -> None:
    oidc_issuer = identity_provider.issuer
    password = staff_password(identity_provider.secrets).get_secret_value()
    verifier = secrets.token_urlsafe(48)
    stolen = log_in(oidc_issuer, password, s256(verifier))
    refused = exchange(oidc_issuer, stolen, secrets.token_urlsafe(48))
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_grant"

    code = log_in(oidc_issuer, password, s256(verifier))
    answer = exchange(oidc_issuer, code, verifier)
    assert answer.status_code == 200, answer.text
    claims = validated(answer.json()["access_token"], oidc_issuer, signing_keys)
    assert claims["preferred_username"] == DEMO_USERS[0]["username"]
    assert claims["azp"] == CONSOLE
