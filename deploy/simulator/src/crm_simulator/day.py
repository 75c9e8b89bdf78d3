"""A scripted day of relationship-manager work, through the services' HTTP APIs.

Deterministic from the seed: registers the simulated bank's customers (an existing one is
left alone, so a second run resumes), assigns their managers, segments them, records a
few consent answers, and merges a deliberate duplicate into its golden record. Each step
is a plain HTTP call a front end would make, with the manager as ``X-Actor``.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field

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
            ("PUT", "/manager", {
                "manager_id": customer.manager_id, "branch_id": customer.branch_id}),
            ("POST", "/status", {"status": "active", "reason": "accounts opened in core banking"}),
            ("POST", "/segment", {
                "value_band": customer.value_band.value,
                "corporate_tier": getattr(customer.corporate_tier, "value", None),
                "reason": "annual segmentation"}),
        ):  # fmt: skip
            report.count(await client.request(method, base + path, json=body, headers=who))
        if rng.random() < 0.1:
            channel = rng.choice(["sms", "email", "phone"])
            report.count(await client.put(
                f"{base}/consent/{channel}", json={"opted_in": False, "reason": "asked at branch"},
                headers=who))  # fmt: skip
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
        json={"duplicate_customer_id": duplicate["customer_id"], "reason": "same ID document",
              "merged_on": "2026-01-01"},
        headers=who,
    )  # fmt: skip


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


async def scripted_day(
    urls: Mapping[str, str], customers: list[SimulatedCustomer], seed: int
) -> dict[str, DayReport]:
    """Run each service's part of the day against the services given by name."""
    reports: dict[str, DayReport] = {}
    if "customer" in urls:
        async with httpx.AsyncClient(base_url=urls["customer"], timeout=30) as client:
            reports["customer"] = await customer_day(client, customers, seed)
    for name in sorted(set(urls) - {"customer"}):
        log.info("no scripted work for this service yet", service=name)
    return reports
