"""Leads, opportunities and needs (complaints included), and the rules a bank applies to them.

Command methods check the rules and then trigger events (the ``@event``-decorated private
methods, whose bodies are how each event changes the state). Event attributes are plain
JSON values named as in the published contract (``crm_events.opportunity``), so
``publication.py`` maps each event to its payload field by field.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from crm_backbone.aggregate import TracedAggregate, uuid_for
from crm_events.opportunity import LeadSource, NeedKind, NeedStatus, OpportunityStage
from eventsourcing.domain import event

JsonDict = dict[str, Any]
Stage = OpportunityStage

FUNNEL: tuple[Stage, ...] = (
    Stage.LEAD,
    Stage.OPPORTUNITY_CREATED,
    Stage.PROPOSAL,
    Stage.EVALUATION,
    Stage.NEGOTIATION,
    Stage.CONTRACT_SIGNED,
    Stage.IMPLEMENTATION,
    Stage.CLOSED_WON,
)
"""The sales funnel in order. Closed lost is off it: any open stage can be lost."""
CLOSED = frozenset({Stage.CLOSED_WON, Stage.CLOSED_LOST})
OPENING_STAGES = frozenset({Stage.LEAD, Stage.OPPORTUNITY_CREATED})
"""Stages an opportunity can be created at."""
WINNABLE = frozenset({Stage.CONTRACT_SIGNED, Stage.IMPLEMENTATION})
"""A deal is won once its contract is signed."""

DEFAULT_PROBABILITY: dict[Stage, int] = {
    Stage.LEAD: 10,
    Stage.OPPORTUNITY_CREATED: 20,
    Stage.PROPOSAL: 40,
    Stage.EVALUATION: 60,
    Stage.NEGOTIATION: 80,
    Stage.CONTRACT_SIGNED: 95,
    Stage.IMPLEMENTATION: 100,
    Stage.CLOSED_WON: 100,
    Stage.CLOSED_LOST: 0,
}
"""Probability of success an opportunity gets on entering each stage."""


def stages_passed(stage: Stage) -> list[Stage]:
    """The funnel stages an opportunity at ``stage`` has passed (skipped ones included)."""
    if stage is Stage.CLOSED_LOST:
        return [Stage.CLOSED_LOST]
    return list(FUNNEL[: FUNNEL.index(stage) + 1])


class LeadStatus(StrEnum):
    CAPTURED = "captured"
    QUALIFIED = "qualified"
    CONVERTED = "converted"
    DISQUALIFIED = "disqualified"


OPEN_LEADS = frozenset({LeadStatus.CAPTURED, LeadStatus.QUALIFIED})
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


class DomainError(Exception):
    """A command the rules refuse."""


class RuleViolation(DomainError):
    """The command breaks a rule of the domain (HTTP 422)."""


class InvalidStageMove(RuleViolation):
    def __init__(self, current: Stage, wanted: Stage, why: str) -> None:
        super().__init__(f"cannot move from {current} to {wanted}: {why}")
        self.current = current
        self.wanted = wanted


class Conflict(DomainError):
    """The command contradicts the aggregate's current state (HTTP 409)."""


class PipelineAggregate(TracedAggregate):
    """A lead, an opportunity or a need: the three share one id space.

    Consumers know this service's aggregates by source and id alone (an envelope names no
    aggregate type), so two of them must never share an id. The store id is derived from
    the id without the class, and the store refuses a second aggregate with it.
    """

    @classmethod
    def create_id(cls, *_: Any, **kwargs: Any) -> uuid.UUID:
        assert cls.natural_key is not None
        return store_id(str(kwargs[cls.natural_key]))


def store_id(key: str) -> uuid.UUID:
    """The event-store id of the lead, opportunity or need known by ``key``."""
    return uuid_for(PipelineAggregate, key)


# Opportunities ---------------------------------------------------------------------------


class Opportunity(PipelineAggregate):
    """A sales opportunity moving through the funnel towards closed won or closed lost."""

    natural_key = "opportunity_id"

    @event("Created")
    def __init__(
        self,
        opportunity_id: str,
        customer_id: str,
        title: str,
        products: list[str],
        description: str | None,
        sales_method: str | None,
        stage: str,
        probability: int,
        expected_value: JsonDict,
        start_date: str,
        expected_close_date: str,
        manager_id: str,
        branch_id: str,
        source: str,
        lead_id: str | None,
        campaign_id: str | None,
        contacts: list[str],
        working_group: list[str],
        competitors: list[str],
    ) -> None:
        self.opportunity_id = opportunity_id
        self.customer_id = customer_id
        self.title = title
        self.products = products
        self.description = description
        self.sales_method = sales_method
        self.stage = Stage(stage)
        self.probability = probability
        self.expected_value = expected_value
        self.start_date = start_date
        self.expected_close_date = expected_close_date
        self.manager_id = manager_id
        self.branch_id = branch_id
        self.source = source
        self.lead_id = lead_id
        self.campaign_id = campaign_id
        self.contacts = contacts
        self.working_group = working_group
        self.competitors = competitors
        self.lost_reason: str | None = None

    @classmethod
    def open(cls, opportunity_id: str, fields: JsonDict) -> Opportunity:
        """A new opportunity, at its stage's default probability.

        ``fields`` are the created event's attributes but the probability; the stage is
        lead or opportunity_created, products are named, the close date is not before the
        start and the expected value is not negative.
        """
        stage = Stage(fields["stage"])
        if stage not in OPENING_STAGES:
            raise RuleViolation(
                f"an opportunity starts at lead or opportunity_created, not {stage}"
            )
        if not fields["products"]:
            raise RuleViolation("an opportunity names at least one product")
        start, close = (
            date.fromisoformat(fields[k]) for k in ("start_date", "expected_close_date")
        )
        if close < start:
            raise RuleViolation("the expected close date is before the start date")
        _check_value(fields["expected_value"])
        return cls(opportunity_id=opportunity_id, probability=DEFAULT_PROBABILITY[stage], **fields)

    @property
    def closed(self) -> bool:
        return self.stage in CLOSED

    # Commands ---------------------------------------------------------------------------

    def move_to(self, stage: Stage, lost_reason: str | None = None) -> None:
        """Move forward in the funnel (one or more steps), or close; the same stage is a no-op.

        Backward moves are refused, a closed opportunity stays closed, closing lost needs a
        reason and winning a signed contract. The probability becomes the stage's default.
        """
        self._ensure_open()
        if stage is Stage.CLOSED_LOST:
            if not lost_reason:
                raise InvalidStageMove(self.stage, stage, "closing lost needs a reason")
        elif lost_reason is not None:
            raise RuleViolation("a lost reason is given only when closing lost")
        elif stage == self.stage:
            return
        elif FUNNEL.index(stage) < FUNNEL.index(self.stage):
            raise InvalidStageMove(self.stage, stage, "opportunities never move backward")
        elif stage is Stage.CLOSED_WON and self.stage not in WINNABLE:
            raise InvalidStageMove(self.stage, stage, "a deal is won once its contract is signed")
        self._stage_changed(
            customer_id=self.customer_id,
            previous_stage=self.stage.value,
            stage=stage.value,
            probability=DEFAULT_PROBABILITY[stage],
            lost_reason=lost_reason,
        )

    def override_probability(self, probability: int, reason: str) -> None:
        """A manager's own estimate, until the next stage change restores the default."""
        self._ensure_open()
        if not reason.strip():
            raise RuleViolation("overriding the probability needs a reason")
        if probability == self.probability:
            return
        self._probability_overridden(
            customer_id=self.customer_id,
            previous_probability=self.probability,
            probability=probability,
            reason=reason,
        )

    def change_expected_value(self, expected_value: JsonDict, reason: str | None) -> None:
        self._ensure_open()
        _check_value(expected_value)
        if _same_money(expected_value, self.expected_value):
            return
        self._expected_value_changed(
            customer_id=self.customer_id,
            previous_expected_value=self.expected_value,
            expected_value=expected_value,
            reason=reason,
        )

    def reassign(self, manager_id: str, reason: str | None) -> None:
        self._ensure_open()
        if manager_id == self.manager_id:
            return
        self._reassigned(
            customer_id=self.customer_id,
            manager_id=manager_id,
            previous_manager_id=self.manager_id,
            reason=reason,
        )

    # Events -----------------------------------------------------------------------------

    @event("StageChanged")
    def _stage_changed(
        self,
        customer_id: str,
        previous_stage: str,
        stage: str,
        probability: int,
        lost_reason: str | None,
    ) -> None:
        self.stage = Stage(stage)
        self.probability = probability
        self.lost_reason = lost_reason

    @event("ProbabilityOverridden")
    def _probability_overridden(
        self, customer_id: str, previous_probability: int, probability: int, reason: str
    ) -> None:
        self.probability = probability

    @event("ExpectedValueChanged")
    def _expected_value_changed(
        self,
        customer_id: str,
        previous_expected_value: JsonDict,
        expected_value: JsonDict,
        reason: str | None,
    ) -> None:
        self.expected_value = expected_value

    @event("Reassigned")
    def _reassigned(
        self,
        customer_id: str,
        manager_id: str,
        previous_manager_id: str | None,
        reason: str | None,
    ) -> None:
        self.manager_id = manager_id

    def _ensure_open(self) -> None:
        if self.closed:
            raise Conflict(f"opportunity {self.opportunity_id} is {self.stage}: closed for good")


# Leads -----------------------------------------------------------------------------------


class Lead(PipelineAggregate):
    """A prospective sale: captured, qualified, assigned, then converted or disqualified."""

    natural_key = "lead_id"

    @event("Captured")
    def __init__(
        self,
        lead_id: str,
        customer_id: str | None,
        contact_name: str,
        phone: str | None,
        email: str | None,
        source: str,
        campaign_id: str | None,
        products_of_interest: list[str],
        branch_id: str,
        notes: str | None,
    ) -> None:
        self.lead_id = lead_id
        self.customer_id = customer_id
        self.contact_name = contact_name
        self.phone = phone
        self.email = email
        self.source = LeadSource(source)
        self.campaign_id = campaign_id
        self.products_of_interest = products_of_interest
        self.branch_id = branch_id
        self.notes = notes
        self.status = LeadStatus.CAPTURED
        self.manager_id: str | None = None
        self.opportunity_id: str | None = None
        self.disqualified_reason: str | None = None

    @classmethod
    def capture(cls, lead_id: str, fields: JsonDict) -> Lead:
        """A new lead: reachable (a customer, a phone or an e-mail), its campaign if any."""
        if not (fields.get("customer_id") or fields.get("phone") or fields.get("email")):
            raise RuleViolation("a lead needs a customer id, a phone or an e-mail to reach")
        from_campaign = fields["source"] == LeadSource.CAMPAIGN
        if from_campaign != (fields.get("campaign_id") is not None):
            raise RuleViolation("a campaign id is given for, and only for, a campaign lead")
        return cls(lead_id=lead_id, **fields)

    # Commands ---------------------------------------------------------------------------

    def qualify(self, customer_id: str | None, notes: str | None) -> None:
        """Upgrade to a qualified prospect, who is now a registered customer."""
        self._ensure_open()
        if self.status is LeadStatus.QUALIFIED:
            raise Conflict(f"lead {self.lead_id} is already qualified")
        customer_id = customer_id or self.customer_id
        if customer_id is None:
            raise RuleViolation("qualifying names the customer: register the prospect first")
        if self.customer_id is not None and customer_id != self.customer_id:
            raise RuleViolation(f"lead {self.lead_id} is customer {self.customer_id}'s")
        self._qualified(customer_id=customer_id, notes=notes)

    def assign(self, manager_id: str, reason: str | None) -> None:
        self._ensure_open()
        if manager_id == self.manager_id:
            return
        self._assigned(manager_id=manager_id, previous_manager_id=self.manager_id, reason=reason)

    def convert(self, opportunity_id: str, fields: JsonDict) -> Opportunity:
        """The opportunity a qualified, assigned lead becomes (saved with the lead).

        ``fields`` describe the deal (title, products, value, dates, ...); customer,
        manager, branch, source and campaign come from the lead.
        """
        self._ensure_open()
        if self.status is not LeadStatus.QUALIFIED or self.customer_id is None:
            raise RuleViolation(f"lead {self.lead_id} is not qualified yet")
        if self.manager_id is None:
            raise RuleViolation(f"lead {self.lead_id} has no manager: assign it first")
        opportunity = Opportunity.open(
            opportunity_id,
            fields
            | {
                "customer_id": self.customer_id,
                "stage": Stage.OPPORTUNITY_CREATED.value,
                "manager_id": self.manager_id,
                "branch_id": self.branch_id,
                "source": self.source.value,
                "lead_id": self.lead_id,
                "campaign_id": self.campaign_id,
            },
        )
        self._converted(opportunity_id=opportunity_id, customer_id=self.customer_id)
        return opportunity

    def disqualify(self, reason: str) -> None:
        self._ensure_open()
        if not reason.strip():
            raise RuleViolation("disqualifying a lead needs a reason")
        self._disqualified(reason=reason)

    # Events -----------------------------------------------------------------------------

    @event("Qualified")
    def _qualified(self, customer_id: str, notes: str | None) -> None:
        self.customer_id = customer_id
        self.status = LeadStatus.QUALIFIED

    @event("Assigned")
    def _assigned(
        self, manager_id: str, previous_manager_id: str | None, reason: str | None
    ) -> None:
        self.manager_id = manager_id

    @event("Converted")
    def _converted(self, opportunity_id: str, customer_id: str) -> None:
        self.opportunity_id = opportunity_id
        self.status = LeadStatus.CONVERTED

    @event("Disqualified")
    def _disqualified(self, reason: str) -> None:
        self.disqualified_reason = reason
        self.status = LeadStatus.DISQUALIFIED

    def _ensure_open(self) -> None:
        if self.status not in OPEN_LEADS:
            raise Conflict(f"lead {self.lead_id} is {self.status}: closed for good")


# Needs and complaints -------------------------------------------------------------------


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


def _check_value(money: JsonDict) -> None:
    if Decimal(money["amount"]) < 0:
        raise RuleViolation("an expected value is not negative")


def _same_money(a: JsonDict, b: JsonDict) -> bool:
    return a["currency"] == b["currency"] and Decimal(a["amount"]) == Decimal(b["amount"])


def _moment(value: str) -> datetime:
    return datetime.fromisoformat(value)
