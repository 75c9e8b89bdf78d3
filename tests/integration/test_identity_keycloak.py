"""Bearer tokens of the genuine Keycloak, validated by the backbone's validator over HTTP
(discovery document, JWKS): a relationship manager's password-grant token and an
upstream system's client-credentials token prove who they are; Keycloak's ID token and a
tampered access token are refused; a key Keycloak rotates in is accepted after one fetch
of the key set, and made-up key ids fetch nothing more.

Rotation runs in a realm of the test's own, created and deleted through the admin API,
so no other test sees its keys change."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
import pytest
from crm_backbone.http import install_problem_handlers
from crm_backbone.identity import (
    Authenticated,
    ChallengeProblem,
    TokenValidator,
    install_authentication,
    token_validator,
)
from crm_backbone.principal import Principal
from crm_backbone.settings import ServiceSettings
from crm_backbone.signing_keys import http_jwks_source
from crm_backbone.testing_identity import b64
from fastapi import FastAPI
from fastapi.testclient import TestClient
from local_infra.accounts import LocalSecrets
from local_infra.keycloak_server import TOKEN_CLIENT, admin_password, client_secret, staff_password
from local_infra.pytest_trust import IdentityProvider

pytestmark = pytest.mark.integration

RM_SUBJECT = "12e16011-ce21-5870-aaf0-92952aa01edc"
"""rm-0001's id in the realm file (deploy/keycloak/crm-realm.json)."""


@pytest.fixture(scope="module")
def issuer(oidc_issuer: str) -> str:
    """The genuine Keycloak's realm the launcher imports (deploy/keycloak/)."""
    return oidc_issuer


@pytest.fixture(scope="module")
def secrets(identity_provider: IdentityProvider) -> LocalSecrets:
    """The realm's secrets (the launcher's, made at random)."""
    return identity_provider.secrets


def token(issuer: str, **form: str) -> dict[str, Any]:
    answer = httpx.post(f"{issuer}/protocol/openid-connect/token", data=form, timeout=30)
    answer.raise_for_status()
    body: dict[str, Any] = answer.json()
    return body


def password_grant(issuer: str, username: str, secrets: LocalSecrets) -> dict[str, Any]:
    return token(
        issuer,
        grant_type="password",
        client_id=TOKEN_CLIENT,
        username=username,
        password=staff_password(secrets).get_secret_value(),
        scope="openid",
    )


def client_credentials(issuer: str, client_id: str, secret: str) -> str:
    form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
    access_token: str = token(issuer, **form)["access_token"]
    return access_token


def validate(validator: TokenValidator, access_token: str) -> Principal | ChallengeProblem:
    try:
        return asyncio.run(validator.validate(access_token))
    except ChallengeProblem as refused:
        return refused


def test_a_relationship_managers_token_proves_who_they_are(
    issuer: str, secrets: LocalSecrets
) -> None:
    validator = token_validator(ServiceSettings(oidc_issuer=issuer))
    assert validator is not None
    tokens = password_grant(issuer, "rm-0001", secrets)
    assert validate(validator, tokens["access_token"]) == Principal(
        subject=RM_SUBJECT,
        username="rm-0001",
        client_id=TOKEN_CLIENT,
        staff_id="RM-0001",
        roles=frozenset({"relationship_manager"}),
        service_account=False,
    )
    refused = validate(validator, tokens["id_token"])  # for the client, not for the API
    assert isinstance(refused, ChallengeProblem)
    assert refused.detail == "the token is not meant for this API"
    header, _, signature = tokens["access_token"].split(".")
    forged = jwt.utils.base64url_encode(
        b'{"iss":"%s","aud":"crm-api","sub":"%s","exp":4102444800,"roles":["auditor"]}'
        % (issuer.encode(), RM_SUBJECT.encode())
    ).decode()
    refused = validate(validator, f"{header}.{forged}.{signature}")
    assert isinstance(refused, ChallengeProblem)
    assert refused.detail == "the token's signature does not verify"


def test_an_upstream_systems_token_is_a_service_account(issuer: str, secrets: LocalSecrets) -> None:
    validator = token_validator(ServiceSettings(oidc_issuer=issuer))
    assert validator is not None
    principal = validate(
        validator,
        client_credentials(
            issuer, "core-banking", client_secret(secrets, "core-banking").get_secret_value()
        ),
    )
    assert isinstance(principal, Principal)
    assert (principal.client_id, principal.username, principal.service_account) == (
        "core-banking",
        "service-account-core-banking",
        True,
    )
    assert principal.roles == {"upstream_system"}


def test_an_api_behind_keycloak_answers_a_genuine_token(issuer: str, secrets: LocalSecrets) -> None:
    app = FastAPI()
    install_problem_handlers(app, {})

    @app.get("/me")
    async def me(principal: Authenticated) -> dict[str, str | None]:
        return {"staff_id": principal.staff_id}

    install_authentication(app, token_validator(ServiceSettings(oidc_issuer=issuer)))
    client = TestClient(app)
    access_token = password_grant(issuer, "bm-0001", secrets)["access_token"]
    answer = client.get("/me", headers={"Authorization": f"Bearer {access_token}"})
    assert (answer.status_code, answer.json()) == (200, {"staff_id": "BM-0001"})
    assert client.get("/me").status_code == 401


# -- key rotation, in a realm of the test's own ------------------------------------------


@dataclass
class Realm:
    """A throwaway realm with one confidential client whose tokens are for ``crm-api``."""

    issuer: str
    admin: httpx.Client
    client_id: str = "rotation-test"
    secret: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def name(self) -> str:
        return self.issuer.rsplit("/", 1)[-1]

    def access_token(self) -> str:
        return client_credentials(self.issuer, self.client_id, self.secret)

    def add_signing_key(self, priority: int) -> None:
        """A new RSA key of higher priority: Keycloak signs new tokens with it."""
        answer = self.admin.post(
            f"/admin/realms/{self.name}/components",
            json={
                "name": f"rotated-{priority}",
                "providerId": "rsa-generated",
                "providerType": "org.keycloak.keys.KeyProvider",
                "parentId": self.name,
                "config": {"priority": [str(priority)], "algorithm": ["RS256"]},
            },
        )
        answer.raise_for_status()


@pytest.fixture
def realm(issuer: str, secrets: LocalSecrets) -> Iterator[Realm]:
    server = issuer.split("/realms/", 1)[0]
    admin_token = token(
        f"{server}/realms/master",
        grant_type="password",
        client_id="admin-cli",
        username="admin",
        password=admin_password(secrets).get_secret_value(),
    )["access_token"]
    name = f"t-rotation-{uuid.uuid4().hex[:8]}"
    with httpx.Client(
        base_url=server, headers={"Authorization": f"Bearer {admin_token}"}, timeout=60
    ) as admin:
        realm = Realm(f"{server}/realms/{name}", admin)
        audience = {
            "name": "audience crm-api",
            "protocol": "openid-connect",
            "protocolMapper": "oidc-audience-mapper",
            "config": {"included.custom.audience": "crm-api", "access.token.claim": "true"},
        }
        client = {
            "clientId": realm.client_id,
            "secret": realm.secret,
            "publicClient": False,
            "serviceAccountsEnabled": True,
            "standardFlowEnabled": False,
            "protocolMappers": [audience],
        }
        created = admin.post(
            "/admin/realms", json={"id": name, "realm": name, "enabled": True, "clients": [client]}
        )
        created.raise_for_status()
        try:
            yield realm
        finally:
            admin.delete(f"/admin/realms/{name}")


@dataclass
class CountingSource:
    """The validator's HTTP key source, counted."""

    issuer: str
    fetches: int = 0

    def __post_init__(self) -> None:
        self._fetch = http_jwks_source(self.issuer)

    def __call__(self) -> Mapping[str, Any]:
        self.fetches += 1
        return self._fetch()


@dataclass
class Clock:
    now: float = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_key_keycloak_rotates_in_is_accepted_after_one_fetch(realm: Realm) -> None:
    source, clock = CountingSource(realm.issuer), Clock()
    validator = token_validator(ServiceSettings(oidc_issuer=realm.issuer), source, clock)
    assert validator is not None
    before = realm.access_token()
    assert isinstance(validate(validator, before), Principal)

    realm.add_signing_key(priority=500)
    after = realm.access_token()
    assert jwt.get_unverified_header(after)["kid"] != jwt.get_unverified_header(before)["kid"]
    _, payload, signature = after.split(".")
    made_up = [
        f"{b64(json.dumps({'alg': 'RS256', 'kid': f'made-up-{n}'}).encode())}.{payload}.{signature}"
        for n in range(20)
    ]
    for refused in (validate(validator, forged) for forged in made_up):
        assert isinstance(refused, ChallengeProblem)
    assert source.fetches == 1  # made-up key ids within the interval fetch nothing

    clock.now += 11  # the refresh interval (10 s) has passed
    assert isinstance(validate(validator, after), Principal)
    assert isinstance(validate(validator, before), Principal)  # the old key is still published
    assert source.fetches == 2
