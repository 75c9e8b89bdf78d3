"""The campaign aggregate: lifecycle, frozen target list, responses and attribution.

Command methods check the rules and then trigger events (the ``@event``-decorated private
methods, whose bodies are how each event changes the state). Event attributes are plain
JSON values named as in the published contract (``crm_events.campaign``), so
``publication.py`` maps each event to its payload field by field; attributes the contract
does not carry (the targeting criteria, the attribution window, the previous status of a
cancelled campaign) stay private to the event store.

A target reaches each response stage once: a later report of the same customer and
stage (the same gateway message and stage redelivered, the same send re-reported under
another message id, a second won opportunity) changes nothing. So every consumer sees one
``response_recorded`` per (customer, stage), dated by its first report, and the gateway
policy is idempotent per message id and stage.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from crm_backbone.aggregate import TracedAggregate
from crm_events.campaign import CampaignStarted, ResponseStage
from crm_events.common import Channel
from eventsourcing.domain import event

JsonDict = dict[str, Any]


class CampaignStatus(StrEnum):
    DRAFT = "draft"
    SCHEDULED = "scheduled"
    RUNNING = "running"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


STATUS_TRANSITIONS: dict[CampaignStatus, frozenset[CampaignStatus]] = {
    CampaignStatus.DRAFT: frozenset({CampaignStatus.SCHEDULED, CampaignStatus.CANCELLED}),
    CampaignStatus.SCHEDULED: frozenset(
        {CampaignStatus.SCHEDULED, CampaignStatus.RUNNING, CampaignStatus.CANCELLED}
    ),
    CampaignStatus.RUNNING: frozenset({CampaignStatus.COMPLETED, CampaignStatus.CANCELLED}),
    CampaignStatus.COMPLETED: frozenset(),
    CampaignStatus.CANCELLED: frozenset(),
}
"""Lifecycle moves; scheduled -> scheduled is a reschedule."""

CALL_LIST_CHANNELS = frozenset({Channel.PHONE, Channel.BRANCH})
"""Channels on which targets are phoned or visited by their relationship manager."""

MAX_TARGET_LIST_BYTES = 1_000_000
"""Largest ``CampaignStarted`` payload (JSON): the event is one Kafka record, and Kafka's
default limit (``max.request.size`` / ``message.max.bytes``) is 1 MiB, headers included.
About 8,000 targets with ten-character customer and manager ids."""

MAX_ATTRIBUTION_DAYS = 365


class CampaignError(Exception):
    """A command the campaign's rules refuse."""


class RuleViolation(CampaignError):
    """The command breaks a rule of the domain (HTTP 422)."""


class InvalidTransition(RuleViolation):
    def __init__(self, current: CampaignStatus, wanted: CampaignStatus) -> None:
        allowed = ", ".join(sorted(STATUS_TRANSITIONS[current])) or "none"
        super().__init__(f"a {current} campaign cannot become {wanted} (allowed: {allowed})")
        self.current = current
        self.wanted = wanted


class TargetListTooLarge(RuleViolation):
    def __init__(self, targets: int, size: int) -> None:
        super().__init__(
            f"the target list of {targets} customers is {size} bytes, over the "
            f"{MAX_TARGET_LIST_BYTES} bytes one Kafka record carries: narrow the criteria "
            "or split the campaign"
        )
        self.targets = targets
        self.size = size


class NotTargeted(RuleViolation):
    def __init__(self, campaign_id: str, customer_id: str) -> None:
        super().__init__(f"customer {customer_id} is not on the target list of {campaign_id}")
        self.customer_id = customer_id


class Conflict(CampaignError):
    """The command contradicts the campaign's current state (HTTP 409)."""


class NotStarted(Conflict):
    """Responses need the frozen target list: the campaign has not started yet."""

    def __init__(self, campaign_id: str, status: str) -> None:
        super().__init__(f"campaign {campaign_id} is {status}: it has no target list yet")
        self.campaign_id = campaign_id


class Campaign(TracedAggregate):
    """One marketing campaign, known everywhere by its campaign id."""

    natural_key = "campaign_id"

    @event("Created")
    def __init__(
        self,
        campaign_id: str,
        name: str,
        kind: str,
        description: str | None,
        products: list[str],
        channels: list[str],
        target_segments: list[JsonDict],
        criteria: JsonDict,
        owner_manager_ids: list[str],
        budget: JsonDict,
        planned_start: str,
        planned_end: str,
        attribution_window_days: int,
    ) -> None:
        self.campaign_id = campaign_id
        self.name = name
        self.kind = kind
        self.description = description
        self.products = products
        self.channels = channels
        self.target_segments = target_segments
        self.criteria = criteria
        self.owner_manager_ids = owner_manager_ids
        self.budget = budget
        self.planned_start = planned_start
        self.planned_end = planned_end
        self.attribution_window_days = attribution_window_days
        self._status = CampaignStatus.DRAFT.value
        self.starts_at: str | None = None
        self.ends_at: str | None = None
        self.started_at: str | None = None
        self.targets: dict[str, JsonDict] = {}
        self.excluded: dict[str, int] = {}
        self.call_lists: dict[str, int] = {}
        self.reached: dict[str, list[str]] = {}
        self.opted_out: dict[str, list[str]] = {}
        self.completed_at: str | None = None
        self.cancel_reason: str | None = None

    @classmethod
    def create(cls, campaign_id: str, fields: JsonDict) -> Campaign:
        """A draft campaign; ``fields`` are the ``Created`` event's attributes (JSON)."""
        for name in ("channels", "target_segments", "owner_manager_ids"):
            if not fields[name]:
                raise RuleViolation(f"a campaign needs at least one of {name}")
        for name in ("channels", "products", "owner_manager_ids"):
            if len(set(fields[name])) != len(fields[name]):
                raise RuleViolation(f"{name} are listed twice")
        if fields["planned_end"] < fields["planned_start"]:
            raise RuleViolation("planned_end is before planned_start")
        if not 1 <= fields["attribution_window_days"] <= MAX_ATTRIBUTION_DAYS:
            raise RuleViolation(f"the attribution window is 1 to {MAX_ATTRIBUTION_DAYS} days")
        if fields["budget"]["amount"].startswith("-"):
            raise RuleViolation("the budget cannot be negative")
        return cls(campaign_id=campaign_id, **fields)

    # Commands ---------------------------------------------------------------------------

    def schedule(self, starts_at: datetime, ends_at: datetime) -> None:
        """Schedule the campaign (again, while it has not started)."""
        self._ensure_move(CampaignStatus.SCHEDULED)
        if ends_at <= starts_at:
            raise RuleViolation("ends_at must be after starts_at")
        self._scheduled(starts_at=starts_at.isoformat(), ends_at=ends_at.isoformat())

    def start(self, targets: list[JsonDict], excluded: dict[str, int], now: datetime) -> None:
        """Freeze the target list and start; hand phone and branch targets to their managers.

        Targets without a manager go to the campaign's first owner's call list.
        """
        self._ensure_move(CampaignStatus.RUNNING)
        started = CampaignStarted.model_validate({"targets": targets, "excluded": excluded})
        if not started.targets:
            raise RuleViolation("no customer is left on the target list: widen the criteria")
        if len({t.customer_id for t in started.targets}) != len(started.targets):
            raise RuleViolation("a customer is on the target list twice")
        foreign = sorted({t.channel.value for t in started.targets} - set(self.channels))
        if foreign:
            raise RuleViolation(f"channels {', '.join(foreign)} are not the campaign's")
        size = len(started.model_dump_json())
        if size > MAX_TARGET_LIST_BYTES:
            raise TargetListTooLarge(len(started.targets), size)
        payload = started.model_dump(mode="json")
        self._started(
            targets=payload["targets"], excluded=payload["excluded"], started_at=now.isoformat()
        )
        due_on = (self.ends_at or self.planned_end)[:10]
        lists = call_lists(payload["targets"], default_manager=self.owner_manager_ids[0])
        for manager_id, customer_ids in sorted(lists.items()):
            self._call_list_assigned(
                manager_id=manager_id, customer_ids=customer_ids, due_on=due_on
            )

    def complete(self, now: datetime) -> None:
        self._ensure_move(CampaignStatus.COMPLETED)
        self._completed(completed_at=now.isoformat())

    def cancel(self, reason: str) -> None:
        self._ensure_move(CampaignStatus.CANCELLED)
        self._cancelled(reason=reason, previous_status=self.status.value)

    def record_response(
        self,
        customer_id: str,
        channel: Channel,
        stage: ResponseStage,
        occurred_at: datetime,
        gateway_message_id: str | None = None,
        revenue: JsonDict | None = None,
        opportunity_id: str | None = None,
    ) -> bool:
        """A target reached a stage; False if it had (nothing is recorded then).

        An opt-out also asks, once per customer and channel, that the customer's consent
        change (``OptOutRequested``). Responses keep arriving after the campaign completes
        or is cancelled: messages already sent still get answers.
        """
        self._ensure_started()
        if customer_id not in self.targets:
            raise NotTargeted(self.campaign_id, customer_id)
        if revenue is not None and stage is not ResponseStage.CONVERTED:
            raise RuleViolation("revenue is attributed on conversion only")
        recorded = False
        if stage.value not in self.reached.get(customer_id, ()):
            self._response_recorded(
                customer_id=customer_id,
                channel=channel.value,
                stage=stage.value,
                occurred_at=occurred_at.isoformat(),
                revenue=revenue,
                opportunity_id=opportunity_id,
                gateway_message_id=gateway_message_id,
            )
            recorded = True
        if stage is ResponseStage.OPTED_OUT and channel not in self.opted_out.get(customer_id, ()):
            self._opt_out_requested(
                customer_id=customer_id, channel=channel.value, occurred_at=occurred_at.isoformat()
            )
            recorded = True
        return recorded

    def attribute_conversion(
        self,
        customer_id: str,
        occurred_at: datetime,
        revenue: JsonDict | None = None,
        opportunity_id: str | None = None,
        product_code: str | None = None,
    ) -> bool:
        """Count a won opportunity, or an offered product opened, as the target's conversion.

        Only within the attribution window after the start, only for targets, only once per
        target, and for an account opened only if the product is one the campaign offers;
        otherwise False and nothing is recorded.
        """
        target = self.targets.get(customer_id)
        if target is None or not self.within_window(occurred_at):
            return False
        if product_code is not None and product_code not in self.products:
            return False
        if ResponseStage.CONVERTED.value in self.reached.get(customer_id, ()):
            return False
        self._response_recorded(
            customer_id=customer_id,
            channel=target["channel"],
            stage=ResponseStage.CONVERTED.value,
            occurred_at=occurred_at.isoformat(),
            revenue=revenue,
            opportunity_id=opportunity_id,
            gateway_message_id=None,
        )
        return True

    # Queries ----------------------------------------------------------------------------

    @property
    def status(self) -> CampaignStatus:
        return CampaignStatus(self._status)

    def window(self) -> tuple[datetime, datetime] | None:
        """The attribution window: from the start, ``attribution_window_days`` long."""
        if self.started_at is None:
            return None
        start = datetime.fromisoformat(self.started_at)
        return start, start + timedelta(days=self.attribution_window_days)

    def within_window(self, moment: datetime) -> bool:
        window = self.window()
        return window is not None and window[0] <= moment <= window[1]

    # Events: how each changes the state -------------------------------------------------

    @event("Scheduled")
    def _scheduled(self, starts_at: str, ends_at: str) -> None:
        self._status = CampaignStatus.SCHEDULED.value
        self.starts_at = starts_at
        self.ends_at = ends_at

    @event("Started")
    def _started(self, targets: list[JsonDict], excluded: dict[str, int], started_at: str) -> None:
        self._status = CampaignStatus.RUNNING.value
        self.started_at = started_at
        self.targets = {target["customer_id"]: target for target in targets}
        self.excluded = excluded

    @event("CallListAssigned")
    def _call_list_assigned(self, manager_id: str, customer_ids: list[str], due_on: str) -> None:
        self.call_lists[manager_id] = len(customer_ids)

    @event("Completed")
    def _completed(self, completed_at: str) -> None:
        self._status = CampaignStatus.COMPLETED.value
        self.completed_at = completed_at

    @event("Cancelled")
    def _cancelled(self, reason: str, previous_status: str) -> None:
        self._status = CampaignStatus.CANCELLED.value
        self.cancel_reason = reason

    @event("ResponseRecorded")
    def _response_recorded(
        self,
        customer_id: str,
        channel: str,
        stage: str,
        occurred_at: str,
        revenue: JsonDict | None,
        opportunity_id: str | None,
        gateway_message_id: str | None,
    ) -> None:
        self.reached.setdefault(customer_id, []).append(stage)

    @event("OptOutRequested")
    def _opt_out_requested(self, customer_id: str, channel: str, occurred_at: str) -> None:
        self.opted_out.setdefault(customer_id, []).append(channel)

    def _ensure_move(self, wanted: CampaignStatus) -> None:
        if wanted not in STATUS_TRANSITIONS[self.status]:
            raise InvalidTransition(self.status, wanted)

    def _ensure_started(self) -> None:
        if self.started_at is None:
            raise NotStarted(self.campaign_id, self.status)


def call_lists(targets: list[JsonDict], default_manager: str) -> dict[str, list[str]]:
    """Phone and branch targets grouped by their manager (or ``default_manager``), sorted."""
    lists: dict[str, list[str]] = defaultdict(list)
    for target in targets:
        if target["channel"] in CALL_LIST_CHANNELS:
            lists[target.get("manager_id") or default_manager].append(target["customer_id"])
    return {manager: sorted(ids) for manager, ids in lists.items()}
