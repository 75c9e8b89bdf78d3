"""A customer need, and a complaint: a need whose SLA clock runs until it is resolved."""

from __future__ import annotations

from datetime import datetime

from crm_events.opportunity import NeedKind, NeedStatus
from eventsourcing.domain import event

from crm_opportunity.domain.base import Conflict, JsonDict, PipelineAggregate, RuleViolation

ACTIVE_NEEDS = frozenset(
    {
        NeedStatus.OPEN,
        NeedStatus.ASSIGNED,
        NeedStatus.IN_PROGRESS,
        NeedStatus.PENDING_CUSTOMER,
        NeedStatus.REOPENED,
    }
)
"""Statuses of a need the bank is working on (a complaint's SLA clock runs)."""
WORK_STATUSES = frozenset({NeedStatus.IN_PROGRESS, NeedStatus.PENDING_CUSTOMER})
"""Statuses set by a plain status change; the others follow from their own commands."""


class Need(PipelineAggregate):
    """A customer need; a complaint is a need with an SLA due time.

    Logged, assigned to an owner, worked on (in progress, pending the customer), resolved;
    the customer then confirms the resolution, which ends the need whatever the answer
    (the contract says so). A customer who rejects the resolution is answered by
    reopening it instead: the SLA clock runs again from the same due time.
    """

    natural_key = "need_id"

    @event("Logged")
    def __init__(
        self,
        need_id: str,
        customer_id: str,
        kind: str,
        summary: str,
        content: str,
        severity: str,
        urgency: str,
        channel: str,
        started_at: str,
        sla_due_at: str | None,
    ) -> None:
        self.need_id = need_id
        self.customer_id = customer_id
        self.kind = NeedKind(kind)
        self.summary = summary
        self.content = content
        self.severity = severity
        self.urgency = urgency
        self.channel = channel
        self.started_at = started_at
        self.sla_due_at = sla_due_at
        self.status = NeedStatus.OPEN
        self.sub_status: str | None = None
        self.owner_id: str | None = None
        self.resolution: str | None = None
        self.resolved_at: str | None = None
        self.satisfied: bool | None = None
        self.ended_at: str | None = None

    @classmethod
    def log(cls, need_id: str, fields: JsonDict) -> Need:
        """A new need; a complaint has an SLA due time, after the moment it started."""
        due = fields.get("sla_due_at")
        if fields["kind"] == NeedKind.COMPLAINT and due is None:
            raise RuleViolation("a complaint needs its SLA due time (sla_due_at)")
        if due is not None and _moment(due) <= _moment(fields["started_at"]):
            raise RuleViolation("the SLA due time is not after the need started")
        return cls(need_id=need_id, **fields)

    # Commands ---------------------------------------------------------------------------

    def assign(self, manager_id: str, reason: str | None) -> None:
        """Give the need an owner; an open need becomes assigned."""
        self._ensure_not_ended()
        if manager_id != self.owner_id:
            self._assigned(
                customer_id=self.customer_id,
                manager_id=manager_id,
                previous_manager_id=self.owner_id,
                reason=reason,
            )
        if self.status is NeedStatus.OPEN:
            self._change_status(NeedStatus.ASSIGNED, None)

    def work(self, status: NeedStatus, sub_status: str | None) -> None:
        """Set the working status (in progress, pending the customer) and its sub-status."""
        self._ensure_active()
        if status not in WORK_STATUSES:
            raise RuleViolation(
                f"{status} is not set directly: assign, resolve, reopen or confirm instead"
            )
        if self.owner_id is None:
            raise RuleViolation(f"need {self.need_id} has no owner: assign it first")
        if (status, sub_status) != (self.status, self.sub_status):
            self._change_status(status, sub_status)

    def resolve(self, resolution: str, resolved_at: str) -> None:
        self._ensure_active()
        if _moment(resolved_at) < _moment(self.started_at):
            raise RuleViolation("resolved before the need started")
        self._resolved(customer_id=self.customer_id, resolution=resolution, resolved_at=resolved_at)

    def reopen(self, reason: str) -> None:
        """The customer rejects the resolution: work on the need again."""
        self._ensure_resolved()
        self._change_status(NeedStatus.REOPENED, reason)

    def confirm(self, satisfied: bool, feedback: str | None, ended_at: str) -> None:
        """The customer's answer to the resolution: it ends the need, satisfied or not."""
        self._ensure_resolved()
        assert self.resolved_at is not None
        if _moment(ended_at) < _moment(self.resolved_at):
            raise RuleViolation("confirmed before the need was resolved")
        self._resolution_confirmed(
            customer_id=self.customer_id, satisfied=satisfied, feedback=feedback, ended_at=ended_at
        )

    # Events -----------------------------------------------------------------------------

    @event("Assigned")
    def _assigned(
        self,
        customer_id: str,
        manager_id: str,
        previous_manager_id: str | None,
        reason: str | None,
    ) -> None:
        self.owner_id = manager_id

    @event("StatusChanged")
    def _status_changed(
        self, customer_id: str, previous_status: str, status: str, sub_status: str | None
    ) -> None:
        self.status = NeedStatus(status)
        self.sub_status = sub_status

    @event("Resolved")
    def _resolved(self, customer_id: str, resolution: str, resolved_at: str) -> None:
        self.status = NeedStatus.RESOLVED
        self.sub_status = None
        self.resolution = resolution
        self.resolved_at = resolved_at

    @event("ResolutionConfirmed")
    def _resolution_confirmed(
        self, customer_id: str, satisfied: bool, feedback: str | None, ended_at: str
    ) -> None:
        self.status = NeedStatus.CONFIRMED
        self.satisfied = satisfied
        self.ended_at = ended_at

    def _change_status(self, status: NeedStatus, sub_status: str | None) -> None:
        self._status_changed(
            customer_id=self.customer_id,
            previous_status=self.status.value,
            status=status.value,
            sub_status=sub_status,
        )

    def _ensure_not_ended(self) -> None:
        if self.status is NeedStatus.CONFIRMED:
            raise Conflict(f"need {self.need_id} has ended")

    def _ensure_active(self) -> None:
        self._ensure_not_ended()
        if self.status is NeedStatus.RESOLVED:
            raise Conflict(
                f"need {self.need_id} is resolved: the customer confirms it, or it is reopened"
            )

    def _ensure_resolved(self) -> None:
        self._ensure_not_ended()
        if self.status is not NeedStatus.RESOLVED:
            raise Conflict(f"need {self.need_id} is {self.status}, not resolved")


def _moment(value: str) -> datetime:
    return datetime.fromisoformat(value)
