"""Who a validated bearer token says is calling: a person, or a system's service account."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from crm_events.common import ID_PATTERN

SERVICE_ACCOUNT_PREFIX = "service-account-"
"""Keycloak names the user behind a client's service account ``service-account-<client>``."""


@dataclass(frozen=True)
class Principal:
    """The caller a token proves.

    ``subject`` is the provider's stable id of the user (or of the client's service
    account), the actor events record; ``client_id`` the client the call came through
    (the token's ``azp``); ``roles`` the realm roles, from the flat ``roles`` claim and
    ``realm_access.roles``.
    """

    subject: str
    username: str | None = None
    client_id: str | None = None
    staff_id: str | None = None
    roles: frozenset[str] = frozenset()
    service_account: bool = False

    @property
    def actor(self) -> str:
        """The actor recorded in the events this caller causes."""
        return self.subject

    def has_any_role(self, *roles: str) -> bool:
        return not self.roles.isdisjoint(roles)

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any]) -> Principal:
        """The principal of a validated token's claims; ``ValueError`` when its ``sub`` is
        no id events can record."""
        subject = claims.get("sub")
        if not isinstance(subject, str) or not re.fullmatch(ID_PATTERN, subject):
            raise ValueError("the token's subject is not an id")
        username = _text(claims.get("preferred_username"))
        return cls(
            subject=subject,
            username=username,
            client_id=_text(claims.get("azp")),
            staff_id=_text(claims.get("staff_id")),
            roles=frozenset(_roles(claims)),
            service_account=_text(claims.get("client_id")) is not None
            or (username or "").startswith(SERVICE_ACCOUNT_PREFIX),
        )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _roles(claims: Mapping[str, Any]) -> Iterator[str]:
    realm_access = claims.get("realm_access")
    for listed in (
        claims.get("roles"),
        realm_access.get("roles") if isinstance(realm_access, dict) else None,
    ):
        if isinstance(listed, list):
            yield from (role for role in listed if isinstance(role, str))
