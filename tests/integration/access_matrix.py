"""The ground truth of the access matrix: who the callers are, whose book each test
customer is in, and what each caller must get from each kind of endpoint.

It is written from the table of ``docs/access.md`` and the organisation the simulator
publishes (``crm_simulator.organisation``), independently of ``crm_backbone.access``:
the matrix test checks the services against it, not against themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal


@dataclass(frozen=True)
class Owners:
    """A customer's relationship manager and branch."""

    manager_id: str
    branch_id: str


LABELS = ("own", "colleague", "region", "elsewhere")
"""The four test customers, named for where they stand from rm-0001's seat."""

OWNERS = {
    "own": Owners("RM-0001", "BR-001"),
    "colleague": Owners("RM-0002", "BR-001"),
    "region": Owners("RM-0005", "BR-002"),
    "elsewhere": Owners("RM-0009", "BR-003"),
}
"""BR-001 and BR-002 are in the East region (rh-0001), BR-003 in the North."""

HANDED_TO = {
    "own": Owners("RM-0002", "BR-001"),
    "colleague": Owners("RM-0001", "BR-001"),
    "region": Owners("RM-0006", "BR-002"),
    "elsewhere": Owners("RM-0010", "BR-003"),
}
"""Who a reassignment hands each customer to: another manager of the same branch."""

EAST = frozenset({"BR-001", "BR-002"})


class Kind(StrEnum):
    READ = "read"
    """One record of the book (404 out of scope)."""
    LIST = "list"
    """Several records: exactly those in scope."""
    SHARED = "shared"
    """A record every reader of the book may read (a campaign's definition)."""
    COMMAND = "command"
    """A change to a record of the book (404 out of scope)."""
    PLACE = "place"
    """A new record placed in a book (403 outside the caller's: there is nothing to hide)."""
    REASSIGN = "reassign"
    """A record of the book handed to another manager of its branch (404 out of scope,
    403 when the new manager is outside the caller's reach)."""
    MANAGE = "manage"
    """Running a campaign of a branch: branch management and the systems only."""
    AUDIT = "audit"
    """The audit trail: the auditor's, and the data protection officer's (erasures only)."""
    ERASURE = "erasure"
    """Erasing a customer's personal data: the data protection officer's alone."""
    OPS = "ops"
    """The operators' endpoints: the operator's alone."""


@dataclass(frozen=True)
class Caller:
    """A principal of the realm: a demo user or a client's service account."""

    name: str
    login: Literal["user", "client"]
    may_read: bool
    may_write: bool

    def reaches(self, owners: Owners) -> bool:
        """Whether this caller's book holds a customer with ``owners``."""
        match self.name:
            case "rm-0001":
                return owners.manager_id == "RM-0001"
            case "bm-0001":
                return owners.branch_id == "BR-001"
            case "rh-0001":
                return owners.branch_id in EAST
            case "ho-0001" | "crm-customer" | "core-banking":
                return True
            case _:
                return False


CALLERS = (
    Caller("rm-0001", "user", may_read=True, may_write=True),
    Caller("bm-0001", "user", may_read=True, may_write=True),
    Caller("rh-0001", "user", may_read=True, may_write=True),
    Caller("ho-0001", "user", may_read=True, may_write=False),
    Caller("op-0001", "user", may_read=False, may_write=False),
    Caller("au-0001", "user", may_read=False, may_write=False),
    Caller("dp-0001", "user", may_read=False, may_write=False),
    Caller("core-banking", "client", may_read=False, may_write=True),
    Caller("crm-customer", "client", may_read=True, may_write=True),
)
"""A relationship manager, branch manager and regional head of the East, head office's
analyst (read-only), the operator, the auditor and the data protection officer (no
book), an upstream system (commands, no reads) and a CRM service's own account (the
whole book)."""


def expected_status(caller: Caller, kind: Kind, label: str) -> int | Literal["2xx"]:
    """What ``caller`` must get from an endpoint of ``kind`` about customer ``label``."""
    reaches = caller.reaches(OWNERS[label])
    if kind is Kind.AUDIT:
        return 200 if caller.name in ("au-0001", "dp-0001") else 403
    if kind is Kind.ERASURE:
        return "2xx" if caller.name == "dp-0001" else 403
    if kind is Kind.OPS:
        return 200 if caller.name == "op-0001" else 403
    if kind in (Kind.COMMAND, Kind.PLACE, Kind.REASSIGN, Kind.MANAGE):
        if not caller.may_write or (kind is Kind.MANAGE and caller.name == "rm-0001"):
            return 403
        if kind is Kind.REASSIGN and reaches:
            return "2xx" if caller.reaches(HANDED_TO[label]) else 403
        if kind in (Kind.PLACE, Kind.MANAGE):
            return "2xx" if reaches else 403
        return "2xx" if reaches else 404
    if not caller.may_read:
        return 403
    if kind in (Kind.LIST, Kind.SHARED):
        return 200
    return 200 if reaches else 404


def listed_labels(caller: Caller) -> frozenset[str]:
    """The test customers a list must show ``caller`` (and count)."""
    return frozenset(label for label in LABELS if caller.reaches(OWNERS[label]))


def matches(status: int, expected: int | Literal["2xx"]) -> bool:
    return 200 <= status < 300 if expected == "2xx" else status == expected
