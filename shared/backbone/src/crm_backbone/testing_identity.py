"""Test helpers: an identity provider made in the test (its keys, its tokens, its key set).

Unit tests validate tokens without a server: :class:`Signer` signs tokens with a key
made in the test, :class:`TestProvider` is the JWKS source a validator fetches from (and
counts the fetches), :func:`access_claims` the claims of a relationship manager's token.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

TEST_ISSUER = "http://127.0.0.1:18080/realms/crm"
TEST_AUDIENCE = "crm-api"
TEST_SUBJECT = "12e16011-ce21-5870-aaf0-92952aa01edc"


def b64(data: bytes) -> str:
    """Base64url without padding, as JWTs encode their parts."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass(frozen=True)
class Signer:
    """One of the provider's key pairs: signs tokens, publishes its public half."""

    kid: str
    alg: str
    private_key: Any

    @classmethod
    def rsa(cls, kid: str, alg: str = "RS256") -> Signer:
        return cls(kid, alg, rsa.generate_private_key(public_exponent=65537, key_size=2048))

    @classmethod
    def ec(cls, kid: str) -> Signer:
        return cls(kid, "ES256", ec.generate_private_key(ec.SECP256R1()))

    @property
    def jwk(self) -> dict[str, Any]:
        public = jwt.get_algorithm_by_name(self.alg).to_jwk(
            self.private_key.public_key(), as_dict=True
        )
        return {**public, "kid": self.kid, "alg": self.alg, "use": "sig"}

    def sign(self, claims: Mapping[str, Any], **header: Any) -> str:
        return jwt.encode(dict(claims), self.private_key, self.alg, {"kid": self.kid, **header})

    def sign_as_given(self, header: Mapping[str, Any], claims: Mapping[str, Any]) -> str:
        """A token with exactly this header and these claims (``jwt.encode`` checks some)."""
        signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
        algorithm = jwt.get_algorithm_by_name(self.alg)
        return f"{signing_input}.{b64(algorithm.sign(signing_input.encode(), self.private_key))}"


@dataclass
class TestProvider:
    """The provider's key set as a JWKS source; ``extra`` entries are published as given."""

    __test__ = False  # not a test class, whatever its name

    signers: list[Signer]
    extra: list[dict[str, Any]] = field(default_factory=list)
    fetches: int = 0
    down: bool = False

    def __call__(self) -> Mapping[str, Any]:
        self.fetches += 1
        if self.down:
            raise OSError("connection refused")
        return {"keys": [signer.jwk for signer in self.signers] + self.extra}


def access_claims(**changes: Any) -> dict[str, Any]:
    """A relationship manager's access token claims, valid for five minutes; a change to
    None removes the claim."""
    now = int(time.time())
    base = {
        "iss": TEST_ISSUER,
        "aud": [TEST_AUDIENCE, "account"],
        "sub": TEST_SUBJECT,
        "exp": now + 300,
        "iat": now,
        "azp": "crm-cli",
        "preferred_username": "rm-0001",
        "staff_id": "RM-0001",
        "roles": ["relationship_manager"],
        "realm_access": {"roles": ["default-roles-crm", "offline_access"]},
    }
    return {name: value for name, value in {**base, **changes}.items() if value is not None}
