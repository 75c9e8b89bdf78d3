"""Access levels: which records of the book a caller reaches, and what it may do with them.

After Microsoft Dataverse's access levels (own / business unit / parent-child units /
organisation) and Salesforce's ownership and role hierarchy. A caller's :class:`Reach`
is built once per request from the role its token grants and the position the org read
model gives it (:func:`reach_for`); then every query and every command asks the same
reach:

- :func:`scoped` narrows a query's MongoDB filter to the records in reach (its
  :func:`scope_filter` joined with ``$and``): a list never counts or returns what is out
  of reach;
- :func:`require_in_reach` answers the one record a route or a command addresses, or
  raises :class:`NotInReach`, the same error as for a record that does not exist
  (404: an out-of-scope record is indistinguishable from a missing one);
- :func:`require_command` refuses commands to read-only reaches (403);
- :func:`require_surface` refuses a kind of endpoint the role has no business with (403);
- :func:`as_shown` masks the personal data of what a masked reach (the analyst) reads.

The scope of a reach is one condition on one ownership field of a record (its manager
or its branch); the filter and the predicate both render that condition, so they cannot
disagree. A regional head's region is resolved to its branches through the org read model
when the reach is built, so views record no region: a branch that moves to another
region moves at once, without a reprojection.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

from crm_events.organisation import Role
from crm_events.personal import PersonalData

from crm_backbone.http import Problem, ProblemMapper
from crm_backbone.identity import forbidden
from crm_backbone.masking import mask_document
from crm_backbone.organisation import Position
from crm_backbone.principal import Principal


class ServiceRole(StrEnum):
    """Roles of client-credentials (service account) clients: no person, no org position."""

    CRM_SERVICE = "crm_service"
    """A CRM service's own client: its workers act on the whole book."""
    UPSTREAM_SYSTEM = "upstream_system"
    """An upstream system (core banking, channel gateway, HR): it feeds the CRM, through
    its own ``bank.*`` topic; over HTTP it may send commands, never read the book."""


class Surface(StrEnum):
    """The kinds of endpoint a role may use at all."""

    BOOK = "book"
    """Customers and what hangs off them: opportunities, needs, contacts, tasks, campaigns."""
    OPS = "ops"
    """Operations: readiness, metrics, parking, dead letters."""
    AUDIT = "audit"
    """The audit trail (``GET /audit``)."""
    ERASURE = "erasure"
    """Erasing a customer's personal data (``POST /customers/{id}/erasure``) and the audit
    of erasures."""


ScopeField = Literal["manager", "branch"]


@dataclass(frozen=True)
class Scope:
    """The records a reach covers: those whose ``field`` holds one of ``values``; with
    ``field`` ``None``, every record (``values`` unused). No values: no record."""

    field: ScopeField | None
    values: frozenset[str] = frozenset()


EVERYTHING = Scope(None)
NOTHING = Scope("manager")


@dataclass(frozen=True)
class Reach:
    """What one caller may see and do (see the table in ``docs/access.md``)."""

    scope: Scope
    surfaces: frozenset[Surface]
    may_read: bool
    may_write: bool
    masked: bool
    """Personal data is masked in every answer (``crm_backbone.masking``)."""


NO_ACCESS = Reach(NOTHING, frozenset(), may_read=False, may_write=False, masked=True)
"""The reach of a caller whose roles or position do not make sense: nothing at all."""


def _book(scope: Scope) -> Reach:
    return Reach(scope, frozenset({Surface.BOOK}), may_read=True, may_write=True, masked=False)


def _read_only(surface: Surface, scope: Scope) -> Reach:
    return Reach(scope, frozenset({surface}), may_read=True, may_write=False, masked=True)


def _staff_reach(position: Position) -> Reach:
    """The reach of a staff member placed at ``position`` (the table of ``docs/access.md``)."""
    match position.role:
        case Role.RELATIONSHIP_MANAGER:
            return _book(Scope("manager", frozenset({position.staff_id})))
        case Role.BRANCH_MANAGER:
            branch = position.branch_id
            return _book(Scope("branch", frozenset({branch} if branch else ())))
        case Role.REGIONAL_HEAD:
            return _book(Scope("branch", position.region_branch_ids))
        case Role.ANALYST:
            return _read_only(Surface.BOOK, EVERYTHING)
        case Role.OPERATOR:
            return _read_only(Surface.OPS, NOTHING)
        case Role.AUDITOR:
            return _read_only(Surface.AUDIT, NOTHING)
        case Role.DATA_PROTECTION_OFFICER:  # erasure addresses any customer, by its id alone
            return Reach(
                NOTHING, frozenset({Surface.ERASURE}), may_read=True, may_write=True, masked=True
            )


SERVICE_REACHES: Mapping[str, Reach] = {
    ServiceRole.CRM_SERVICE: _book(EVERYTHING),
    ServiceRole.UPSTREAM_SYSTEM: Reach(
        EVERYTHING, frozenset({Surface.BOOK}), may_read=False, may_write=True, masked=True
    ),
}

ROLE_NAMES = frozenset(Role) | frozenset(ServiceRole)
"""The token roles access control knows; other roles a token carries are ignored."""


def reach_for(principal: Principal, position: Position | None) -> Reach:
    """The reach of ``principal``, placed at ``position`` (the org read model's answer for
    the principal's staff id; ``None`` for a service account, or a person HR does not
    place).

    The token must grant exactly one of :data:`ROLE_NAMES` (identity provider defaults
    such as ``offline_access`` are ignored); several are a misconfigured account and
    reach nothing. A service role counts only for a service account, a staff role only
    for a person whom the org read model places in that same role: a leaver, or someone
    the token and HR disagree about, reaches nothing.
    """
    roles = principal.roles & ROLE_NAMES
    if len(roles) != 1:
        return NO_ACCESS
    (role,) = roles
    if principal.service_account:
        return SERVICE_REACHES.get(role, NO_ACCESS)
    if position is None or position.role != role:
        return NO_ACCESS
    return _staff_reach(position)


@dataclass(frozen=True)
class Ownership:
    """Where a view's records name their owners (dotted paths, as in MongoDB queries)."""

    manager: str = "manager_id"
    branch: str = "branch_id"

    def path(self, field: ScopeField) -> str:
        return self.manager if field == "manager" else self.branch


DEFAULT_OWNERSHIP = Ownership()


def scope_filter(reach: Reach, ownership: Ownership = DEFAULT_OWNERSHIP) -> dict[str, Any]:
    """The MongoDB filter of the records in reach (``{}``: every record)."""
    scope = reach.scope
    if scope.field is None:
        return {}
    return {ownership.path(scope.field): {"$in": sorted(scope.values)}}


def scoped(
    query: Mapping[str, Any], reach: Reach, ownership: Ownership = DEFAULT_OWNERSHIP
) -> dict[str, Any]:
    """``query`` narrowed to the records in reach: what every find, count and aggregation
    ``$match`` of the book passes to MongoDB. The two are joined with ``$and``, so a query
    naming an ownership field itself (search by manager) can only narrow the reach."""
    reach_filter = scope_filter(reach, ownership)
    if not reach_filter:
        return dict(query)
    return {"$and": [dict(query), reach_filter]} if query else reach_filter


def in_reach(
    reach: Reach, record: Mapping[str, Any], ownership: Ownership = DEFAULT_OWNERSHIP
) -> bool:
    """Whether ``record`` is in reach: exactly the records :func:`scope_filter` matches.

    A path through lists looks into each element, and a list value holds each of its
    elements, as MongoDB does (``owner_manager_ids: ["rm-1", "rm-2"]`` is rm-1's).
    """
    scope = reach.scope
    if scope.field is None:
        return True
    return any(
        isinstance(value, str) and value in scope.values
        for value in _values_at(record, ownership.path(scope.field).split("."))
    )


def as_shown(
    reach: Reach, record: Mapping[str, Any], personal: Mapping[str, PersonalData]
) -> dict[str, Any]:
    """``record`` as the caller may see it: for a masked reach, the personal data at the
    paths of ``personal`` masked (``crm_backbone.masking``)."""
    return mask_document(record, personal) if reach.masked else dict(record)


def _values_at(value: Any, path: list[str]) -> Iterator[Any]:
    """The values a MongoDB equality on ``path`` compares with (one level of lists)."""
    if not path:
        yield value
        if isinstance(value, list):
            yield from value
        return
    if isinstance(value, Mapping):
        if path[0] in value:
            yield from _values_at(value[path[0]], path[1:])
    elif isinstance(value, list):
        for element in value:
            if isinstance(element, Mapping) and path[0] in element:
                yield from _values_at(element[path[0]], path[1:])


class NotInReach(LookupError):
    """The record does not exist, or the caller may not know that it does: one error for
    both, mapped to the service's usual 404 (:data:`ACCESS_ERRORS`)."""

    def __init__(self, kind: str, key: str) -> None:
        super().__init__(f"no {kind} {key}")
        self.kind = kind
        self.key = key


class AccessRefused(PermissionError):
    """The caller's role may not do this at all, whatever the record (403)."""


def require_in_reach(
    reach: Reach,
    record: Mapping[str, Any] | None,
    *,
    kind: str,
    key: str,
    ownership: Ownership = DEFAULT_OWNERSHIP,
) -> Mapping[str, Any]:
    """``record`` when it exists (not ``None``) and is in reach; else :class:`NotInReach`
    (``no {kind} {key}``), the same answer whichever of the two it is."""
    if record is None or not in_reach(reach, record, ownership):
        raise NotInReach(kind, key)
    return record


def require_surface(reach: Reach, surface: Surface) -> None:
    """Refuse (403) a caller whose role has no business with this kind of endpoint."""
    if surface not in reach.surfaces:
        raise AccessRefused(f"this role has no access to the {surface.value} endpoints")


def require_read(reach: Reach, surface: Surface = Surface.BOOK) -> None:
    """Refuse (403) a read to a caller that may not read this kind of endpoint."""
    require_surface(reach, surface)
    if not reach.may_read:
        raise AccessRefused(f"this role may not read the {surface.value} endpoints")


def require_command(reach: Reach, surface: Surface = Surface.BOOK) -> None:
    """Refuse (403) a command to a caller whose role is read-only there."""
    require_surface(reach, surface)
    if not reach.may_write:
        raise AccessRefused(f"this role may not change the {surface.value} records")


def _not_found(error: Exception) -> Problem:
    assert isinstance(error, NotInReach)
    return Problem(404, f"{error.kind}-not-found", "Not found", str(error))


def _forbidden(error: Exception) -> Problem:
    return forbidden(str(error))


ACCESS_ERRORS: Mapping[type[Exception], ProblemMapper] = {
    NotInReach: _not_found,
    AccessRefused: _forbidden,
}
"""Entries for a service's ``DOMAIN_ERRORS``: the 404 is the one a missing record gets,
the 403 the one a token without the right role gets (``crm_backbone.identity``)."""
