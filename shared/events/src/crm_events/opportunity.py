"""Events of the opportunity service: leads, opportunities, needs and complaints.

Each aggregate (lead, opportunity, need) is the subject of its own events. Every
opportunity and need event names its customer, so a consumer can route it to the
customer's documents without keeping state of its own; that customer is also the data
subject of the personal data it carries (``subject_field``). A lead's personal data is
the lead's own (its contact may be no customer yet): its subject is the lead id.
"""

from datetime import date
from enum import StrEnum
from typing import Annotated, Self

from pydantic import AwareDatetime, model_validator

from crm_events.common import (
    Assignment,
    Channel,
    Email,
    Id,
    Money,
    Name,
    Notes,
    Percent,
    PersonName,
    Phone,
    ShortNotes,
)
from crm_events.personal import Personal, PersonalData
from crm_events.registry import EventPayload, event


class LeadSource(StrEnum):
    REFERRAL = "referral"
    CAMPAIGN = "campaign"
    WALK_IN = "walk_in"
    WEBSITE = "website"
    CALL_CENTER = "call_center"
    RELATIONSHIP_MANAGER = "relationship_manager"
    EVENT = "event"
    OTHER = "other"


class OpportunityStage(StrEnum):
    """Sales funnel stages, in order; the last two are terminal."""

    LEAD = "lead"
    OPPORTUNITY_CREATED = "opportunity_created"
    PROPOSAL = "proposal"
    EVALUATION = "evaluation"
    NEGOTIATION = "negotiation"
    CONTRACT_SIGNED = "contract_signed"
    IMPLEMENTATION = "implementation"
    CLOSED_WON = "closed_won"
    CLOSED_LOST = "closed_lost"


class NeedKind(StrEnum):
    NEED = "need"
    COMPLAINT = "complaint"


class Severity(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class Urgency(StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    IMMEDIATE = "immediate"


class NeedStatus(StrEnum):
    OPEN = "open"
    ASSIGNED = "assigned"
    IN_PROGRESS = "in_progress"
    PENDING_CUSTOMER = "pending_customer"
    RESOLVED = "resolved"
    CONFIRMED = "confirmed"
    REOPENED = "reopened"


@event("crm.lead.captured")
class LeadCaptured(EventPayload):
    """A lead was recorded; ``customer_id`` is set when it is an existing customer."""

    customer_id: Id | None = None
    contact_name: PersonName
    phone: Phone | None = None
    email: Email | None = None
    source: LeadSource
    campaign_id: Id | None = None
    products_of_interest: list[Id] = []
    branch_id: Id
    notes: Notes | None = None


@event("crm.lead.qualified")
class LeadQualified(EventPayload):
    """The lead was upgraded to a qualified prospect, now a registered customer."""

    customer_id: Id
    notes: Notes | None = None


@event("crm.lead.assigned")
class LeadAssigned(Assignment, EventPayload):
    pass


@event("crm.lead.converted")
class LeadConverted(EventPayload):
    opportunity_id: Id
    customer_id: Id


@event("crm.lead.disqualified")
class LeadDisqualified(EventPayload):
    reason: Notes


@event("crm.opportunity.created")
class OpportunityCreated(EventPayload):
    subject_field = "customer_id"

    customer_id: Id
    title: Name
    products: list[Id]
    description: Notes | None = None
    sales_method: str | None = None
    stage: OpportunityStage = OpportunityStage.OPPORTUNITY_CREATED
    probability: Percent
    expected_value: Money
    start_date: date
    expected_close_date: date
    manager_id: Id
    branch_id: Id
    source: LeadSource
    lead_id: Id | None = None
    campaign_id: Id | None = None
    contacts: list[PersonName] = []
    working_group: list[Id] = []
    competitors: list[Name] = []


@event("crm.opportunity.stage_changed")
class OpportunityStageChanged(EventPayload):
    """The opportunity moved in the funnel; ``lost_reason`` is required when closed lost."""

    subject_field = "customer_id"

    customer_id: Id
    previous_stage: OpportunityStage
    stage: OpportunityStage
    probability: Percent
    lost_reason: Annotated[Notes | None, Personal(PersonalData.FREE_TEXT)] = None
    """Erased, still a reason: the stage it explains stays closed lost."""

    @model_validator(mode="after")
    def _lost_reason_iff_lost(self) -> Self:
        if (self.stage is OpportunityStage.CLOSED_LOST) != (self.lost_reason is not None):
            raise ValueError("lost_reason is required for closed_lost and only for it")
        return self


@event("crm.opportunity.probability_overridden")
class OpportunityProbabilityOverridden(EventPayload):
    subject_field = "customer_id"

    customer_id: Id
    previous_probability: Percent
    probability: Percent
    reason: Notes


@event("crm.opportunity.expected_value_changed")
class OpportunityExpectedValueChanged(EventPayload):
    subject_field = "customer_id"

    customer_id: Id
    previous_expected_value: Money
    expected_value: Money
    reason: Notes | None = None


@event("crm.opportunity.reassigned")
class OpportunityReassigned(Assignment, EventPayload):
    subject_field = "customer_id"

    customer_id: Id


@event("crm.need.logged")
class NeedLogged(EventPayload):
    """A customer need or complaint was logged; complaints carry an SLA due time."""

    subject_field = "customer_id"

    customer_id: Id
    kind: NeedKind
    summary: ShortNotes
    content: Notes
    severity: Severity
    urgency: Urgency
    channel: Channel
    started_at: AwareDatetime
    sla_due_at: AwareDatetime | None = None

    @model_validator(mode="after")
    def _complaints_have_sla(self) -> Self:
        if self.kind is NeedKind.COMPLAINT and self.sla_due_at is None:
            raise ValueError("a complaint needs sla_due_at")
        return self


@event("crm.need.assigned")
class NeedAssigned(Assignment, EventPayload):
    subject_field = "customer_id"

    customer_id: Id


@event("crm.need.status_changed")
class NeedStatusChanged(EventPayload):
    subject_field = "customer_id"

    customer_id: Id
    previous_status: NeedStatus
    status: NeedStatus
    sub_status: str | None = None


@event("crm.need.resolved")
class NeedResolved(EventPayload):
    subject_field = "customer_id"

    customer_id: Id
    resolution: Notes
    resolved_at: AwareDatetime


@event("crm.need.resolution_confirmed")
class NeedResolutionConfirmed(EventPayload):
    """The customer confirmed (or rejected) the resolution; this ends the need."""

    subject_field = "customer_id"

    customer_id: Id
    satisfied: bool
    feedback: Notes | None = None
    ended_at: AwareDatetime
