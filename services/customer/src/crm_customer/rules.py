"""The rules a bank applies to a customer that need no customer's history, and the errors
a refused command raises.

Who owns which field (core banking masters the legal identity, the CRM the contact
profile), the lifecycle moves allowed, the roles of each kind of group and what each type
of customer may carry. The aggregate (``domain.py``) applies them to its state.
"""

from __future__ import annotations

from typing import Any

from crm_events.customer import CustomerStatus, GroupRole, GroupType

JsonDict = dict[str, Any]

STATUS_TRANSITIONS: dict[CustomerStatus, frozenset[CustomerStatus]] = {
    CustomerStatus.PROSPECT: frozenset({CustomerStatus.ACTIVE}),
    CustomerStatus.ACTIVE: frozenset({CustomerStatus.DORMANT, CustomerStatus.CHURNED}),
    CustomerStatus.DORMANT: frozenset({CustomerStatus.ACTIVE, CustomerStatus.CHURNED}),
    CustomerStatus.CHURNED: frozenset({CustomerStatus.ACTIVE}),
}
"""Lifecycle moves a bank allows; dormant or churned back to active is a reactivation."""

CORE_OWNED_FIELDS: dict[str, str] = {
    "name": "legal name",
    "id_documents": "identity documents",
    "birth_date": "birth date",
    "accounts": "accounts and holdings",
}
"""Fields mastered by core banking: they change only through its events, never the API."""
CORE_OWNER = "core-banking"

PROFILE_FIELDS = ("phone", "email", "address", "occupation", "industry", "preferred_channel")
"""Profile fields the CRM owns and its users may change."""

GROUP_ROLES: dict[GroupType, frozenset[GroupRole]] = {
    GroupType.HOUSEHOLD: frozenset({GroupRole.HEAD, GroupRole.MEMBER}),
    GroupType.CORPORATE_GROUP: frozenset(
        {GroupRole.PARENT_COMPANY, GroupRole.SUBSIDIARY, GroupRole.MEMBER}
    ),
}


class CustomerError(Exception):
    """A command the customer's rules refuse."""


class RuleViolation(CustomerError):
    """The command breaks a rule of the domain (HTTP 422)."""


class InvalidTransition(RuleViolation):
    def __init__(self, current: CustomerStatus, wanted: CustomerStatus) -> None:
        allowed = ", ".join(sorted(STATUS_TRANSITIONS[current])) or "none"
        super().__init__(f"a {current} customer cannot become {wanted} (allowed: {allowed})")
        self.current = current
        self.wanted = wanted


class UnknownProfileFields(RuleViolation):
    """A profile change names fields that are no customer's fields at all."""

    def __init__(self, fields: list[str]) -> None:
        super().__init__(f"unknown fields: {', '.join(fields)}")
        self.fields = fields


class Conflict(CustomerError):
    """The command contradicts the customer's current state (HTTP 409)."""


class CoreOwnedField(CustomerError):
    """A command tried to change a field core banking owns."""

    def __init__(self, fields: list[str]) -> None:
        names = ", ".join(f"{field} ({CORE_OWNED_FIELDS[field]})" for field in fields)
        super().__init__(
            f"{names} owned by {CORE_OWNER}: it changes only through core banking's events"
        )
        self.fields = fields
        self.owner = CORE_OWNER


class CustomerRetired(CustomerError):
    """The customer was merged into another; commands go to the survivor."""

    def __init__(self, customer_id: str, survivor_id: str) -> None:
        super().__init__(f"customer {customer_id} was merged into {survivor_id}")
        self.customer_id = customer_id
        self.survivor_id = survivor_id


def check_profile_change(changes: JsonDict) -> None:
    """Refuse a profile change naming a field the CRM does not own.

    Core-owned fields are refused first (naming their owner), whatever their value; then
    any other field that is not a profile field.
    """
    core = sorted(field for field in changes if field in CORE_OWNED_FIELDS)
    if core:
        raise CoreOwnedField(core)
    unknown = sorted(set(changes) - set(PROFILE_FIELDS))
    if unknown:
        raise UnknownProfileFields(unknown)


def check_type_fields(customer_type: str, industry: str | None, birth_date: str | None) -> None:
    """An industry describes an organisation, a birth date a person."""
    if customer_type == "individual" and industry is not None:
        raise RuleViolation("industry describes corporate and institution customers")
    if customer_type != "individual" and birth_date is not None:
        raise RuleViolation("only individual customers have a birth date")
