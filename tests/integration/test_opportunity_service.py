"""The opportunity service end to end on the genuine Kafka, MongoDB and SQLite store.

The customer and campaign services are stood in for by plain producers writing their
events by hand; a relationship manager's day goes through the HTTP API; the pipeline,
the lead queue and the SLA board are read over HTTP and checked against figures this
test computes itself. Waiting is on MongoDB change streams (read-your-writes), never on
sleeps. The day's calls are the service's own account's (a token of the genuine
Keycloak): who reaches what is ``test_opportunity_access.py``'s subject.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from crm_backbone.readmodel import wait_until_applied
from crm_events.topics import CAMPAIGN_EVENTS, CUSTOMER_EVENTS
from crm_opportunity.api import create_app
from crm_opportunity.application import campaign_lead_id
from crm_opportunity.bootstrap import OpportunityService, OpportunitySettings, bootstrap
from local_infra.harness import cloudevent, produce_plain, serving
from local_infra.pytest_plugin import Servers
from local_infra.tokens import RealmTokens
from pymongo import AsyncMongoClient

from tests.integration.conftest import SettingsFor

pytestmark = pytest.mark.integration

SOURCE = "/crm/opportunity"
PROBABILITY = {
    "lead": 10,
    "opportunity_created": 20,
    "proposal": 40,
    "evaluation": 60,
    "negotiation": 80,
    "contract_signed": 95,
    "implementation": 100,
    "closed_won": 100,
    "closed_lost": 0,
}


@pytest.fixture
async def service(
    crm_servers: Servers,
    realm_tokens: RealmTokens,
    settings_for: SettingsFor,
) -> AsyncIterator[tuple[OpportunityService, httpx.AsyncClient]]:
    """The service on topics of the test's own: it reads no other test's records."""
    settings = settings_for(OpportunitySettings)
    opportunity_service = bootstrap(settings)
    headers = realm_tokens.service("crm-opportunity")
    async with (
        serving(create_app(opportunity_service)) as url,
        httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as client,
    ):
        yield opportunity_service, client
    cleaner: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(crm_servers.mongo_uri)
    await cleaner.drop_database(settings.mongo_database("opportunity"))
    await cleaner.close()


@dataclass
class Book:
    """What the manager did to each opportunity, as the test remembers it."""

    deals: dict[str, dict[str, Any]]

    def open(self, opportunity_id: str, **deal: Any) -> None:
        self.deals[opportunity_id] = deal | {"stage": "opportunity_created", "override": None}

    def pipeline(self, **only: str) -> dict[str, Any]:
        """Open count, value and weighted value per currency, and stages reached."""
        count = 0
        value: dict[str, Decimal] = defaultdict(Decimal)
        weighted: dict[str, Decimal] = defaultdict(Decimal)
        reached: dict[str, int] = defaultdict(int)
        for deal in self.deals.values():
            if any(deal[key] != wanted for key, wanted in only.items()):
                continue
            for stage in deal["reached"]:
                reached[stage] += 1
            if deal["stage"] in ("closed_won", "closed_lost"):
                continue
            probability = deal["override"] or PROBABILITY[deal["stage"]]
            amount = Decimal(deal["amount"])
            count += 1
            value[deal["currency"]] += amount
            weighted[deal["currency"]] += amount * probability / 100
        return {
            "count": count,
            "value": dict(value),
            "weighted": dict(weighted),
            "reached": reached,
        }


async def ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code in (200, 201), response.text
    body: dict[str, Any] = response.json()
    return body


async def move(
    client: httpx.AsyncClient, book: Book, opportunity_id: str, *stages: str, **extra: Any
) -> int:
    """Move an opportunity through ``stages`` over HTTP, and remember it in ``book``; the
    version after the last move."""
    version = 0
    for stage in stages:
        url = f"/opportunities/{opportunity_id}/stage"
        body = await ok(await client.post(url, json={"stage": stage, **extra}))
        version = body["version"]
        deal_ = book.deals[opportunity_id]
        deal_["stage"], deal_["override"] = stage, None
        funnel = list(PROBABILITY)[:8]
        if stage in funnel:
            deal_["reached"] = funnel[: funnel.index(stage) + 1]
        else:
            deal_["reached"].append(stage)
    return version


def decimals(amounts: dict[str, str]) -> dict[str, Decimal]:
    return {currency: Decimal(amount) for currency, amount in amounts.items()}


async def test_a_managers_day_ends_with_the_expected_pipeline(
    service: tuple[OpportunityService, httpx.AsyncClient],
    crm_servers: Servers,
    unique_name: Callable[[str], str],
) -> None:
    opportunity_service, client = service
    positions = opportunity_service.queries.positions
    topics = opportunity_service.settings.topic_names()
    customer_events, campaign_events = topics(CUSTOMER_EVENTS.name), topics(CAMPAIGN_EVENTS.name)
    suffix = unique_name("")[-8:]
    rm, cover, branch = f"RM-{suffix}", f"RM2-{suffix}", f"BR-{suffix}"
    c1, c2, c3, campaign = (f"{p}-{suffix}" for p in ("C1", "C2", "C3", "CMP"))
    now = datetime.now(UTC)

    def registered(customer_id: str, name: str) -> Any:
        return cloudevent(
            "crm.customer.registered",
            customer_id,
            1,
            {
                "customer_type": "individual",
                "name": {"full_name": name},
                "status": "active",
                "branch_id": branch,
            },
            source="/crm/customer",
            schema_version=2,
        )

    def responded(version: int, customer_id: str) -> Any:
        return cloudevent(
            "crm.campaign.response_recorded",
            campaign,
            version,
            {
                "customer_id": customer_id,
                "channel": "sms",
                "stage": "responded",
                "occurred_at": now.isoformat(),
            },
            source="/crm/campaign",
        )

    await produce_plain(
        crm_servers.kafka_bootstrap,
        [
            (customer_events, registered(c1, "Wang Fang")),
            (customer_events, registered(c2, "Li Lei")),
            (
                campaign_events,
                cloudevent(
                    "crm.campaign.created",
                    campaign,
                    1,
                    {
                        "name": "Wealth week",
                        "kind": "sms",
                        "products": ["WM-1"],
                        "channels": ["sms"],
                        "target_segments": [{"value_band": "high"}],
                        "owner_manager_ids": [rm],
                        "budget": {"amount": "5000", "currency": "CNY"},
                        "planned_start": "2026-11-01",
                        "planned_end": "2026-11-30",
                    },
                    source="/crm/campaign",
                ),
            ),
            # C3 is not registered yet: its response waits (parked) for the registration.
            (campaign_events, responded(2, c3)),
            (campaign_events, responded(3, c1)),
        ],
    )

    # The campaign's lead for C1 arrives through the policy.
    campaign_lead = campaign_lead_id(campaign, c1)
    assert await wait_until_applied(positions, SOURCE, campaign_lead, 1, within=60)
    lead = (await client.get(f"/leads/{campaign_lead}")).json()
    assert (lead["source"], lead["customer_id"], lead["branch_id"]) == ("campaign", c1, branch)
    assert (lead["contact_name"], lead["products_of_interest"]) == ("Wang Fang", ["WM-1"])

    book = Book({})
    close = (now + timedelta(days=60)).date().isoformat()

    def deal(title: str, product: str, amount: str, currency: str = "CNY") -> dict[str, Any]:
        return {
            "title": title,
            "products": [product],
            "expected_close_date": close,
            "expected_value": {"amount": amount, "currency": currency},
        }

    def remember(opportunity_id: str, product: str, amount: str, currency: str = "CNY") -> None:
        book.open(
            opportunity_id,
            manager=rm,
            branch=branch,
            product=product,
            amount=amount,
            currency=currency,
            reached=["lead", "opportunity_created"],
        )

    # 09:00 the campaign lead: qualified, taken, converted into a wealth opportunity.
    await ok(await client.post(f"/leads/{campaign_lead}/qualify", json={"notes": "keen"}))
    await ok(await client.put(f"/leads/{campaign_lead}/manager", json={"manager_id": rm}))
    converted = await ok(
        await client.post(
            f"/leads/{campaign_lead}/convert",
            json={"opportunity_id": f"OPP-A-{suffix}", "expected_version": 3}
            | deal("Wealth plan", "WM-1", "500000.00"),
        )
    )
    opp_a = converted["opportunity_id"]
    remember(opp_a, "WM-1", "500000.00")

    # 10:00 a walk-in asks about a mortgage; another prospect is recorded and left open.
    walk_in = await ok(
        await client.post(
            "/leads",
            json={
                "contact_name": "Li Lei",
                "phone": "+86 139 0000 0002",
                "source": "walk_in",
                "branch_id": branch,
                "products_of_interest": ["ML-30"],
            },
        )
    )
    await ok(await client.post(f"/leads/{walk_in['id']}/qualify", json={"customer_id": c2}))
    await ok(await client.put(f"/leads/{walk_in['id']}/manager", json={"manager_id": rm}))
    opp_b = (
        await ok(
            await client.post(
                f"/leads/{walk_in['id']}/convert", json=deal("Mortgage", "ML-30", "2000000")
            )
        )
    )["opportunity_id"]
    remember(opp_b, "ML-30", "2000000")
    waiting = await ok(
        await client.post(
            "/leads",
            json={
                "contact_name": "Zhou Xun",
                "email": "zhou@example.com",
                "source": "referral",
                "branch_id": branch,
            },
        )
    )

    # 11:00 opportunities opened directly.
    for key, product, amount, currency in [
        ("C", "FX-1", "30000.50", "USD"),
        ("D", "INS-1", "100000", "CNY"),
    ]:
        body = await ok(
            await client.post(
                "/opportunities",
                json={
                    "opportunity_id": f"OPP-{key}-{suffix}",
                    "customer_id": c2,
                    "manager_id": rm,
                    "branch_id": branch,
                    "source": "relationship_manager",
                }
                | deal(f"Deal {key}", product, amount, currency),
            )
        )
        remember(body["id"], product, amount, currency)
    opp_c, opp_d = f"OPP-C-{suffix}", f"OPP-D-{suffix}"

    # The afternoon: the funnel moves.
    await move(client, book, opp_a, "proposal", "negotiation")
    overridden = await ok(
        await client.put(
            f"/opportunities/{opp_a}/probability",
            json={"probability": 70, "reason": "competitor offers a better rate"},
        )
    )
    book.deals[opp_a]["override"] = 70
    await move(client, book, opp_b, "proposal", "evaluation")
    await ok(
        await client.put(
            f"/opportunities/{opp_b}/expected-value",
            json={
                "expected_value": {"amount": "1800000", "currency": "CNY"},
                "reason": "smaller flat",
            },
        )
    )
    book.deals[opp_b]["amount"] = "1800000"
    reassigned = await ok(
        await client.put(f"/opportunities/{opp_b}/manager", json={"manager_id": cover})
    )
    book.deals[opp_b]["manager"] = cover
    won = await move(client, book, opp_c, "contract_signed", "closed_won")
    lost = await move(client, book, opp_d, "closed_lost", lost_reason="bought from an insurer")
    stale = await client.post(
        f"/opportunities/{opp_a}/stage", json={"stage": "contract_signed", "expected_version": 1}
    )
    assert stale.status_code == 409

    # Complaints: one due soon, one breached, one resolved (off the board).
    def complaint(summary: str, started: timedelta, due: timedelta) -> dict[str, Any]:
        return {
            "customer_id": c1,
            "kind": "complaint",
            "summary": summary,
            "content": "...",
            "severity": "high",
            "urgency": "high",
            "channel": "phone",
            "started_at": (now - started).isoformat(),
            "sla_due_at": (now + due).isoformat(),
        }

    soon = await ok(
        await client.post(
            "/needs", json=complaint("Card blocked", timedelta(hours=1), timedelta(hours=2))
        )
    )
    late = await ok(
        await client.post(
            "/needs", json=complaint("Fee charged twice", timedelta(hours=30), -timedelta(hours=6))
        )
    )
    done = await ok(
        await client.post(
            "/needs", json=complaint("Wrong address", timedelta(hours=2), timedelta(days=2))
        )
    )
    await ok(await client.put(f"/needs/{done['id']}/owner", json={"manager_id": rm}))
    await ok(await client.post(f"/needs/{done['id']}/status", json={"status": "in_progress"}))
    resolved = await ok(
        await client.post(f"/needs/{done['id']}/resolve", json={"resolution": "address corrected"})
    )

    # Evening: C3 registers, and its parked campaign response becomes a lead.
    await produce_plain(
        crm_servers.kafka_bootstrap, [(customer_events, registered(c3, "Zhao Min"))]
    )
    parked_lead = campaign_lead_id(campaign, c3)

    # Read-your-writes: every view caught up with the day.
    viewed = await client.get(
        f"/opportunities/{opp_a}", params={"min_version": overridden["version"], "wait_ms": 10_000}
    )
    assert viewed.status_code == 200, viewed.text
    for aggregate, version in [
        (opp_b, reassigned["version"]),
        (opp_c, won),
        (opp_d, lost),
        (parked_lead, 1),
        (soon["id"], 1),
        (late["id"], 1),
        (done["id"], resolved["version"]),
        (waiting["id"], 1),
    ]:
        assert await wait_until_applied(positions, SOURCE, aggregate, version, within=60), aggregate

    a = viewed.json()
    assert (a["stage"], a["probability"], a["manager_id"]) == ("negotiation", 70, rm)
    assert a["probability_reason"] == "competitor offers a better rate"
    assert (a["lead_id"], a["campaign_id"], a["source"]) == (campaign_lead, campaign, "campaign")
    assert a["weighted_value"] == {"amount": "350000.0000", "currency": "CNY"}

    for filters, only in [
        ({"manager_id": rm}, {"manager": rm}),
        ({"branch_id": branch}, {"branch": branch}),
        ({"branch_id": branch, "product": "WM-1"}, {"branch": branch, "product": "WM-1"}),
    ]:
        pipeline = (await client.get("/pipeline", params=filters)).json()
        expected = book.pipeline(**only)
        assert pipeline["open"]["count"] == expected["count"], filters
        assert decimals(pipeline["open"]["expected_value"]) == expected["value"], filters
        assert decimals(pipeline["open"]["weighted_value"]) == expected["weighted"], filters
        reached = {step["stage"]: step["reached"] for step in pipeline["conversion"]}
        assert reached == {s: expected["reached"][s] for s in list(PROBABILITY)[:8]}, filters
        assert pipeline["closed_lost"] == expected["reached"]["closed_lost"], filters

    branch_pipeline = (await client.get("/pipeline", params={"branch_id": branch})).json()
    assert set(branch_pipeline["by_manager"]) == {rm, cover}
    assert branch_pipeline["by_stage"]["closed_won"]["expected_value"] == {"USD": "30000.50"}
    # By hand: 500000.00 x 70% + 1800000 x 60% = 350000 + 1080000.
    assert decimals(branch_pipeline["open"]["weighted_value"]) == {"CNY": Decimal("1430000")}

    queue = (await client.get("/leads", params={"branch_id": branch})).json()
    assert [item["lead_id"] for item in queue["items"]] == [waiting["id"], parked_lead]
    assert queue["items"][1]["source"] == "campaign"

    board = (await client.get("/complaints/sla", params={"branch_id": branch})).json()
    assert [c["need_id"] for c in board["breached"]] == [late["id"]]
    assert [c["need_id"] for c in board["due_soon"]] == [soon["id"]]
    assert board["on_track"] == []
    assert board["open"] == 2

    ready = await client.get("/readyz")
    assert ready.status_code == 200, ready.text
