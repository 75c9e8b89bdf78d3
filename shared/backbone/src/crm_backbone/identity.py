"""Every caller proven: bearer tokens of the OpenID Connect provider, validated in the API.

:class:`TokenValidator` checks a token's signature against the provider's keys
(:mod:`crm_backbone.signing_keys`), its algorithm against an allow-list of public-key
signatures, and its ``iss``, ``aud``, ``exp`` and ``nbf``; it answers the
:class:`~crm_backbone.principal.Principal` the token proves or raises a 401 problem.
:func:`authenticated_principal` is the FastAPI dependency (:mod:`crm_backbone.callers`
places the principal in the organisation); :func:`install_authentication` gives an app
its validator and lets ``/docs`` log in through the provider.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated, Any

import jwt
from fastapi import FastAPI, Request, Security
from fastapi.responses import JSONResponse
from fastapi.security import (
    HTTPAuthorizationCredentials,
    HTTPBearer,
    OAuth2AuthorizationCodeBearer,
)
from jwt import (
    DecodeError,
    ExpiredSignatureError,
    ImmatureSignatureError,
    InvalidAlgorithmError,
    InvalidAudienceError,
    InvalidIssuerError,
    InvalidSignatureError,
    MissingRequiredClaimError,
    PyJWK,
    PyJWTError,
)

from crm_backbone.http import Problem, problem_responses
from crm_backbone.principal import Principal
from crm_backbone.settings import ServiceSettings
from crm_backbone.signing_keys import (
    JwksSource,
    SigningKeys,
    SigningKeysUnavailable,
    http_jwks_source,
)

REQUIRED_CLAIMS = ("exp", "iss", "aud", "sub")


class ChallengeProblem(Problem):
    """A problem that tells the client how to authenticate (``WWW-Authenticate``)."""

    def __init__(
        self, status: int, kind: str, title: str, detail: str, challenge: str, **extra: Any
    ) -> None:
        super().__init__(status, kind, title, detail, **extra)
        self.challenge = challenge

    def response(self, instance: str) -> JSONResponse:
        response = super().response(instance)
        response.headers["WWW-Authenticate"] = self.challenge
        return response


def unauthenticated(detail: str, error: str | None = "invalid_token") -> ChallengeProblem:
    """401: no credentials (``error`` None), malformed ones or a token refused. ``detail``
    says why in fixed words: never the token's contents."""
    challenge = f'Bearer error="{error}", error_description="{detail}"' if error else "Bearer"
    return ChallengeProblem(401, "unauthenticated", "Unauthorized", detail, challenge)


def forbidden(detail: str) -> ChallengeProblem:
    """403: the caller is proven but may not do this."""
    challenge = f'Bearer error="insufficient_scope", error_description="{detail}"'
    return ChallengeProblem(403, "forbidden", "Forbidden", detail, challenge)


_REFUSALS: tuple[tuple[type[PyJWTError], str], ...] = (
    (ExpiredSignatureError, "the token has expired"),
    (ImmatureSignatureError, "the token is not valid yet"),
    (InvalidAudienceError, "the token is not meant for this API"),
    (InvalidIssuerError, "the token was not issued by the expected provider"),
    (InvalidAlgorithmError, "the token's algorithm is not accepted"),
    (InvalidSignatureError, "the token's signature does not verify"),
    (DecodeError, "the token is not a well-formed JWT"),
)


def _refusal(error: PyJWTError) -> ChallengeProblem:
    if isinstance(error, MissingRequiredClaimError):
        return unauthenticated(f"the token lacks its {error.claim} claim")
    detail = next((why for kind, why in _REFUSALS if isinstance(error, kind)), None)
    return unauthenticated(detail or "the token is invalid")


class TokenValidator:
    """Validates the provider's access tokens for one audience.

    A client sends the same token with every call until it expires: a token verified
    once is remembered (its exact text, its principal, its expiry and the key that
    verified it), so its next calls cost a lookup, not a signature check. A remembered
    token still stops at its expiry, and as soon as its key is no longer the provider's."""

    REMEMBERED = 10_000
    """Beyond this many tokens remembered, the memory starts again empty."""

    def __init__(
        self,
        keys: SigningKeys,
        *,
        issuer: str,
        audience: str,
        leeway: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.issuer = issuer
        self.audience = audience
        self.algorithms = keys.algorithms
        self.leeway = leeway
        self._keys = keys
        self._clock = clock
        self._verified: dict[str, tuple[Principal, float, str, PyJWK]] = {}

    async def validate(self, token: str) -> Principal:
        """The principal ``token`` proves; a 401 :class:`ChallengeProblem` when it proves
        none, a 503 problem when the provider's keys cannot be fetched."""
        verified = self._verified.get(token)
        if verified is not None:
            principal, expires, kid, key = verified
            if self._clock() < expires and await self._key(kid) is key:
                return principal
            del self._verified[token]
        principal, claims, kid, key = await self._verify(token)
        if len(self._verified) >= self.REMEMBERED:
            self._verified.clear()
        self._verified[token] = (principal, float(claims["exp"]) + self.leeway, kid, key)
        return principal

    async def _key(self, kid: str) -> PyJWK | None:
        try:
            return await self._keys.key(kid)
        except SigningKeysUnavailable:
            raise Problem(
                503,
                "identity-provider-unavailable",
                "Service unavailable",
                "the identity provider's signing keys cannot be fetched; retry",
            ) from None

    async def _verify(self, token: str) -> tuple[Principal, dict[str, Any], str, PyJWK]:
        """Every check of ``token``: its principal, claims, key id and key."""
        try:
            header = jwt.get_unverified_header(token)
        except PyJWTError as error:
            raise _refusal(error) from None
        if header.get("alg") not in self.algorithms:
            raise unauthenticated("the token's algorithm is not accepted")
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise unauthenticated("the token names no signing key")
        key = await self._key(kid)
        if key is None:
            raise unauthenticated("the token's signing key is not one of the provider's")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=self.algorithms,
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": list(REQUIRED_CLAIMS)},
            )
        except PyJWTError as error:
            raise _refusal(error) from None
        try:
            return Principal.from_claims(claims), claims, kid, key
        except ValueError:
            raise unauthenticated("the token's subject is not an id") from None


def token_validator(
    settings: ServiceSettings,
    source: JwksSource | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> TokenValidator | None:
    """The validator ``settings`` configure (None without an issuer); its keys come from
    ``source``, by default the provider over HTTP."""
    if settings.oidc_issuer is None:
        return None
    keys = SigningKeys(
        source or http_jwks_source(settings.oidc_issuer, settings.oidc_jwks_uri),
        settings.oidc_algorithms,
        refresh_interval=settings.oidc_key_refresh_interval_s,
        clock=clock,
    )
    return TokenValidator(
        keys,
        issuer=settings.oidc_issuer,
        audience=settings.oidc_audience,
        leeway=settings.oidc_leeway_s,
    )


BEARER = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="An access token of the identity provider (audience crm-api)",
)
OIDC_LOGIN_SCHEME = "oidc"
OIDC_LOGIN = OAuth2AuthorizationCodeBearer(
    authorizationUrl="",  # the deployment's: see install_authentication
    tokenUrl="",
    scheme_name=OIDC_LOGIN_SCHEME,
    auto_error=False,
    description="Log in through the identity provider (authorization code with PKCE)",
)


async def authenticated_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)],
    _login: Annotated[str | None, Security(OIDC_LOGIN)],
) -> Principal:
    """FastAPI dependency: the principal of the request's bearer token (401 without one).

    ``_login`` reads the same header; it is there so the OpenAPI document offers the
    provider's login to ``/docs``."""
    validator: TokenValidator | None = getattr(request.app.state, "token_validator", None)
    if validator is None:
        raise Problem(
            503,
            "authentication-unconfigured",
            "Service unavailable",
            "this deployment has no identity provider configured (CRM_OIDC_ISSUER)",
        )
    if credentials is None:
        if "authorization" not in request.headers:
            raise unauthenticated("a bearer token is required", error=None)
        raise unauthenticated("the Authorization header holds no bearer token", "invalid_request")
    return await validator.validate(credentials.credentials)


Authenticated = Annotated[Principal, Security(authenticated_principal)]
"""The proven caller of a request."""


AUTHENTICATION_PROBLEMS = {
    str(status): response
    for status, response in problem_responses(
        (401, "unauthenticated", "Unauthorized", "a bearer token is required"),
        (403, "forbidden", "Forbidden", "this role may not change the book"),
    ).items()
}
"""OpenAPI ``responses`` of every operation that takes a token."""


def install_authentication(
    app: FastAPI, validator: TokenValidator | None, console_client: str = "crm-console"
) -> None:
    """Give ``app`` its token validator, and its OpenAPI document the 401 and 403 of every
    operation that takes a token and the provider's login endpoints (Keycloak's, under the
    issuer) so ``/docs`` logs in as ``console_client``."""
    app.state.token_validator = validator
    if validator is not None:
        app.swagger_ui_init_oauth = {
            "clientId": console_client,
            "usePkceWithAuthorizationCodeGrant": True,
            "scopes": "openid",
        }
    document_of = app.openapi

    def openapi() -> dict[str, Any]:
        document = document_of()
        for operations in document.get("paths", {}).values():
            for operation in operations.values():
                if operation.get("security"):
                    responses = operation.setdefault("responses", {})
                    for status, problem in AUTHENTICATION_PROBLEMS.items():
                        responses.setdefault(status, problem)
        schemes = document.get("components", {}).get("securitySchemes", {})
        flow = schemes.get(OIDC_LOGIN_SCHEME, {}).get("flows", {}).get("authorizationCode")
        if flow is not None and validator is not None:
            endpoints = f"{validator.issuer.rstrip('/')}/protocol/openid-connect"
            flow.update(authorizationUrl=f"{endpoints}/auth", tokenUrl=f"{endpoints}/token")
        return document

    app.openapi = openapi  # type: ignore[method-assign]
