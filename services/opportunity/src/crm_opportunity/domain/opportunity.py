"""An opportunity through the sales funnel: its stages, their probabilities, the moves allowed."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from crm_events.opportunity import OpportunityStage
from eventsourcing.domain import event

from crm_opportunity.domain.base import Conflict, JsonDict, PipelineAggregate, RuleViolation

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


class InvalidStageMove(RuleViolation):
    def __init__(self, current: Stage, wanted: Stage, why: str) -> None:
        super().__init__(f"cannot move from {current} to {wanted}: {why}")
        self.current = current
        self.wanted = wanted


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


def _check_value(money: JsonDict) -> None:
    if Decimal(money["amount"]) < 0:
        raise RuleViolation("an expected value is not negative")


def _same_money(a: JsonDict, b: JsonDict) -> bool:
    return a["currency"] == b["currency"] and Decimal(a["amount"]) == Decimal(b["amount"])
