"""The opportunity service layer: each command loads an aggregate, decides, and saves atomically.

Commands return the aggregate's new version (with its id, when the command made it:
the caller's, or one made here with the injected ``new_id``), which a caller may pass
back as ``expected_version`` (optimistic concurrency) or to the view to read its own
write. Moments and dates the caller leaves out are the injected ``clock``'s.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any, NamedTuple, TypeVar

from crm_backbone.application import Created, ServiceApplication, StaleVersion
from crm_events.opportunity import LeadSource, NeedStatus, OpportunityStage
from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from crm_opportunity.domain.base import Conflict, DomainError, JsonDict, PipelineAggregate, store_id
from crm_opportunity.domain.lead import Lead
from crm_opportunity.domain.need import Need
from crm_opportunity.domain.opportunity import Opportunity

A = TypeVar("A", bound=PipelineAggregate)
MAX_ID = 128


class NotFound(DomainError):
    def __init__(self, kind: str, key: str) -> None:
        super().__init__(f"no {kind} {key}")
        self.kind = kind
        self.key = key


class Conversion(NamedTuple):
    """A converted lead's new version, and the opportunity it became."""

    lead_version: int
    opportunity: Created


def campaign_lead_id(campaign_id: str, customer_id: str) -> str:
    """The lead a campaign response creates: one per campaign and customer."""
    readable = f"CL-{campaign_id}-{customer_id}"
    if len(readable) <= MAX_ID:
        return readable
    return f"CL-{uuid.uuid5(uuid.NAMESPACE_URL, f'{campaign_id}|{customer_id}').hex}"


class OpportunityApplication(ServiceApplication):
    """Captures leads, runs opportunities through the funnel, and handles needs."""

    snapshotting_intervals = {Lead: 50, Opportunity: 50, Need: 50}

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

    def capture_lead(self, lead_id: str | None, fields: JsonDict) -> Created:
        """Capture a lead under ``lead_id`` or a new ``L-`` id, assigned to the
        ``manager_id`` the fields name, if any, in the same save."""
        lead_id = lead_id or self.new_id("L")
        self._ensure_free(lead_id)
        manager_id = fields.get("manager_id")
        lead = Lead.capture(lead_id, {k: v for k, v in fields.items() if k != "manager_id"})
        if manager_id is not None:
            lead.assign(manager_id, "assigned when captured")
        self._save(lead)
        return Created(lead_id, lead.version)

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
        self, lead_id: str, expected: int | None, opportunity_id: str | None, deal: JsonDict
    ) -> Conversion:
        """Convert the lead into a new opportunity (``opportunity_id`` or a new ``OPP-`` id)
        about ``deal``: both saved in one atomic save."""
        lead = self._load(self.lead, lead_id, expected)
        opportunity_id = opportunity_id or self.new_id("OPP")
        self._ensure_free(opportunity_id)
        opportunity = lead.convert(opportunity_id, self._started(deal))
        self._save(lead, opportunity)
        return Conversion(lead.version, Created(opportunity_id, opportunity.version))

    # Opportunities ----------------------------------------------------------------------

    def open_opportunity(self, opportunity_id: str | None, fields: JsonDict) -> Created:
        """Open an opportunity, from no lead, under ``opportunity_id`` or a new ``OPP-`` id."""
        opportunity_id = opportunity_id or self.new_id("OPP")
        self._ensure_free(opportunity_id)
        opportunity = Opportunity.open(opportunity_id, self._started(fields) | {"lead_id": None})
        self._save(opportunity)
        return Created(opportunity_id, opportunity.version)

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

    def log_need(self, need_id: str | None, fields: JsonDict) -> Created:
        """Log a need under ``need_id`` or a new ``N-`` id; it started now unless the
        fields say when."""
        need_id = need_id or self.new_id("N")
        self._ensure_free(need_id)
        started_at = fields.get("started_at") or self._moment(None)
        need = Need.log(need_id, fields | {"started_at": started_at})
        self._save(need)
        return Created(need_id, need.version)

    def assign_need(
        self, need_id: str, expected: int | None, manager_id: str, reason: str | None
    ) -> int:
        return self._command(self.need, need_id, expected, lambda n: n.assign(manager_id, reason))

    def work_on_need(
        self, need_id: str, expected: int | None, status: NeedStatus, sub_status: str | None
    ) -> int:
        return self._command(self.need, need_id, expected, lambda n: n.work(status, sub_status))

    def resolve_need(
        self, need_id: str, expected: int | None, resolution: str, resolved_at: datetime | None
    ) -> int:
        """Resolve the need, now unless ``resolved_at`` says when."""
        moment = self._moment(resolved_at)
        return self._command(self.need, need_id, expected, lambda n: n.resolve(resolution, moment))

    def reopen_need(self, need_id: str, expected: int | None, reason: str) -> int:
        return self._command(self.need, need_id, expected, lambda n: n.reopen(reason))

    def confirm_need(
        self,
        need_id: str,
        expected: int | None,
        satisfied: bool,
        feedback: str | None,
        ended_at: datetime | None,
    ) -> int:
        """The customer's answer, which ends the need now unless ``ended_at`` says when."""
        moment = self._moment(ended_at)
        return self._command(
            self.need, need_id, expected, lambda n: n.confirm(satisfied, feedback, moment)
        )

    # Helpers ----------------------------------------------------------------------------

    def _started(self, deal: JsonDict) -> JsonDict:
        """``deal`` starting on its ``start_date``, or today when it names none."""
        return deal | {"start_date": deal.get("start_date") or self.clock().date().isoformat()}

    def _moment(self, given: datetime | None) -> str:
        """``given``, or now, as the ISO 8601 text events carry."""
        return (given or self.clock()).isoformat()

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
