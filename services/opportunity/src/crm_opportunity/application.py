"""The opportunity service layer: each command loads an aggregate, decides, and saves atomically.

Commands return the aggregate's new version, which a caller may pass back as
``expected_version`` (optimistic concurrency) or to the view to read its own write.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from crm_backbone.application import ServiceApplication, StaleVersion
from crm_events.opportunity import LeadSource, NeedStatus, OpportunityStage
from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from crm_opportunity.domain import (
    Conflict,
    DomainError,
    JsonDict,
    Lead,
    Need,
    Opportunity,
    PipelineAggregate,
    store_id,
)

A = TypeVar("A", bound=PipelineAggregate)
MAX_ID = 128


class NotFound(DomainError):
    def __init__(self, kind: str, key: str) -> None:
        super().__init__(f"no {kind} {key}")
        self.kind = kind
        self.key = key


def new_id(prefix: str) -> str:
    """A fresh id for a lead (``L``), opportunity (``OPP``) or need (``N``)."""
    return f"{prefix}-{uuid.uuid4().hex[:16].upper()}"


def campaign_lead_id(campaign_id: str, customer_id: str) -> str:
    """The lead a campaign response creates: one per campaign and customer."""
    readable = f"CL-{campaign_id}-{customer_id}"
    if len(readable) <= MAX_ID:
        return readable
    return f"CL-{uuid.uuid5(uuid.NAMESPACE_URL, f'{campaign_id}|{customer_id}').hex}"


class OpportunityApplication(ServiceApplication):
    """Captures leads, runs opportunities through the funnel, and handles needs."""

    snapshotting_intervals = {Lead: 50, Opportunity: 50, Need: 50}

    def __init__(self, env: dict[str, str] | None = None) -> None:
        super().__init__(env)

    # Queries of the write side ----------------------------------------------------------

    def lead(self, lead_id: str) -> Lead:
        return self._get(Lead, "lead", lead_id)

    def opportunity(self, opportunity_id: str) -> Opportunity:
        return self._get(Opportunity, "opportunity", opportunity_id)

    def need(self, need_id: str) -> Need:
        return self._get(Need, "need", need_id)

    def exists(self, key: str) -> bool:
        """Whether a lead, opportunity or need has the id ``key``."""
        return store_id(key) in self.repository

    # Leads ------------------------------------------------------------------------------

    def capture_lead(self, lead_id: str, fields: JsonDict) -> int:
        self._ensure_free(lead_id)
        lead = Lead.capture(lead_id, fields)
        self._save(lead)
        return lead.version

    def capture_campaign_lead(
        self,
        campaign_id: str,
        customer_id: str,
        contact_name: str,
        branch_id: str,
        products: list[str],
        manager_id: str | None,
        notes: str,
    ) -> bool:
        """The lead of a customer who responded to a campaign, assigned to the customer's
        manager when there is one; False if it was already captured (idempotent)."""
        lead_id = campaign_lead_id(campaign_id, customer_id)
        if self.exists(lead_id):
            return False
        lead = Lead.capture(
            lead_id,
            {
                "customer_id": customer_id,
                "contact_name": contact_name,
                "phone": None,
                "email": None,
                "source": LeadSource.CAMPAIGN.value,
                "campaign_id": campaign_id,
                "products_of_interest": products,
                "branch_id": branch_id,
                "notes": notes,
            },
        )
        if manager_id is not None:
            lead.assign(manager_id, "the customer's relationship manager")
        try:
            self.save(lead)
        except IntegrityError:  # captured at the same moment by another consumer
            return False
        return True

    def qualify_lead(
        self, lead_id: str, expected: int | None, customer_id: str | None, notes: str | None
    ) -> int:
        return self._command(
            self.lead, lead_id, expected, lambda lead: lead.qualify(customer_id, notes)
        )

    def assign_lead(
        self, lead_id: str, expected: int | None, manager_id: str, reason: str | None
    ) -> int:
        return self._command(
            self.lead, lead_id, expected, lambda lead: lead.assign(manager_id, reason)
        )

    def disqualify_lead(self, lead_id: str, expected: int | None, reason: str) -> int:
        return self._command(self.lead, lead_id, expected, lambda lead: lead.disqualify(reason))

    def convert_lead(
        self, lead_id: str, expected: int | None, opportunity_id: str, fields: JsonDict
    ) -> int:
        """Convert the lead into a new opportunity: both saved in one atomic save."""
        lead = self._load(self.lead, lead_id, expected)
        self._ensure_free(opportunity_id)
        opportunity = lead.convert(opportunity_id, fields)
        self._save(lead, opportunity)
        return lead.version

    # Opportunities ----------------------------------------------------------------------

    def open_opportunity(self, opportunity_id: str, fields: JsonDict) -> int:
        self._ensure_free(opportunity_id)
        opportunity = Opportunity.open(opportunity_id, fields)
        self._save(opportunity)
        return opportunity.version

    def move_opportunity(
        self,
        opportunity_id: str,
        expected: int | None,
        stage: OpportunityStage,
        lost_reason: str | None,
    ) -> int:
        return self._command(
            self.opportunity, opportunity_id, expected, lambda o: o.move_to(stage, lost_reason)
        )

    def override_probability(
        self, opportunity_id: str, expected: int | None, probability: int, reason: str
    ) -> int:
        return self._command(
            self.opportunity,
            opportunity_id,
            expected,
            lambda o: o.override_probability(probability, reason),
        )

    def change_expected_value(
        self,
        opportunity_id: str,
        expected: int | None,
        expected_value: JsonDict,
        reason: str | None,
    ) -> int:
        return self._command(
            self.opportunity,
            opportunity_id,
            expected,
            lambda o: o.change_expected_value(expected_value, reason),
        )

    def reassign_opportunity(
        self, opportunity_id: str, expected: int | None, manager_id: str, reason: str | None
    ) -> int:
        return self._command(
            self.opportunity, opportunity_id, expected, lambda o: o.reassign(manager_id, reason)
        )

    # Needs ------------------------------------------------------------------------------

    def log_need(self, need_id: str, fields: JsonDict) -> int:
        self._ensure_free(need_id)
        need = Need.log(need_id, fields)
        self._save(need)
        return need.version

    def assign_need(
        self, need_id: str, expected: int | None, manager_id: str, reason: str | None
    ) -> int:
        return self._command(self.need, need_id, expected, lambda n: n.assign(manager_id, reason))

    def work_on_need(
        self, need_id: str, expected: int | None, status: NeedStatus, sub_status: str | None
    ) -> int:
        return self._command(self.need, need_id, expected, lambda n: n.work(status, sub_status))

    def resolve_need(
        self, need_id: str, expected: int | None, resolution: str, resolved_at: str
    ) -> int:
        return self._command(
            self.need, need_id, expected, lambda n: n.resolve(resolution, resolved_at)
        )

    def reopen_need(self, need_id: str, expected: int | None, reason: str) -> int:
        return self._command(self.need, need_id, expected, lambda n: n.reopen(reason))

    def confirm_need(
        self,
        need_id: str,
        expected: int | None,
        satisfied: bool,
        feedback: str | None,
        ended_at: str,
    ) -> int:
        return self._command(
            self.need, need_id, expected, lambda n: n.confirm(satisfied, feedback, ended_at)
        )

    # Helpers ----------------------------------------------------------------------------

    def _get(self, kind: type[A], name: str, key: str) -> A:
        try:
            found: Any = self.repository.get(store_id(key))
        except AggregateNotFoundError:
            raise NotFound(name, key) from None
        if not isinstance(found, kind):  # the id is another kind of aggregate's
            raise NotFound(name, key)
        return found

    def _command(
        self, get: Callable[[str], A], key: str, expected: int | None, decide: Callable[[A], None]
    ) -> int:
        aggregate = self._load(get, key, expected)
        decide(aggregate)
        self._save(aggregate)
        return aggregate.version

    @staticmethod
    def _load(get: Callable[[str], A], key: str, expected: int | None) -> A:
        aggregate = get(key)
        if expected is not None and expected != aggregate.version:
            raise StaleVersion(key, expected, aggregate.version)
        return aggregate

    def _ensure_free(self, key: str) -> None:
        if self.exists(key):
            raise Conflict(f"the id {key} is taken (leads, opportunities and needs share ids)")

    def _save(self, *aggregates: PipelineAggregate) -> None:
        try:
            self.save(*aggregates)
        except IntegrityError:
            ids = ", ".join(a.subject for a in aggregates)
            raise Conflict(f"{ids} changed while this command ran: read again and retry") from None
