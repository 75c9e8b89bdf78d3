"""Bearer-token validation, with keys and tokens made in the test (no identity provider).

The provider is a callable the validator fetches its key set from (counting the fetches),
and time for the key cache is a clock the test moves; tokens expire by the wall clock, as
the validator checks them.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt
import pytest
from crm_backbone.identity import ChallengeProblem, TokenValidator, token_validator
from crm_backbone.principal import Principal
from crm_backbone.settings import ServiceSettings
from crm_backbone.signing_keys import SigningKeys
from crm_backbone.testing_identity import (
    TEST_AUDIENCE,
    TEST_ISSUER,
    TEST_SUBJECT,
    Signer,
    TestProvider,
    access_claims,
    b64,
)
from crm_events.common import ID_PATTERN
from cryptography.hazmat.primitives import serialization
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

ISSUER, AUDIENCE, USER_ID = TEST_ISSUER, TEST_AUDIENCE, TEST_SUBJECT
RS256 = Signer.rsa("rsa-1")
PS256 = Signer("rsa-pss", "PS256", RS256.private_key)
ES256 = Signer.ec("ec-1")
ROTATED = Signer.rsa("rsa-2")
RSA_KEY = RS256.private_key


@dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


claims = access_claims


def validator_for(provider: TestProvider, clock: Clock | None = None) -> TokenValidator:
    validator = token_validator(
        ServiceSettings(oidc_issuer=ISSUER, oidc_key_refresh_interval_s=10.0),
        source=provider,
        clock=clock or Clock(),
    )
    assert validator is not None
    return validator


def outcome(validator: TokenValidator, token: str) -> Principal | ChallengeProblem:
    try:
        return asyncio.run(validator.validate(token))
    except ChallengeProblem as refused:
        return refused


def refusal(validator: TokenValidator, token: str) -> str:
    """Why ``validator`` refuses ``token`` (failing the test when it accepts it)."""
    result = outcome(validator, token)
    assert isinstance(result, ChallengeProblem), "the token was accepted"
    assert result.status == 401
    assert result.challenge.startswith('Bearer error="invalid_token"')
    return result.detail


def hand_made(header: Mapping[str, Any], payload: Mapping[str, Any], signature: bytes) -> str:
    return ".".join(
        [b64(json.dumps(header).encode()), b64(json.dumps(payload).encode()), b64(signature)]
    )


# -- accepted -----------------------------------------------------------------------------


@pytest.mark.parametrize("signer", [RS256, PS256, ES256], ids=lambda s: s.alg)
def test_a_valid_token_proves_its_principal(signer: Signer) -> None:
    validator = validator_for(TestProvider([RS256, PS256, ES256]))
    principal = outcome(validator, signer.sign(claims()))
    assert principal == Principal(
        subject=USER_ID,
        username="rm-0001",
        client_id="crm-cli",
        staff_id="RM-0001",
        roles=frozenset({"relationship_manager", "default-roles-crm", "offline_access"}),
        service_account=False,
    )
    assert isinstance(principal, Principal)
    assert principal.actor == USER_ID
    assert principal.has_any_role("auditor", "relationship_manager")
    assert not principal.has_any_role("auditor")


def test_a_service_account_is_known_by_its_client() -> None:
    validator = validator_for(TestProvider([RS256]))
    token = RS256.sign(
        claims(
            sub="5c0d1d39-7c1e-4f51-9b53-5d0b0a6c2a11",
            azp="core-banking",
            client_id="core-banking",
            preferred_username="service-account-core-banking",
            staff_id=None,
            roles=["upstream_system"],
            realm_access=None,
        )
    )
    principal = outcome(validator, token)
    assert isinstance(principal, Principal)
    assert (principal.client_id, principal.service_account) == ("core-banking", True)
    assert principal.roles == {"upstream_system"}


def test_clock_skew_within_the_leeway_is_tolerated() -> None:
    validator = validator_for(TestProvider([RS256]))
    now = int(time.time())
    assert isinstance(outcome(validator, RS256.sign(claims(exp=now - 2, nbf=now + 2))), Principal)


# -- refused ------------------------------------------------------------------------------

NOW = int(time.time())
REFUSED_CLAIMS = {
    "expired": (claims(exp=NOW - 60), "the token has expired"),
    "not yet valid": (claims(nbf=NOW + 3600), "the token is not valid yet"),
    "wrong audience": (claims(aud="account"), "the token is not meant for this API"),
    "wrong issuer": (
        claims(iss="http://127.0.0.1:18080/realms/master"),
        "the token was not issued by the expected provider",
    ),
    "no subject": (claims(sub=None), "the token lacks its sub claim"),
    "no expiry": (claims(exp=None), "the token lacks its exp claim"),
    "no audience": (claims(aud=None), "the token lacks its aud claim"),
    "subject no id": (claims(sub="Li Na"), "the token's subject is not an id"),
}


@pytest.mark.parametrize(("token_claims", "why"), REFUSED_CLAIMS.values(), ids=REFUSED_CLAIMS)
def test_a_token_failing_a_claim_check_is_refused(token_claims: dict[str, Any], why: str) -> None:
    validator = validator_for(TestProvider([RS256]))
    token = RS256.sign(token_claims)
    assert refusal(validator, token) == why  # fixed words: nothing of the token


def test_an_unsigned_token_is_refused() -> None:
    validator = validator_for(TestProvider([RS256]))
    token = jwt.encode(claims(), "", algorithm="none", headers={"kid": RS256.kid})
    assert refusal(validator, token) == "the token's algorithm is not accepted"


def test_a_token_signed_with_the_public_key_as_an_hmac_secret_is_refused() -> None:
    """Algorithm confusion: a forger "signs" with HS256 and the provider's public key."""
    public_pem = RSA_KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    # the key set even publishes a symmetric key under that id: still never HMAC
    hmac_key = {"kty": "oct", "kid": RS256.kid, "alg": "HS256", "k": b64(public_pem)}
    validator = validator_for(TestProvider([RS256], extra=[hmac_key]))
    header = {"alg": "HS256", "typ": "JWT", "kid": RS256.kid}
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims()).encode())}"
    signature = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    assert refusal(validator, f"{signing_input}.{b64(signature)}") == (
        "the token's algorithm is not accepted"
    )


def test_a_token_whose_header_names_another_algorithm_than_its_key_is_refused() -> None:
    validator = validator_for(TestProvider([RS256, ES256]))
    token = ES256.sign(claims(), kid=RS256.kid)
    assert refusal(validator, token) == "the token's algorithm is not accepted"


def test_a_token_signed_by_an_unknown_key_is_refused() -> None:
    validator = validator_for(TestProvider([RS256]))
    assert refusal(validator, ROTATED.sign(claims())) == (
        "the token's signing key is not one of the provider's"
    )
    stranger = Signer(RS256.kid, "RS256", ROTATED.private_key)  # a known id, another key
    assert refusal(validator, stranger.sign(claims())) == "the token's signature does not verify"


def test_a_tampered_token_is_refused() -> None:
    validator = validator_for(TestProvider([RS256]))
    header, _, signature = RS256.sign(claims()).split(".")
    promoted = b64(json.dumps(claims(roles=["analyst", "auditor"])).encode())
    assert refusal(validator, f"{header}.{promoted}.{signature}") == (
        "the token's signature does not verify"
    )
    token = RS256.sign(claims())
    flipped = token[:-8] + ("A" if token[-8] != "A" else "B") + token[-7:]
    assert refusal(validator, flipped) == "the token's signature does not verify"


@pytest.mark.parametrize(
    "garbage",
    ["", "Bearer", "abc", "a.b", "a.b.c", "...", "e30.e30.", "eyJhbGciOiJSUzI1NiJ9.e30.x", "\x00é"],
)
def test_garbage_is_refused(garbage: str) -> None:
    validator = validator_for(TestProvider([RS256]))
    assert refusal(validator, garbage) in {
        "the token is not a well-formed JWT",
        "the token names no signing key",
        "the token's algorithm is not accepted",
    }


def test_only_public_key_algorithms_can_be_allowed() -> None:
    for algorithms in (["HS256"], ["RS256", "none"], []):
        with pytest.raises(ValidationError):
            ServiceSettings(oidc_algorithms=tuple(algorithms))
        with pytest.raises(ValueError, match="public-key"):
            SigningKeys(TestProvider([RS256]), algorithms)
    assert token_validator(ServiceSettings(oidc_issuer=None)) is None


# -- signing keys: rotation, rate limit, outage --------------------------------------------


def test_a_token_of_a_rotated_key_is_accepted_after_one_refresh() -> None:
    provider, clock = TestProvider([RS256]), Clock()
    validator = validator_for(provider, clock)
    assert isinstance(outcome(validator, RS256.sign(claims())), Principal)
    provider.signers.append(ROTATED)
    clock.now += 11  # the last fetch is older than the refresh interval
    assert isinstance(outcome(validator, ROTATED.sign(claims())), Principal)
    assert isinstance(outcome(validator, RS256.sign(claims())), Principal)
    assert provider.fetches == 2


def test_unknown_key_ids_fetch_the_keys_at_most_once_per_interval() -> None:
    provider, clock = TestProvider([RS256]), Clock()
    validator = validator_for(provider, clock)

    async def burst(size: int) -> list[Principal | BaseException]:
        tokens = [Signer(f"made-up-{i}", "RS256", RSA_KEY).sign(claims()) for i in range(size)]
        return await asyncio.gather(
            *(validator.validate(token) for token in tokens), return_exceptions=True
        )

    assert all(isinstance(r, ChallengeProblem) for r in asyncio.run(burst(50)))
    assert provider.fetches == 1
    clock.now += 5
    asyncio.run(burst(50))
    assert provider.fetches == 1
    clock.now += 6
    asyncio.run(burst(50))
    assert provider.fetches == 2


def test_concurrent_first_requests_share_one_fetch() -> None:
    provider = TestProvider([RS256])
    validator = validator_for(provider)

    async def together() -> list[Principal]:
        return await asyncio.gather(*(validator.validate(RS256.sign(claims())) for _ in range(20)))

    assert all(isinstance(p, Principal) for p in asyncio.run(together()))
    assert provider.fetches == 1


def test_a_key_the_provider_withdrew_stops_being_accepted_once_the_keys_are_old() -> None:
    provider, clock = TestProvider([RS256, ROTATED]), Clock()
    keys = SigningKeys(provider, ["RS256"], refresh_interval=10, max_age=300, clock=clock)
    validator = TokenValidator(keys, issuer=ISSUER, audience=AUDIENCE)
    assert isinstance(outcome(validator, RS256.sign(claims())), Principal)
    provider.signers.remove(RS256)
    clock.now += 200
    assert isinstance(outcome(validator, RS256.sign(claims())), Principal)  # still cached
    clock.now += 101
    assert refusal(validator, RS256.sign(claims())) == (
        "the token's signing key is not one of the provider's"
    )
    assert provider.fetches == 2


def test_an_unreachable_provider_is_a_503_and_known_keys_keep_working() -> None:
    provider, clock = TestProvider([RS256], down=True), Clock()
    validator = validator_for(provider, clock)
    with pytest.raises(Exception, match="signing keys cannot be fetched") as raised:
        asyncio.run(validator.validate(RS256.sign(claims())))
    assert getattr(raised.value, "status", None) == 503
    provider.down = False
    clock.now += 11
    assert isinstance(outcome(validator, RS256.sign(claims())), Principal)
    provider.down = True
    clock.now += 400  # the keys are old, the refresh fails: the cached key still serves
    assert isinstance(outcome(validator, RS256.sign(claims())), Principal)
    assert provider.fetches == 3


# -- generated claim sets and garbage ------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=6,
)
claim_values = {
    "iss": st.sampled_from([ISSUER, ISSUER + "/", "http://evil.example/realms/crm"]) | json_values,
    "aud": st.sampled_from([AUDIENCE, [AUDIENCE], ["account"], [AUDIENCE, "x"]]) | json_values,
    "sub": st.sampled_from([USER_ID, "rm-0001", "", "a b"]) | json_values,
    "exp": st.integers(NOW - 100, NOW + 1000) | json_values,
    "nbf": st.integers(NOW - 1000, NOW + 100) | json_values,
    "iat": st.integers(NOW - 1000, NOW + 100) | json_values,
    "azp": json_values,
    "client_id": json_values,
    "preferred_username": json_values,
    "staff_id": json_values,
    "roles": st.lists(st.text(max_size=10)) | json_values,
    "realm_access": st.fixed_dictionaries({"roles": json_values}) | json_values,
}
claim_sets = st.fixed_dictionaries({}, optional=claim_values)
changed_claims = st.fixed_dictionaries(
    {}, optional={name: st.none() | values for name, values in claim_values.items()}
).map(lambda changes: claims(**changes))
"""A valid claim set with some claims removed (None) or replaced: often still valid."""
headers = st.fixed_dictionaries(
    {},
    optional={
        "kid": st.sampled_from([RS256.kid, ES256.kid, "unknown"]) | json_values,
        "alg": st.sampled_from(["RS256", "ES256", "PS256", "HS256", "none", "RS512"]) | json_values,
        "typ": json_values,
        "crit": json_values,
    },
)
garbage_tokens = (
    st.text()
    | st.lists(st.binary(max_size=40).map(b64), min_size=1, max_size=4).map(".".join)
    | st.tuples(headers, claim_sets, st.binary(max_size=64)).map(lambda t: hand_made(*t))
)
HYPOTHESIS_VALIDATOR = validator_for(TestProvider([RS256, ES256]))
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _holds(principal: Principal, token_claims: Mapping[str, Any]) -> None:
    """An accepted token met every check."""
    aud = token_claims["aud"]
    assert token_claims["iss"] == ISSUER
    assert aud == AUDIENCE or (isinstance(aud, list) and AUDIENCE in aud)
    assert token_claims["exp"] > time.time() - 10
    assert principal.subject == token_claims["sub"]
    assert isinstance(principal.subject, str)
    assert re.fullmatch(ID_PATTERN, principal.subject)


@SETTINGS
@given(token_claims=changed_claims, signer=st.sampled_from([RS256, ES256]))
def test_generated_claim_sets_are_accepted_only_when_every_check_holds(
    token_claims: dict[str, Any], signer: Signer
) -> None:
    token = signer.sign_as_given({"alg": signer.alg, "kid": signer.kid}, token_claims)
    result = outcome(HYPOTHESIS_VALIDATOR, token)
    event("accepted" if isinstance(result, Principal) else "refused")
    if isinstance(result, Principal):
        _holds(result, token_claims)
    else:
        assert result.status == 401


@SETTINGS
@given(token=garbage_tokens)
def test_garbage_tokens_are_refused_with_a_401(token: str) -> None:
    result = outcome(HYPOTHESIS_VALIDATOR, token)
    assert isinstance(result, ChallengeProblem)
    assert result.status == 401


@SETTINGS
@given(header=headers, token_claims=claim_sets)
def test_generated_headers_never_break_the_validator(
    header: dict[str, Any], token_claims: dict[str, Any]
) -> None:
    """Headers of any shape on a genuinely signed token: a principal or a 401, nothing else."""
    result = outcome(HYPOTHESIS_VALIDATOR, RS256.sign_as_given(header, token_claims))
    assert isinstance(result, Principal | ChallengeProblem)
    if isinstance(result, ChallengeProblem):
        assert result.status == 401


# -- a verified token remembered ----------------------------------------------------------


class CountingDecode:
    """``jwt.decode``, counting the tokens it verifies."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.verified: list[str] = []
        self._decode = jwt.decode
        monkeypatch.setattr(jwt, "decode", self)

    def __call__(self, token: str, *args: Any, **kwargs: Any) -> Any:
        self.verified.append(token)
        return self._decode(token, *args, **kwargs)


def test_a_token_verified_once_is_not_verified_again(monkeypatch: pytest.MonkeyPatch) -> None:
    validator = validator_for(TestProvider([RS256]))
    decode = CountingDecode(monkeypatch)
    token, other = RS256.sign(claims()), RS256.sign(claims(sub="7d2f0e8a-other"))

    async def three_calls() -> list[Principal]:
        return [await validator.validate(t) for t in (token, token, other)]

    first, again, _ = asyncio.run(three_calls())
    assert first == again
    assert decode.verified == [token, other]


def test_a_remembered_token_is_verified_again_once_expired(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Past its ``exp`` (and the leeway) by the validator's clock, a token is verified
    afresh (PyJWT then refuses it by its own clock)."""
    clock = Clock(now=time.time())
    keys = SigningKeys(TestProvider([RS256]), ["RS256"], refresh_interval=10, clock=Clock())
    validator = TokenValidator(keys, issuer=ISSUER, audience=AUDIENCE, leeway=5, clock=clock)
    decode = CountingDecode(monkeypatch)
    token = RS256.sign(claims(exp=int(clock.now) + 60))
    for _ in range(2):
        assert isinstance(outcome(validator, token), Principal)
    clock.now += 64
    assert isinstance(outcome(validator, token), Principal)
    assert len(decode.verified) == 1
    clock.now += 1
    assert isinstance(outcome(validator, token), Principal)  # PyJWT's clock: not expired yet
    assert len(decode.verified) == 2
