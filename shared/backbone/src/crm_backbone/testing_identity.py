"""Test helpers: an identity provider made in the test (its keys, its tokens, its key set).

Unit tests validate tokens without a server: :class:`Signer` signs tokens with a key
made in the test, :class:`TestProvider` is the JWKS source a validator fetches from (and
counts the fetches), :func:`access_claims` the claims of a relationship manager's token.
:class:`TestIdentity` gives an app under test its provider and a small organisation
(:data:`TEST_POSITIONS`), and the headers of calls by its staff and service accounts.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import jwt
from crm_events.organisation import Role
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from crm_backbone.access import NotInReach, Reach, in_reach, scope_filter
from crm_backbone.callers import Authentication
from crm_backbone.identity import TokenValidator
from crm_backbone.organisation import Position
from crm_backbone.read_audit import RecordedReads
from crm_backbone.signing_keys import SigningKeys

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


def subject_of(name: str) -> str:
    """The stable subject the test provider gives the user or client ``name``."""
    return str(uuid.uuid5(_SUBJECTS, name))


_SUBJECTS = uuid.UUID("5d0b8f40-8f5e-4d0c-9d7e-3c1f2b6a9e21")

TEST_BRANCHES = {"BR-001": "RG-01", "BR-002": "RG-01", "BR-003": "RG-02"}
"""The branches of the test organisation and their regions."""

TEST_POSITIONS = (
    Position("RM-0001", Role.RELATIONSHIP_MANAGER, "BR-001", "RG-01", "BM-0001"),
    Position("RM-0002", Role.RELATIONSHIP_MANAGER, "BR-001", "RG-01", "BM-0001"),
    Position("RM-0005", Role.RELATIONSHIP_MANAGER, "BR-002", "RG-01", "BM-0002"),
    Position("RM-0009", Role.RELATIONSHIP_MANAGER, "BR-003", "RG-02", "BM-0003"),
    Position("BM-0001", Role.BRANCH_MANAGER, "BR-001", "RG-01", "RH-0001"),
    Position("RH-0001", Role.REGIONAL_HEAD, None, "RG-01"),
    Position("HO-0001", Role.ANALYST),
    Position("OP-0001", Role.OPERATOR),
    Position("AU-0001", Role.AUDITOR),
    Position("DP-0001", Role.DATA_PROTECTION_OFFICER),
)
"""A small organisation for tests: managers in two branches of one region and one of
another, their branch manager and regional head, and head office's analyst, operator,
auditor and data protection officer."""


class FixedCustomerBook:
    """The customers' owners as a fixed map (:class:`crm_backbone.book.CustomerBook`'s
    answers, without MongoDB): customer id to ``manager_id`` and ``branch_id``."""

    def __init__(self, owners: Mapping[str, Mapping[str, str]]) -> None:
        self.owners = owners

    async def scope(self, reach: Reach, field: str = "customer_id") -> dict[str, Any]:
        if not scope_filter(reach):
            return {}
        return {field: {"$in": sorted(c for c, o in self.owners.items() if in_reach(reach, o))}}

    async def require(self, reach: Reach, customer_id: str, *, kind: str, key: str) -> None:
        owners = self.owners.get(customer_id)
        if scope_filter(reach) and (owners is None or not in_reach(reach, owners)):
            raise NotInReach(kind, key)


@dataclass
class FixedPositions:
    """The organisation as the test gives it (a ``PositionLookup``)."""

    positions: Mapping[str, Position]

    async def position_of(self, staff_id: str) -> Position | None:
        position = self.positions.get(staff_id)
        if position is None or position.role.unit != "region":
            return position
        branches = frozenset(b for b, r in TEST_BRANCHES.items() if r == position.region_id)
        return replace(position, region_branch_ids=branches)


class TestIdentity:
    """An identity provider and an organisation made in the test: bearer tokens for its
    staff and for service accounts, and the ``Authentication`` an app under test uses."""

    __test__ = False

    def __init__(self, positions: tuple[Position, ...] = TEST_POSITIONS) -> None:
        self.signer = Signer.rsa("test-key")
        self.positions = FixedPositions({p.staff_id: p for p in positions})
        keys = SigningKeys(TestProvider([self.signer]), (self.signer.alg,))
        self.reads = RecordedReads()
        """The reads of personal data the apps under test recorded."""
        self.authentication = Authentication(
            TokenValidator(keys, issuer=TEST_ISSUER, audience=TEST_AUDIENCE),
            self.positions,
            self.reads,
        )

    def staff_token(self, staff_id: str, *, client: str = "crm-console") -> str:
        """A token of the staff member ``staff_id``, with the role HR gives them."""
        position = self.positions.positions[staff_id]
        return self.signer.sign(
            access_claims(
                sub=subject_of(staff_id),
                preferred_username=staff_id.lower(),
                staff_id=staff_id,
                azp=client,
                roles=[position.role.value],
            )
        )

    def service_token(self, client: str, role: str = "crm_service") -> str:
        """A token of the client ``client``'s service account (client credentials)."""
        return self.signer.sign(
            access_claims(
                sub=subject_of(client),
                preferred_username=f"service-account-{client}",
                staff_id=None,
                azp=client,
                client_id=client,
                roles=[role],
            )
        )

    def staff(self, staff_id: str, **headers: str) -> dict[str, str]:
        """Request headers of a call by ``staff_id`` (plus ``headers``)."""
        return {"Authorization": f"Bearer {self.staff_token(staff_id)}", **headers}

    def service(self, client: str, role: str = "crm_service", **headers: str) -> dict[str, str]:
        """Request headers of a call by the service account of ``client``."""
        return {"Authorization": f"Bearer {self.service_token(client, role)}", **headers}
