"""Target lists: who a campaign reaches, on which channel, and who is left out and why.

:func:`select_targets` is pure: it evaluates the campaign's segments and criteria over
customer :class:`Profile` s, which ``audience.py`` reads from the service's own
projection of the customer and core-banking streams (never from the customer service).

- A customer **matches** when its value band (and, where the segment names one, its
  corporate tier) is one of the campaign's segments and every criterion given holds:
  status, branch, manager, products held, products not held, assets band. A product
  entry matches an open account by its product code or its product type.
- A matching customer is **excluded**, and counted by reason, when it was merged into
  another customer (``duplicate``), is churned and the criteria do not ask for churned
  customers (``churned``), is in a restricted or exit tier no segment names
  (``restricted_tier``), or can be reached on none of the campaign's channels: opted out
  of at least one of them (``opted_out``) or without the contact details any of them
  needs (``no_contact_details``).
- Consent is opt-out: only an explicit opt-out on a channel keeps it from being used.
- Channel: the customer's preferred channel when the campaign uses it and it is usable,
  otherwise the first usable of the campaign's channels, in the campaign's order.
- The target's segment is the most specific of the campaign's segments it matches.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from crm_events.campaign import ExclusionReason, Segment
from crm_events.common import Channel, CorporateTier, CurrencyCode, DecimalString, Id
from crm_events.core_banking import ASSET_TYPES
from crm_events.customer import CustomerStatus
from pydantic import BaseModel, ConfigDict, Field, model_validator

CONTACT_NEEDED: dict[Channel, str] = {
    Channel.SMS: "phone",
    Channel.PHONE: "phone",
    Channel.EMAIL: "email",
    Channel.MAIL: "address",
}
"""The contact detail a channel needs; app, branch and event need none."""

RESTRICTED_TIERS = frozenset({CorporateTier.RESTRICTED, CorporateTier.EXIT})


class AssetBand(BaseModel):
    """Assets under management in one currency: ``min`` <= total < ``max``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    currency: CurrencyCode = "CNY"
    min: DecimalString | None = None
    max: DecimalString | None = None

    @model_validator(mode="after")
    def _ordered(self) -> AssetBand:
        if self.min is not None and self.max is not None and self.max <= self.min:
            raise ValueError("max must be above min")
        return self

    def contains(self, total: Decimal) -> bool:
        return (self.min is None or total >= self.min) and (self.max is None or total < self.max)


class Criteria(BaseModel):
    """What narrows a campaign's segments; an empty list means no condition."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={
            "examples": [
                {
                    "statuses": ["active"],
                    "branch_ids": ["BR-001"],
                    "products_not_held": ["WM-GROWTH"],
                    "assets": {"currency": "CNY", "min": "50000"},
                }
            ]
        },
    )
    statuses: list[CustomerStatus] = []
    branch_ids: list[Id] = []
    manager_ids: list[Id] = []
    products_held: list[Id] = Field(
        default=[], description="Held, every one: the product code or type of an open account"
    )
    products_not_held: list[Id] = Field(default=[], description="Held, none of them")
    assets: AssetBand | None = Field(default=None, description="Assets under management band")


@dataclass(frozen=True)
class Holding:
    """One account of a customer as core banking reported it."""

    product_code: str | None
    product_type: str | None
    open: bool
    balance: Decimal | None = None
    currency: str | None = None


@dataclass(frozen=True)
class Profile:
    """What targeting knows of one customer."""

    customer_id: str
    status: str | None
    value_band: str | None
    corporate_tier: str | None
    branch_id: str | None
    manager_id: str | None
    preferred_channel: str | None = None
    contacts: frozenset[str] = frozenset()
    """The contact details on record: ``phone``, ``email``, ``address``."""
    consents: Mapping[str, bool] = field(default_factory=dict)
    merged_into: str | None = None
    holdings: tuple[Holding, ...] = ()


@dataclass(frozen=True)
class Selection:
    """A target list (``Target`` s of the contract, as JSON) and the exclusions by reason."""

    targets: list[dict[str, Any]]
    excluded: dict[str, int]


def select_targets(
    segments: Sequence[Segment],
    criteria: Criteria,
    channels: Sequence[Channel],
    profiles: Iterable[Profile],
) -> Selection:
    """The target list of a campaign over ``profiles``, in customer id order."""
    targets: list[dict[str, Any]] = []
    excluded: Counter[str] = Counter()
    for profile in sorted(profiles, key=lambda p: p.customer_id):
        segment = matching_segment(segments, profile)
        if segment is None or not matches(criteria, profile):
            continue
        chosen = standing_exclusion(criteria, segment, profile) or choose_channel(channels, profile)
        if isinstance(chosen, ExclusionReason):
            excluded[chosen.value] += 1
            continue
        targets.append(
            {
                "customer_id": profile.customer_id,
                "channel": chosen.value,
                "segment": segment.model_dump(mode="json"),
                "manager_id": profile.manager_id,
            }
        )
    return Selection(targets, dict(sorted(excluded.items())))


def matching_segment(segments: Sequence[Segment], profile: Profile) -> Segment | None:
    """The most specific segment the customer is in (one naming its tier first)."""
    candidates = [
        s
        for s in segments
        if s.value_band == profile.value_band
        and (s.corporate_tier is None or s.corporate_tier == profile.corporate_tier)
    ]
    return min(candidates, key=lambda s: s.corporate_tier is None, default=None)


def matches(criteria: Criteria, profile: Profile) -> bool:
    """Whether every criterion given holds for the customer."""
    if criteria.statuses and profile.status not in criteria.statuses:
        return False
    if criteria.branch_ids and profile.branch_id not in criteria.branch_ids:
        return False
    if criteria.manager_ids and profile.manager_id not in criteria.manager_ids:
        return False
    if not all(holds(profile, product) for product in criteria.products_held):
        return False
    if any(holds(profile, product) for product in criteria.products_not_held):
        return False
    return criteria.assets is None or criteria.assets.contains(
        assets(profile, criteria.assets.currency)
    )


def holds(profile: Profile, product: str) -> bool:
    return any(h.open and product in (h.product_code, h.product_type) for h in profile.holdings)


def assets(profile: Profile, currency: str) -> Decimal:
    """Assets under management in ``currency``: balances of open asset accounts."""
    return sum(
        (
            h.balance
            for h in profile.holdings
            if h.open
            and h.balance is not None
            and h.currency == currency
            and h.product_type in ASSET_TYPES
        ),
        Decimal(0),
    )


def standing_exclusion(
    criteria: Criteria, segment: Segment, profile: Profile
) -> ExclusionReason | None:
    """Why a matching customer is left off whatever the channel, if it is."""
    if profile.merged_into is not None:
        return ExclusionReason.DUPLICATE
    if profile.status == CustomerStatus.CHURNED and CustomerStatus.CHURNED not in criteria.statuses:
        return ExclusionReason.CHURNED
    tier = profile.corporate_tier
    if tier in RESTRICTED_TIERS and segment.corporate_tier != tier:
        return ExclusionReason.RESTRICTED_TIER
    return None


def choose_channel(channels: Sequence[Channel], profile: Profile) -> Channel | ExclusionReason:
    """The channel to reach the customer on, or why there is none."""
    ordered = sorted(channels, key=lambda c: c.value != profile.preferred_channel)
    opted_out = False
    for channel in ordered:
        if profile.consents.get(channel.value) is False:
            opted_out = True
            continue
        needed = CONTACT_NEEDED.get(channel)
        if needed is None or needed in profile.contacts:
            return channel
    return ExclusionReason.OPTED_OUT if opted_out else ExclusionReason.NO_CONTACT_DETAILS
