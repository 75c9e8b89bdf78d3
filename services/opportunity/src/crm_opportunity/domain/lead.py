"""A lead: a prospective sale, captured, qualified and assigned, then converted into an
opportunity or disqualified."""

from __future__ import annotations

from enum import StrEnum

from crm_events.opportunity import LeadSource
from eventsourcing.domain import event

from crm_opportunity.domain.base import Conflict, JsonDict, PipelineAggregate, RuleViolation
from crm_opportunity.domain.opportunity import Opportunity, Stage


class LeadStatus(StrEnum):
    CAPTURED = "captured"
    QUALIFIED = "qualified"
    CONVERTED = "converted"
    DISQUALIFIED = "disqualified"


OPEN_LEADS = frozenset({LeadStatus.CAPTURED, LeadStatus.QUALIFIED})


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
