"""The campaign test's data: three hundred customers of the simulated bank
(``crm_simulator.population``), re-keyed for one run, as customer and core-banking
records; what the campaign must select from them; and how the tests call the service (a
realm account's bearer token on every request)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Generator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import httpx
from crm_events import core_banking as cb
from crm_events import customer as cu
from crm_events.common import Channel, CorporateTier, Money
from crm_events.envelope import Envelope, KafkaRecord, to_kafka
from crm_events.registry import EventPayload
from crm_events.topics import Service, topic_for
from crm_simulator.population import SimulatedCustomer, population
from local_infra.tokens import RealmTokens

CHANNELS = ["sms", "email", "phone"]
OFFERED = "WM-GROWTH"
MIN_ASSETS = Decimal(5000)
BUDGET = Decimal("12000.00")
DAY = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
"""When the gateway says the messages went out; opens and replies follow on later days."""


class RealmAuth(httpx.Auth):
    """Every request as ``account`` of the genuine Keycloak's realm: a staff user
    (``rm-0001``) or, when ``service`` is true, a client's service account; the token is
    fetched again shortly before it expires (``RealmTokens``)."""

    def __init__(self, tokens: RealmTokens, account: str, *, service: bool = True) -> None:
        self.tokens, self.account, self.service = tokens, account, service

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response]:
        token = (self.tokens.service_token if self.service else self.tokens.staff_token)(
            self.account
        )
        request.headers["Authorization"] = f"Bearer {token}"
        yield request


# The bank's customers ----------------------------------------------------------------------


@dataclass
class Customer:
    """One simulated customer, re-keyed for this run, with what targeting looks at."""

    customer_id: str
    source: SimulatedCustomer
    branch_id: str
    status: str
    tier: str | None
    contactable: bool
    opted_out: set[str]
    merged_into: str | None
    savings: Decimal
    holds_offered: bool

    @property
    def band(self) -> str:
        return self.source.value_band.value

    def usable(self, channel: str) -> bool:
        return channel not in self.opted_out and self.contactable


def bank(suffix: str) -> list[Customer]:
    customers = []
    for i, c in enumerate(population(11, 300)):
        corporate = c.is_organisation and c.value_band.value == "medium" and i % 3 == 0
        customers.append(
            Customer(
                customer_id=f"C{suffix}{i:04d}",
                source=c,
                branch_id=f"{c.branch_id}-{suffix}",
                status="churned" if i % 19 == 0 else "dormant" if i % 10 == 3 else "active",
                tier=CorporateTier.EXIT.value
                if corporate
                else (c.corporate_tier.value if c.corporate_tier else None),
                contactable=i % 17 != 0,
                opted_out={
                    ch for ch, n in (("sms", 7), ("email", 11), ("phone", 13)) if i % n == 0
                },
                merged_into=f"C{suffix}{i - 1:04d}" if i % 29 == 1 else None,
                savings=Decimal((i * 7919) % 200_000),
                holds_offered=i % 6 == 0,
            )
        )
    return customers


@dataclass
class Streams:
    """Records of several producers, with contiguous versions per aggregate."""

    records: list[tuple[str, KafkaRecord]] = field(default_factory=list)
    versions: Counter[str] = field(default_factory=Counter)

    def add(
        self,
        service: Service,
        aggregate_id: str,
        payload: EventPayload,
        time: datetime | None = None,
    ) -> tuple[str, KafkaRecord]:
        self.versions[aggregate_id] += 1
        envelope = Envelope.new(
            payload,
            aggregate_id,
            self.versions[aggregate_id],
            actor="upstream-test",
            source=service.source,
            time=time,
        )
        record = (topic_for(payload.event_type).name, to_kafka(envelope))
        self.records.append(record)
        return record


def customer_events(customers: list[Customer], streams: Streams) -> None:
    crm, core = Service.CUSTOMER, Service.CORE_BANKING
    for c in customers:
        s = c.source
        streams.add(
            crm,
            c.customer_id,
            cu.CustomerRegistered(
                customer_type=s.customer_type,
                name=s.name,
                status=cu.CustomerStatus.ACTIVE,
                id_documents=list(s.id_documents),
                birth_date=s.birth_date,
                phone=s.phone if c.contactable else None,
                email=s.email if c.contactable else None,
                address=s.address if c.contactable else None,
                occupation=s.occupation,
                industry=s.industry,
                branch_id=c.branch_id,
                preferred_channel=s.preferred_channel,
            ),
        )
        tier = CorporateTier(c.tier) if c.tier else None
        streams.add(
            crm,
            c.customer_id,
            cu.CustomerSegmentChanged(
                value_band=s.value_band, corporate_tier=tier, reason="annual review"
            ),
        )
        streams.add(
            crm,
            c.customer_id,
            cu.RelationshipManagerAssigned(manager_id=s.manager_id, branch_id=c.branch_id),
        )
        if c.status != "active":
            streams.add(
                crm,
                c.customer_id,
                cu.CustomerStatusChanged(
                    previous_status=cu.CustomerStatus.ACTIVE,
                    status=cu.CustomerStatus(c.status),
                    reason="no activity",
                ),
            )
        for channel in sorted(c.opted_out):
            streams.add(
                crm,
                c.customer_id,
                cu.ConsentChanged(channel=Channel(channel), opted_in=False, reason="asked"),
            )
        if c.merged_into:
            streams.add(
                crm,
                c.customer_id,
                cu.CustomerMergedInto(survivor_customer_id=c.merged_into, reason="same person"),
            )
        accounts = [(f"SAV-{c.customer_id}", "SAV-1", cb.ProductType.SAVINGS, c.savings)]
        if c.holds_offered:
            accounts.append(
                (f"WM-{c.customer_id}", OFFERED, cb.ProductType.WEALTH_MANAGEMENT, Decimal(100_000))
            )
        for number, code, kind, balance in accounts:
            streams.add(
                core,
                number,
                cb.AccountOpened(
                    customer_id=c.customer_id,
                    product_code=code,
                    product_name=code,
                    product_type=kind,
                    currency="CNY",
                    branch_id=c.branch_id,
                    opened_on=date(2025, 6, 1),
                ),
            )
            streams.add(
                core,
                number,
                cb.HoldingBalanceChanged(
                    customer_id=c.customer_id,
                    product_type=kind,
                    previous_balance=cny(0),
                    balance=cny(balance),
                    changed_at=datetime(2025, 6, 1, tzinfo=UTC),
                ),
            )


def cny(amount: Decimal | int) -> Money:
    return Money(amount=Decimal(amount), currency="CNY")


# What the campaign should do, computed from the data ----------------------------------------


@dataclass(frozen=True)
class Expected:
    targets: dict[str, dict[str, Any]]
    excluded: dict[str, int]


def expected_selection(customers: list[Customer], left_out_branch: str) -> Expected:
    targets: dict[str, dict[str, Any]] = {}
    excluded: Counter[str] = Counter()
    merged = {c.merged_into: c for c in customers if c.merged_into}
    for c in sorted(customers, key=lambda c: c.customer_id):
        if c.band not in ("high", "medium") or c.branch_id == left_out_branch:
            continue
        duplicate = merged.get(c.customer_id)  # its accounts are the survivor's
        holds_offered = c.holds_offered or (duplicate is not None and duplicate.holds_offered)
        savings = c.savings + (duplicate.savings if duplicate else 0)
        if holds_offered or savings < MIN_ASSETS:
            continue
        if c.merged_into:
            excluded["duplicate"] += 1
        elif c.status == "churned":
            excluded["churned"] += 1
        elif c.tier in ("restricted", "exit"):
            excluded["restricted_tier"] += 1
        else:
            preferred = c.source.preferred_channel.value
            order = [preferred] * (preferred in CHANNELS) + [
                ch for ch in CHANNELS if ch != preferred
            ]
            usable = [ch for ch in order if c.usable(ch)]
            if usable:
                targets[c.customer_id] = {
                    "channel": usable[0],
                    "band": c.band,
                    "manager": c.source.manager_id,
                }
            elif c.opted_out & set(CHANNELS):
                excluded["opted_out"] += 1
            else:
                excluded["no_contact_details"] += 1
    return Expected(targets, dict(excluded))
