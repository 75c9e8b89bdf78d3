"""What the opportunity service publishes: each domain event as its integration event.

Domain event attributes are named as the payload's fields, so the mapping is by name; the
aggregate's own id is the envelope's subject and not repeated in the payload.
"""

from __future__ import annotations

from crm_backbone.publication import translator
from crm_events import opportunity as op
from crm_events.registry import EventPayload

PAYLOADS: dict[str, type[EventPayload]] = {
    "Lead.Captured": op.LeadCaptured,
    "Lead.Qualified": op.LeadQualified,
    "Lead.Assigned": op.LeadAssigned,
    "Lead.Converted": op.LeadConverted,
    "Lead.Disqualified": op.LeadDisqualified,
    "Opportunity.Created": op.OpportunityCreated,
    "Opportunity.StageChanged": op.OpportunityStageChanged,
    "Opportunity.ProbabilityOverridden": op.OpportunityProbabilityOverridden,
    "Opportunity.ExpectedValueChanged": op.OpportunityExpectedValueChanged,
    "Opportunity.Reassigned": op.OpportunityReassigned,
    "Need.Logged": op.NeedLogged,
    "Need.Assigned": op.NeedAssigned,
    "Need.StatusChanged": op.NeedStatusChanged,
    "Need.Resolved": op.NeedResolved,
    "Need.ResolutionConfirmed": op.NeedResolutionConfirmed,
}
"""Domain event class (qualified name) -> payload model of its integration event."""

translate = translator(PAYLOADS)
