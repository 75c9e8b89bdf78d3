"""A scripted day of the bank's work, through the services' HTTP APIs.

Deterministic from the seed, with ids derived from it, so a second run finds its work
done (409) and resumes. Each step is a plain HTTP call a front end or an upstream system
would make, with the bearer token of whoever does it (:mod:`crm_simulator.logins`):

- customer: core banking registers the simulated bank's customers and activates them when
  their accounts open; each branch manager assigns their branch's customers to its
  relationship managers and merges a deliberate duplicate into its golden record; each
  relationship manager segments their customers, records consent answers, records some of
  core banking's leavers as lost (churned) and puts the
  companies of a corporate group in it (the groups whose companies guarantee each other's
  credit facilities: :func:`crm_simulator.credit_system.corporate_groups`);
- opportunity: relationship managers open opportunities for their customers, move them
  through the funnel (won, lost), log complaints (resolving some), and capture leads from
  several sources (converting, qualifying or disqualifying them);
- contact-log: they log the day's calls and visits, plan follow-ups, complete some; each
  branch's managers meet (a team meeting with participants, a visit booked over it);
- campaign: a branch manager runs a campaign over the branch's high and medium value
  bands; the channel gateway reports the customers' responses.

The services learn the organisation and the customers from Kafka, a little after the
calls that created them: a call refused as if its caller or customer were unknown (403,
404) is tried again while the service catches up (:class:`Api`).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import httpx
from crm_events.topics import Service

from crm_simulator.bank_api import Api, DayReport
from crm_simulator.core_bank import LEAVERS_EVERY
from crm_simulator.credit_system import corporate_groups
from crm_simulator.logins import Logins, Tokens
from crm_simulator.organisation import manager_of_branch
from crm_simulator.population import SimulatedCustomer

CORE_BANKING = Service.CORE_BANKING.value
CHANNEL_GATEWAY = Service.CHANNEL_GATEWAY.value
"""The upstream systems' clients in the identity provider (their service accounts)."""


async def customer_day(api: Api, customers: list[SimulatedCustomer], seed: int) -> None:
    """Registered and activated by core banking, assigned by the branch manager, segmented
    (and some consents recorded, and a company put in its corporate group) by the
    relationship manager; some leavers recorded lost; then one duplicate merged."""
    rng = random.Random(seed)
    groups = corporate_groups(customers)
    for n, customer in enumerate(customers):
        registered = await api.as_system(CORE_BANKING, "POST", "/customers", registration(customer))
        if registered.status_code == 409:
            continue  # a previous run registered it: resume
        base = f"/customers/{customer.customer_id}"
        assignment = {"manager_id": customer.manager_id, "branch_id": customer.branch_id}
        await api.as_staff(
            manager_of_branch(customer.branch_id), "PUT", f"{base}/manager", assignment
        )
        activation = {"status": "active", "reason": "accounts opened in core banking"}
        await api.as_system(CORE_BANKING, "POST", f"{base}/status", activation)
        segment = {
            "value_band": customer.value_band.value,
            "corporate_tier": getattr(customer.corporate_tier, "value", None),
            "reason": "annual segmentation",
        }
        await api.as_staff(customer.manager_id, "POST", f"{base}/segment", segment)
        if rng.random() < 0.1:
            channel = rng.choice(["sms", "email", "phone"])
            consent = {"opted_in": False, "reason": "asked at branch"}
            await api.as_staff(customer.manager_id, "PUT", f"{base}/consent/{channel}", consent)
        if customer.customer_id in groups:
            group_id, place = groups[customer.customer_id]
            membership = {
                "group_id": group_id,
                "group_type": "corporate_group",
                "group_name": f"Corporate group {group_id}",
                "role": "parent_company" if place == 0 else "subsidiary",
                "joined_on": "2026-01-01",
            }
            await api.as_staff(customer.manager_id, "POST", f"{base}/groups", membership)
        if recorded_lost(n):
            lost = {"status": "churned", "reason": "moved to another bank"}
            await api.as_staff(customer.manager_id, "POST", f"{base}/status", lost)
    if customers:
        await _merge_a_duplicate(api, customers[0])


LOST_EVERY = 3 * LEAVERS_EVERY
"""One of core banking's leavers in three, beyond the worked customers, is recorded lost
(churned) by their manager: the league table's customers lost; the others stay for the
churn worklist and the dormancy rule."""


def recorded_lost(n: int) -> bool:
    """Whether the day records the ``n``-th customer lost (churned)."""
    return n >= WORKED and n % LOST_EVERY == LOST_EVERY - 1


async def _merge_a_duplicate(api: Api, original: SimulatedCustomer) -> None:
    """A branch keyed the same person in twice; its branch manager merges the copy."""
    duplicate = registration(original) | {"customer_id": original.customer_id + "-DUP"}
    created = await api.as_system(CORE_BANKING, "POST", "/customers", duplicate)
    if created.status_code == 409:
        return
    merge = {
        "duplicate_customer_id": duplicate["customer_id"],
        "reason": "same ID document",
        "merged_on": "2026-01-01",
    }
    branch_manager = manager_of_branch(original.branch_id)
    await api.as_staff(branch_manager, "POST", f"/customers/{original.customer_id}/merge", merge)


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


async def opportunity_day(api: Api, customers: list[SimulatedCustomer], seed: int) -> None:
    """Open an opportunity per worked customer and move each some way down the funnel."""
    rng = random.Random(seed + 1)
    today = datetime.now(UTC).date()
    for n, customer in enumerate(customers[:WORKED]):
        manager = customer.manager_id
        opportunity_id = f"OPP-{seed}-{customer.customer_id}"
        opportunity = {
            "opportunity_id": opportunity_id,
            "customer_id": customer.customer_id,
            "title": rng.choice(["Time deposit rollover", "Wealth plan", "Mortgage", "Payroll"]),
            "products": [rng.choice(["TD-1Y", "WM-GROWTH", "MORTGAGE-30Y", "PAYROLL"])],
            "expected_value": {"amount": f"{rng.randrange(10, 500) * 1000}.00", "currency": "CNY"},
            "expected_close_date": (today + timedelta(days=rng.randrange(14, 120))).isoformat(),
            "manager_id": manager,
            "branch_id": customer.branch_id,
            "source": "relationship_manager",
        }
        opened = await api.as_staff(manager, "POST", "/opportunities", opportunity)
        if opened.status_code == 409:
            continue
        moves: list[dict[str, str]] = [
            {"stage": stage} for stage in STAGES[: rng.randrange(len(STAGES) + 1)]
        ]
        if n % 7 == 3:
            moves.append({"stage": "closed_lost", "lost_reason": "rate beaten by a competitor"})
        for move in moves:
            await api.as_staff(manager, "POST", f"/opportunities/{opportunity_id}/stage", move)
        if n % 8 == 0:
            complaint = {
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
            }
            await api.as_staff(manager, "POST", "/needs", complaint)
            if n % 16 == 0:  # closed within its SLA: the league table counts it
                resolution = {"resolution": "Duplicate fee refunded"}
                await api.as_staff(
                    manager, "POST", f"/needs/{complaint['need_id']}/resolve", resolution
                )
    await _leads(api, customers[:WORKED], seed)


LEAD_SOURCES = ("referral", "walk_in", "website", "call_center", "event")


async def _leads(api: Api, customers: list[SimulatedCustomer], seed: int) -> None:
    """Each customer's manager captures a lead from one of the sources; a third of them are
    converted into opportunities, a third qualified and left open, a third disqualified,
    so the lead sources' conversion has every outcome."""
    today = datetime.now(UTC).date()
    for n, customer in enumerate(customers):
        manager = customer.manager_id
        lead_id = f"LEAD-{seed}-{customer.customer_id}"
        lead = {
            "lead_id": lead_id,
            "customer_id": customer.customer_id,
            "contact_name": customer.name.full_name,
            "source": LEAD_SOURCES[n % len(LEAD_SOURCES)],
            "products_of_interest": ["WM-GROWTH"],
            "branch_id": customer.branch_id,
            "manager_id": manager,
        }
        if (await api.as_staff(manager, "POST", "/leads", lead)).status_code == 409:
            continue
        if n % 3 == 2:
            disqualified = {"reason": "already served by another bank"}
            await api.as_staff(manager, "POST", f"/leads/{lead_id}/disqualify", disqualified)
            continue
        await api.as_staff(manager, "POST", f"/leads/{lead_id}/qualify", {})
        if n % 3 == 0:
            deal = {
                "opportunity_id": f"OPP-{lead_id}",
                "title": "Wealth plan",
                "products": ["WM-GROWTH"],
                "expected_value": {"amount": f"{(n + 1) * 10_000}.00", "currency": "CNY"},
                "expected_close_date": (today + timedelta(days=30 + n)).isoformat(),
            }
            await api.as_staff(manager, "POST", f"/leads/{lead_id}/convert", deal)


async def contact_day(api: Api, customers: list[SimulatedCustomer], seed: int) -> None:
    """Log a call or visit with each worked customer; plan and complete follow-ups."""
    rng = random.Random(seed + 2)
    now = datetime.now(UTC)
    for n, customer in enumerate(customers[:WORKED]):
        manager = customer.manager_id
        started = now - timedelta(minutes=10 * (WORKED - n))
        contact = {
            "contact_id": f"CT-{seed}-{customer.customer_id}",
            "customer_id": customer.customer_id,
            "category": rng.choice(["phone", "visit", "meeting"]),
            "summary": "Reviewed holdings and upcoming maturities",
            "called": True,
            "outcome": rng.choice(["reached", "interested", "follow_up_needed"]),
            "manager_id": manager,
            "opportunity_id": f"OPP-{seed}-{customer.customer_id}",
            "started_at": started.isoformat(),
            "ended_at": (started + timedelta(minutes=8)).isoformat(),
        }
        logged = await api.as_staff(manager, "POST", "/contacts", contact)
        if logged.status_code == 409:
            continue
        activity_id = f"ACT-{seed}-{customer.customer_id}"
        follow_up = {
            "activity_id": activity_id,
            "customer_id": customer.customer_id,
            "category": "follow_up",
            "description": "Send the proposal",
            "priority": "normal",
            "started_at": now.isoformat(),
            "due_at": (now + timedelta(days=n % 5)).isoformat(),
            "assignee_id": manager,
        }
        await api.as_staff(manager, "POST", "/activities", follow_up)
        if n % 3 == 0:
            completion = {"completed_at": now.isoformat(), "remarks": "sent by e-mail"}
            await api.as_staff(manager, "POST", f"/activities/{activity_id}/complete", completion)
    await team_calendar(api, customers[:WORKED], seed)


async def team_calendar(api: Api, customers: list[SimulatedCustomer], seed: int) -> None:
    """Each branch's managers of worked customers meet tomorrow at 10:00 Beijing time (the
    first one hosts, the others take part); one of them books a customer visit at 10:30,
    over the meeting, knowingly (``confirm_overlap``), and another right after it."""
    meeting_at = (datetime.now(UTC) + timedelta(days=1)).replace(
        hour=2, minute=0, second=0, microsecond=0
    )
    hour = timedelta(hours=1)
    by_branch: dict[str, list[SimulatedCustomer]] = {}
    for customer in customers:
        by_branch.setdefault(customer.branch_id, []).append(customer)
    for branch_id, worked in sorted(by_branch.items()):
        host, *others = dict.fromkeys(c.manager_id for c in worked)
        meeting = {
            "activity_id": f"ACT-{seed}-MEET-{branch_id}",
            "category": "meeting",
            "description": "Weekly pipeline review",
            "started_at": meeting_at.isoformat(),
            "ended_at": (meeting_at + hour).isoformat(),
            "due_at": (meeting_at + hour).isoformat(),
            "assignee_id": host,
            "participant_ids": others,
        }
        await api.as_staff(host, "POST", "/activities", meeting)
        for n, customer in enumerate(worked[:2]):
            start = meeting_at + hour / 2 if n == 0 else meeting_at + hour * 2
            visit = {
                "activity_id": f"ACT-{seed}-VISIT-{customer.customer_id}",
                "customer_id": customer.customer_id,
                "category": "visit",
                "description": "Wealth plan review at the customer's office",
                "started_at": start.isoformat(),
                "ended_at": (start + hour).isoformat(),
                "due_at": (start + hour).isoformat(),
                "assignee_id": customer.manager_id,
                "confirm_overlap": True,
            }
            await api.as_staff(customer.manager_id, "POST", "/activities", visit)


async def campaign_day(api: Api, customers: list[SimulatedCustomer], seed: int) -> None:
    """A campaign over one branch's high and medium bands, managed by the branch's manager
    (relationship managers do not manage campaigns) for one of its relationship managers;
    the channel gateway reports the responses."""
    worthy = [
        c
        for n, c in enumerate(customers)
        if c.value_band.value in ("high", "medium") and not recorded_lost(n)
    ]
    if not worthy:
        return
    campaign_id = f"CMP-DAY-{seed}"
    branch_id = worthy[0].branch_id
    owner = manager_of_branch(branch_id)
    today = datetime.now(UTC).date()
    draft = {
        "campaign_id": campaign_id,
        "name": "Wealth growth week",
        "kind": "sms",
        "products": ["WM-GROWTH"],
        "channels": ["sms", "email", "phone"],
        "target_segments": [{"value_band": "high"}, {"value_band": "medium"}],
        "criteria": {"branch_ids": [branch_id]},
        "owner_manager_ids": [worthy[0].manager_id],
        "budget": {"amount": "20000.00", "currency": "CNY"},
        "planned_start": today.isoformat(),
        "planned_end": (today + timedelta(days=30)).isoformat(),
    }
    await api.as_staff(owner, "POST", "/campaigns", draft)
    now = datetime.now(UTC)
    status = (await api.as_staff(owner, "GET", f"/campaigns/{campaign_id}")).json().get("status")
    if status == "draft":
        window = {"starts_at": now.isoformat(), "ends_at": (now + timedelta(days=30)).isoformat()}
        await api.as_staff(owner, "POST", f"/campaigns/{campaign_id}/schedule", window)
        status = "scheduled"
    if status == "scheduled" and not await _start(api, owner, campaign_id):
        return
    targets = [c.customer_id for c in worthy if c.branch_id == branch_id][:WORKED]
    for n, customer_id in enumerate(targets):
        for stage in ("contacted", "responded")[: 1 + n % 2]:
            response = {
                "customer_id": customer_id,
                "channel": "sms",
                "stage": stage,
                "occurred_at": now.isoformat(),
            }
            path = f"/campaigns/{campaign_id}/responses"
            await api.as_system(CHANNEL_GATEWAY, "POST", path, response)


async def _start(api: Api, owner: str, campaign_id: str) -> bool:
    """Start the campaign; whether it started. The campaign service targets from its own
    view of the customers, which may still be catching up with this morning's
    registrations: a start finding nobody (422) is tried again."""
    for _ in range(20):
        started = await api.as_staff(owner, "POST", f"/campaigns/{campaign_id}/start", {})
        if started.status_code != 422:
            break
        await asyncio.sleep(3)
    return started.status_code < 400


DAYS = {
    "customer": customer_day,
    "opportunity": opportunity_day,
    "contact-log": contact_day,
    "campaign": campaign_day,
}
"""Each service's part of the day, in the order they run."""


async def scripted_day(
    urls: Mapping[str, str], customers: list[SimulatedCustomer], seed: int, logins: Logins
) -> dict[str, DayReport]:
    """Run each service's part of the day against the services given by name, everyone
    logged in through ``logins``."""
    reports: dict[str, DayReport] = {}
    async with httpx.AsyncClient(timeout=30) as identity_provider:
        tokens = Tokens(logins, identity_provider)
        for name, day in DAYS.items():
            if name not in urls:
                continue
            async with httpx.AsyncClient(base_url=urls[name], timeout=30) as client:
                api = Api(client, tokens)
                await day(api, customers, seed)
                reports[name] = api.report
    return reports
