"""A scripted day of relationship-manager work, through the services' HTTP APIs.

Deterministic from the seed, with ids derived from it, so a second run finds its work
done (409) and resumes. Each step is a plain HTTP call a front end would make, with the
manager as ``X-Actor``:

- customer: register the simulated bank's customers, assign managers, segment them,
  record consent answers, merge a deliberate duplicate into its golden record;
- opportunity: open opportunities, move them through the funnel (won, lost), log
  complaints and resolve one;
- contact-log: log the day's calls and visits, plan follow-ups, complete some;
- campaign: a campaign over the high and medium value bands, started, with responses.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
import structlog

from crm_simulator.population import SimulatedCustomer

log = structlog.get_logger("crm_simulator.day")


@dataclass
class DayReport:
    calls: int = 0
    refused: dict[str, int] = field(default_factory=dict)

    def count(self, response: httpx.Response) -> None:
        self.calls += 1
        if response.status_code >= 400:
            kind = response.json().get("type", str(response.status_code))
            self.refused[kind] = self.refused.get(kind, 0) + 1


async def customer_day(
    client: httpx.AsyncClient, customers: list[SimulatedCustomer], seed: int
) -> DayReport:
    """Register, assign, segment and consent; then merge one duplicate."""
    rng = random.Random(seed)
    report = DayReport()
    for customer in customers:
        who = {"X-Actor": customer.manager_id}
        registered = await client.post("/customers", json=registration(customer), headers=who)
        report.count(registered)
        if registered.status_code == 409:
            continue  # a previous run registered it: resume
        base = f"/customers/{customer.customer_id}"
        for method, path, body in (
            (
                "PUT",
                "/manager",
                {"manager_id": customer.manager_id, "branch_id": customer.branch_id},
            ),
            ("POST", "/status", {"status": "active", "reason": "accounts opened in core banking"}),
            (
                "POST",
                "/segment",
                {
                    "value_band": customer.value_band.value,
                    "corporate_tier": getattr(customer.corporate_tier, "value", None),
                    "reason": "annual segmentation",
                },
            ),
        ):
            report.count(await client.request(method, base + path, json=body, headers=who))
        if rng.random() < 0.1:
            channel = rng.choice(["sms", "email", "phone"])
            report.count(
                await client.put(
                    f"{base}/consent/{channel}",
                    json={"opted_in": False, "reason": "asked at branch"},
                    headers=who,
                )
            )
    if customers:
        report.count(await _merge_a_duplicate(client, customers[0]))
    return report


async def _merge_a_duplicate(
    client: httpx.AsyncClient, original: SimulatedCustomer
) -> httpx.Response:
    """A branch keyed the same person in twice; the manager merges the copy."""
    duplicate = registration(original) | {"customer_id": original.customer_id + "-DUP"}
    who = {"X-Actor": original.manager_id}
    created = await client.post("/customers", json=duplicate, headers=who)
    if created.status_code == 409:
        return created
    return await client.post(
        f"/customers/{original.customer_id}/merge",
        json={
            "duplicate_customer_id": duplicate["customer_id"],
            "reason": "same ID document",
            "merged_on": "2026-01-01",
        },
        headers=who,
    )


def registration(customer: SimulatedCustomer) -> dict[str, object]:
    return {
        "customer_id": customer.customer_id,
        "customer_type": customer.customer_type.value,
        "name": customer.name.model_dump(mode="json"),
        "status": "prospect",
        "id_documents": [d.model_dump(mode="json") for d in customer.id_documents],
        "birth_date": customer.birth_date.isoformat() if customer.birth_date else None,
        "phone": customer.phone,
        "email": customer.email,
        "address": customer.address.model_dump(mode="json"),
        "occupation": customer.occupation,
        "industry": customer.industry,
        "branch_id": customer.branch_id,
        "preferred_channel": customer.preferred_channel.value,
    }


WORKED = 24
"""Customers whose manager works on them today (opportunities, contacts)."""
STAGES = ("proposal", "evaluation", "negotiation", "contract_signed", "closed_won")


async def opportunity_day(
    client: httpx.AsyncClient, customers: list[SimulatedCustomer], seed: int
) -> DayReport:
    """Open an opportunity per worked customer and move each some way down the funnel."""
    rng = random.Random(seed + 1)
    report = DayReport()
    today = datetime.now(UTC).date()
    for n, customer in enumerate(customers[:WORKED]):
        who = {"X-Actor": customer.manager_id}
        opportunity_id = f"OPP-{seed}-{customer.customer_id}"
        opened = await client.post(
            "/opportunities",
            headers=who,
            json={
                "opportunity_id": opportunity_id,
                "customer_id": customer.customer_id,
                "title": rng.choice(
                    ["Time deposit rollover", "Wealth plan", "Mortgage", "Payroll"]
                ),
                "products": [rng.choice(["TD-1Y", "WM-GROWTH", "MORTGAGE-30Y", "PAYROLL"])],
                "expected_value": {
                    "amount": f"{rng.randrange(10, 500) * 1000}.00",
                    "currency": "CNY",
                },
                "expected_close_date": (today + timedelta(days=rng.randrange(14, 120))).isoformat(),
                "manager_id": customer.manager_id,
                "branch_id": customer.branch_id,
                "source": "relationship_manager",
            },
        )
        report.count(opened)
        if opened.status_code == 409:
            continue
        moves: list[dict[str, str]] = [
            {"stage": stage} for stage in STAGES[: rng.randrange(len(STAGES) + 1)]
        ]
        if n % 7 == 3:
            moves.append({"stage": "closed_lost", "lost_reason": "rate beaten by a competitor"})
        for move in moves:
            path = f"/opportunities/{opportunity_id}/stage"
            report.count(await client.post(path, headers=who, json=move))
        if n % 8 == 0:
            report.count(
                await client.post(
                    "/needs",
                    headers=who,
                    json={
                        "need_id": f"CMPL-{seed}-{customer.customer_id}",
                        "customer_id": customer.customer_id,
                        "kind": "complaint",
                        "summary": "Card fee charged twice",
                        "content": "Annual fee debited twice",
                        "severity": "medium",
                        "urgency": "high",
                        "channel": "phone",
                        "started_at": datetime.now(UTC).isoformat(),
                        "sla_due_at": (datetime.now(UTC) + timedelta(hours=36)).isoformat(),
                    },
                )
            )
    return report


async def contact_day(
    client: httpx.AsyncClient, customers: list[SimulatedCustomer], seed: int
) -> DayReport:
    """Log a call or visit with each worked customer; plan and complete follow-ups."""
    rng = random.Random(seed + 2)
    report = DayReport()
    now = datetime.now(UTC)
    for n, customer in enumerate(customers[:WORKED]):
        who = {"X-Actor": customer.manager_id}
        started = now - timedelta(minutes=10 * (WORKED - n))
        logged = await client.post(
            "/contacts",
            headers=who,
            json={
                "contact_id": f"CT-{seed}-{customer.customer_id}",
                "customer_id": customer.customer_id,
                "category": rng.choice(["phone", "visit", "meeting"]),
                "summary": "Reviewed holdings and upcoming maturities",
                "called": True,
                "outcome": rng.choice(["reached", "interested", "follow_up_needed"]),
                "manager_id": customer.manager_id,
                "opportunity_id": f"OPP-{seed}-{customer.customer_id}",
                "started_at": started.isoformat(),
                "ended_at": (started + timedelta(minutes=8)).isoformat(),
            },
        )
        report.count(logged)
        if logged.status_code == 409:
            continue
        activity_id = f"ACT-{seed}-{customer.customer_id}"
        report.count(
            await client.post(
                "/activities",
                headers=who,
                json={
                    "activity_id": activity_id,
                    "customer_id": customer.customer_id,
                    "category": "follow_up",
                    "description": "Send the proposal",
                    "priority": "normal",
                    "started_at": now.isoformat(),
                    "due_at": (now + timedelta(days=n % 5)).isoformat(),
                    "assignee_id": customer.manager_id,
                },
            )
        )
        if n % 3 == 0:
            report.count(
                await client.post(
                    f"/activities/{activity_id}/complete",
                    headers=who,
                    json={"completed_at": now.isoformat(), "remarks": "sent by e-mail"},
                )
            )
    return report


async def campaign_day(
    client: httpx.AsyncClient, customers: list[SimulatedCustomer], seed: int
) -> DayReport:
    """A campaign over the high and medium bands, started, with responses reported."""
    report = DayReport()
    campaign_id = f"CMP-DAY-{seed}"
    owner = {"X-Actor": customers[0].manager_id}
    today = datetime.now(UTC).date()
    created = await client.post(
        "/campaigns",
        headers=owner,
        json={
            "campaign_id": campaign_id,
            "name": "Wealth growth week",
            "kind": "sms",
            "products": ["WM-GROWTH"],
            "channels": ["sms", "email", "phone"],
            "target_segments": [{"value_band": "high"}, {"value_band": "medium"}],
            "owner_manager_ids": [customers[0].manager_id],
            "budget": {"amount": "20000.00", "currency": "CNY"},
            "planned_start": today.isoformat(),
            "planned_end": (today + timedelta(days=30)).isoformat(),
        },
    )
    report.count(created)
    now = datetime.now(UTC)
    status = (await client.get(f"/campaigns/{campaign_id}")).json().get("status")
    if status == "draft":
        report.count(
            await client.post(
                f"/campaigns/{campaign_id}/schedule",
                headers=owner,
                json={
                    "starts_at": now.isoformat(),
                    "ends_at": (now + timedelta(days=30)).isoformat(),
                },
            )
        )
        status = "scheduled"
    if status == "scheduled":
        # The campaign service targets from its own view of the customers, which may still
        # be catching up with this morning's registrations: retry a start finding nobody.
        for _ in range(20):
            started = await client.post(f"/campaigns/{campaign_id}/start", headers=owner, json={})
            if started.status_code != 422:
                break
            await asyncio.sleep(3)
        report.count(started)
        if started.status_code >= 400:
            return report
    wanted = ("high", "medium")
    targets = [c.customer_id for c in customers if c.value_band.value in wanted][:WORKED]
    for n, customer_id in enumerate(targets):
        for stage in ("contacted", "responded")[: 1 + n % 2]:
            report.count(
                await client.post(
                    f"/campaigns/{campaign_id}/responses",
                    headers=owner,
                    json={
                        "customer_id": customer_id,
                        "channel": "phone",
                        "stage": stage,
                        "occurred_at": now.isoformat(),
                    },
                )
            )
    return report


DAYS = {
    "customer": customer_day,
    "opportunity": opportunity_day,
    "contact-log": contact_day,
    "campaign": campaign_day,
}
"""Each service's part of the day, in the order they run."""


async def scripted_day(
    urls: Mapping[str, str], customers: list[SimulatedCustomer], seed: int
) -> dict[str, DayReport]:
    """Run each service's part of the day against the services given by name."""
    reports: dict[str, DayReport] = {}
    for name, day in DAYS.items():
        if name not in urls:
            continue
        async with httpx.AsyncClient(base_url=urls[name], timeout=30) as client:
            reports[name] = await day(client, customers, seed)
    return reports
