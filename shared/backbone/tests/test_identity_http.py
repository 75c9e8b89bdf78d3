"""Bearer tokens through HTTP: a small FastAPI app behind the identity dependencies."""

from __future__ import annotations

from typing import Any

import pytest
from crm_backbone.callers import Authentication, Who
from crm_backbone.http import PROBLEM_JSON, install_problem_handlers
from crm_backbone.identity import Authenticated, forbidden, token_validator
from crm_backbone.settings import ServiceSettings
from crm_backbone.testing_identity import (
    TEST_ISSUER,
    TEST_SUBJECT,
    Signer,
    TestIdentity,
    TestProvider,
    access_claims,
)
from fastapi import FastAPI
from fastapi.testclient import TestClient

SIGNER = Signer.rsa("rsa-1")
TEST_IDENTITY = TestIdentity()


def make_app(*, with_validator: bool = True) -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app, {})

    @app.get("/me")
    async def me(principal: Authenticated) -> dict[str, Any]:
        return {"subject": principal.subject, "roles": sorted(principal.roles)}

    @app.get("/audit")
    async def audit(principal: Authenticated) -> dict[str, str]:
        if not principal.has_any_role("auditor"):
            raise forbidden("the audit trail is for auditors")
        return {"status": "ok"}

    @app.post("/commands")
    async def command(caller: Who) -> dict[str, Any]:
        return {
            "actor": caller.actor,
            "client": caller.client,
            "correlation_id": caller.correlation_id,
            "scope": sorted(caller.reach.scope.values),
        }

    validator = token_validator(ServiceSettings(oidc_issuer=TEST_ISSUER), TestProvider([SIGNER]))
    Authentication(validator if with_validator else None, TEST_IDENTITY.positions).install(app)
    return app


@pytest.fixture(scope="module")
def client() -> TestClient:
    return TestClient(make_app())


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize(
    ("headers", "challenge"),
    [
        ({}, "Bearer"),
        ({"Authorization": "Basic cm0tMDAwMTpjcm0tbG9jYWw="}, 'Bearer error="invalid_request"'),
        ({"Authorization": "Bearer"}, 'Bearer error="invalid_request"'),
        (bearer("not-a-token"), 'Bearer error="invalid_token"'),
        (bearer(SIGNER.sign(access_claims(aud="account"))), 'Bearer error="invalid_token"'),
        (bearer(Signer.rsa("rsa-9").sign(access_claims())), 'Bearer error="invalid_token"'),
    ],
    ids=["no header", "basic", "empty bearer", "garbage", "wrong audience", "unknown key"],
)
def test_a_request_without_a_valid_token_is_a_401_problem(
    client: TestClient, headers: dict[str, str], challenge: str
) -> None:
    response = client.get("/me", headers=headers)
    assert response.status_code == 401
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.headers["www-authenticate"].startswith(challenge)
    problem = response.json()
    assert (problem["type"], problem["status"], problem["instance"]) == (
        "/problems/unauthenticated",
        401,
        "/me",
    )


def test_a_valid_token_is_answered(client: TestClient) -> None:
    response = client.get("/me", headers=bearer(SIGNER.sign(access_claims())))
    assert response.status_code == 200
    assert response.json() == {
        "subject": TEST_SUBJECT,
        "roles": sorted(["relationship_manager", "default-roles-crm", "offline_access"]),
    }


def test_a_command_runs_as_the_token_subject(client: TestClient) -> None:
    headers = {**bearer(SIGNER.sign(access_claims())), "X-Correlation-Id": "flow-7"}
    response = client.post("/commands", headers=headers)
    assert response.json() == {
        "actor": TEST_SUBJECT,
        "client": "crm-cli",
        "correlation_id": "flow-7",
        "scope": ["RM-0001"],
    }
    assert client.post("/commands", headers={"X-Actor": "rm-0001"}).status_code == 401


def test_a_proven_caller_without_the_role_is_a_403_problem(client: TestClient) -> None:
    response = client.get("/audit", headers=bearer(SIGNER.sign(access_claims())))
    assert response.status_code == 403
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.headers["www-authenticate"].startswith('Bearer error="insufficient_scope"')
    assert response.json()["type"] == "/problems/forbidden"
    auditor = SIGNER.sign(access_claims(roles=["auditor"]))
    assert client.get("/audit", headers=bearer(auditor)).status_code == 200


def test_the_openapi_document_lets_docs_log_in_through_the_provider(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "An access token of the identity provider (audience crm-api)",
    }
    flow = schemes["oidc"]["flows"]["authorizationCode"]
    assert flow["authorizationUrl"] == f"{TEST_ISSUER}/protocol/openid-connect/auth"
    assert flow["tokenUrl"] == f"{TEST_ISSUER}/protocol/openid-connect/token"
    assert document["paths"]["/me"]["get"]["security"] == [{"bearer": []}, {"oidc": []}]
    problems = document["paths"]["/me"]["get"]["responses"]
    assert problems["401"]["content"]["application/problem+json"]["example"]["status"] == 401
    assert problems["403"]["content"]["application/problem+json"]["example"]["status"] == 403
    docs = client.get("/docs").text
    assert '"usePkceWithAuthorizationCodeGrant": true' in docs
    assert '"clientId": "crm-console"' in docs


def test_an_app_without_an_identity_provider_says_so() -> None:
    response = TestClient(make_app(with_validator=False)).get("/me", headers=bearer("x"))
    assert response.status_code == 503
    assert response.json()["type"] == "/problems/authentication-unconfigured"
