"""The benchmark's "without token validation": the customer service's app as production
builds it, except that a token's claims are read without any check (no signature, no
issuer, audience or expiry). It exists only here, for ``serve_customer.py`` when
``BENCH_TOKENS=unchecked``; no service can be configured to run like this.

What it still does is what any request needs whatever the validation: read the claims to
know the caller, and place the caller in the organisation (the production app's own
positions, remembered as long), so the difference the benchmark measures is the
validation's.
"""

from __future__ import annotations

from dataclasses import replace

import jwt
from crm_backbone.callers import Authentication
from crm_backbone.identity import TokenValidator, unauthenticated
from crm_backbone.principal import Principal
from crm_backbone.runtime import ServiceHandle


class UncheckedTokens(TokenValidator):
    """Takes a token's claims at their word."""

    def __init__(self, issuer: str) -> None:  # no keys: nothing is verified
        self.issuer = issuer

    async def validate(self, token: str) -> Principal:
        try:
            claims = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise unauthenticated("the token is not a well-formed JWT") from None
        return Principal.from_claims(claims)


def unchecked_authentication(service: ServiceHandle) -> Authentication:
    """The service's authentication with :class:`UncheckedTokens` in place of its validator."""
    configured = Authentication.configured(service.settings, service.database)
    issuer = service.settings.oidc_issuer or "unchecked"
    return replace(configured, validator=UncheckedTokens(issuer))
