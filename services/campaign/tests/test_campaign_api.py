"""The HTTP contract of the campaign service's commands: status codes and problem documents.

The API runs in-process without workers, on an SQLite store in a temporary folder; the
audience the target lists are selected from is a fixed list of profiles. Callers are the
campaign service's own account (``crm_service``) unless a test is about someone else.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from crm_backbone.testing_identity import TestIdentity
from crm_campaign.api import create_app
from crm_campaign.bootstrap import CampaignSettings, bootstrap
from crm_campaign.targeting import Criteria, Profile
from crm_events.campaign import Segment
from local_infra.harness import assert_problem, in_process

IDENTITY = TestIdentity()
CONTACTS = frozenset({"phone", "email"})


class FixedAudience:
    def __init__(self, profiles: list[Profile]) -> None:
        self.profiles_given = profiles

    async def profiles(self, segments: Sequence[Segment], criteria: Criteria) -> list[Profile]:
        return self.profiles_given


def customer(customer_id: str, **overrides: Any) -> Profile:
    fields: dict[str, Any] = {
        "customer_id": customer_id,
        "status": "active",
        "value_band": "high",
        "corporate_tier": None,
        "branch_id": "BR-001",
        "manager_id": "RM-7",
        "contacts": CONTACTS,
    }
    return Profile(**(fields | overrides))


AUDIENCE = [
    customer("C1"),
    customer("C2", preferred_channel="phone"),
    customer("C3", consents={"sms": False, "email": False, "phone": False}),
    customer("C4", value_band="low"),
]


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    service = bootstrap(CampaignSettings(data_dir=tmp_path))
    service.audience = FixedAudience(AUDIENCE)
    app = create_app(service, run_workers=False, authentication=IDENTITY.authentication)
    async with in_process(app, service.close, IDENTITY.service("crm-campaign")) as client:
        yield client


def draft(**overrides: Any) -> dict[str, Any]:
    return {
        "campaign_id": "CMP-1",
        "name": "Spring wealth growth",
        "kind": "sms",
        "products": ["WM-GROWTH"],
        "channels": ["sms", "phone"],
        "target_segments": [{"value_band": "high"}],
        "criteria": {"statuses": ["active"]},
        "owner_manager_ids": ["RM-0042"],
        "budget": {"amount": "5000.00", "currency": "CNY"},
        "planned_start": "2026-03-01",
        "planned_end": "2026-03-31",
    } | overrides


SCHEDULE = {"starts_at": "2026-03-01T09:00:00+08:00", "ends_at": "2026-03-31T18:00:00+08:00"}


async def started(client: httpx.AsyncClient) -> dict[str, Any]:
    await client.post("/campaigns", json=draft())
    await client.post("/campaigns/CMP-1/schedule", json=SCHEDULE)
    response = await client.post("/campaigns/CMP-1/start", json={})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_create_schedule_start_with_versions(client: httpx.AsyncClient) -> None:
    created = await client.post("/campaigns", json=draft())
    assert created.status_code == 201, created.text
    assert created.headers["location"] == "/campaigns/CMP-1"
    assert created.json() == {"campaign_id": "CMP-1", "version": 1}
    scheduled = await client.post(
        "/campaigns/CMP-1/schedule", json=SCHEDULE | {"expected_version": 1}
    )
    assert scheduled.json()["version"] == 2
    start = await client.post("/campaigns/CMP-1/start", json={"expected_version": 2})
    assert start.json() == {
        "campaign_id": "CMP-1",
        "version": 4,  # started, then one call list
        "targeted": 2,
        "excluded": {"opted_out": 1},
        "call_lists": {"RM-7": 1},
    }
    current = (await client.get("/campaigns/CMP-1")).json()
    assert current["status"] == "running"
    assert current["targeted"] == 2
    assert current["criteria"]["statuses"] == ["active"]
    assert current["attribution_window"][0] == current["started_at"]


async def test_a_generated_id_when_none_is_given(client: httpx.AsyncClient) -> None:
    created = await client.post("/campaigns", json=draft(campaign_id=None))
    assert created.json()["campaign_id"].startswith("CMP-")
    bad = await client.post("/campaigns", json=draft(campaign_id="a|b"))
    assert_problem(bad, 422, "invalid-request")


async def test_responses_are_recorded_once(client: httpx.AsyncClient) -> None:
    version = (await started(client))["version"]
    response = {
        "customer_id": "C2",
        "channel": "phone",
        "stage": "contacted",
        "occurred_at": "2026-03-02T10:00:00+08:00",
    }
    first = await client.post("/campaigns/CMP-1/responses", json=response)
    assert first.json() == {"campaign_id": "CMP-1", "version": version + 1, "recorded": True}
    again = await client.post("/campaigns/CMP-1/responses", json=response)
    assert again.json() == {"campaign_id": "CMP-1", "version": version + 1, "recorded": False}
    stranger = await client.post(
        "/campaigns/CMP-1/responses", json=response | {"customer_id": "C3"}
    )
    assert assert_problem(stranger, 422, "not-targeted")["customer_id"] == "C3"
    sale = response | {"stage": "converted", "revenue": {"amount": "120000", "currency": "CNY"}}
    converted = await client.post("/campaigns/CMP-1/responses", json=sale)
    assert converted.json()["recorded"] is True


async def test_state_rules_and_stale_versions_are_problems(client: httpx.AsyncClient) -> None:
    await client.post("/campaigns", json=draft())
    early = await client.post("/campaigns/CMP-1/start", json={})
    assert (
        "draft campaign cannot become running"
        in assert_problem(early, 422, "rule-violation")["detail"]
    )
    response = {
        "customer_id": "C1",
        "channel": "sms",
        "stage": "sent",
        "occurred_at": "2026-03-02T10:00:00+08:00",
    }
    not_yet = await client.post("/campaigns/CMP-1/responses", json=response)
    assert_problem(not_yet, 409, "campaign-not-started")
    stale = await client.post("/campaigns/CMP-1/schedule", json=SCHEDULE | {"expected_version": 7})
    assert assert_problem(stale, 409, "stale-version")["current_version"] == 1
    backwards = SCHEDULE | {"ends_at": "2026-02-01T00:00:00+08:00"}
    assert_problem(
        await client.post("/campaigns/CMP-1/schedule", json=backwards),
        422,
        "rule-violation",
    )
    again = await client.post("/campaigns", json=draft())
    assert_problem(again, 409, "conflict")
    cancelled = await client.post("/campaigns/CMP-1/cancel", json={"reason": "x"})
    assert cancelled.json()["version"] == 2
    assert_problem(
        await client.post("/campaigns/CMP-1/complete", json={}),
        422,
        "rule-violation",
    )


async def test_a_target_list_too_large_for_one_kafka_record_is_refused(
    tmp_path: Path,
) -> None:
    service = bootstrap(CampaignSettings(data_dir=tmp_path))
    service.audience = FixedAudience(
        [customer(f"C{n:012d}", manager_id=f"RM-{n:08d}") for n in range(8_500)]
    )
    app = create_app(service, run_workers=False, authentication=IDENTITY.authentication)
    async with in_process(app, service.close, IDENTITY.service("crm-campaign")) as client:
        await client.post("/campaigns", json=draft())
        await client.post("/campaigns/CMP-1/schedule", json=SCHEDULE)
        refused = await client.post("/campaigns/CMP-1/start", json={})
        body = assert_problem(refused, 422, "target-list-too-large")
        assert body["targets"] == 8_500
        assert body["bytes"] > body["limit_bytes"]
        assert (await client.get("/campaigns/CMP-1")).json()["status"] == "scheduled"


async def test_bad_requests_are_problem_documents(client: httpx.AsyncClient) -> None:
    unproven = await client.post("/campaigns", json=draft(), headers={"Authorization": "Bearer x"})
    assert_problem(unproven, 401, "unauthenticated")
    invalid = await client.post("/campaigns", json=draft(channels=[], budget={"amount": "x"}))
    locations = {
        tuple(e["location"][:2]) for e in assert_problem(invalid, 422, "invalid-request")["errors"]
    }
    assert {("body", "channels"), ("body", "budget")} <= locations
    missing = await client.post("/campaigns/CMP-404/complete", json={})
    assert_problem(missing, 404, "campaign-not-found")
    assert_problem(await client.get("/campaigns/CMP-404"), 404, "campaign-not-found")


async def test_openapi_documents_examples_and_problems(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    assert spec["components"]["schemas"]["Draft"]["examples"][0]["campaign_id"] == "CMP-2026-SPRING"
    responses = spec["paths"]["/campaigns/{campaign_id}/start"]["post"]["responses"]
    assert "application/problem+json" in responses["409"]["content"]
    assert set(spec["paths"]) >= {
        "/campaigns",
        "/campaigns/{campaign_id}/funnel",
        "/campaigns/{campaign_id}/daily",
    }
    asyncapi = (await client.get("/asyncapi.json")).json()
    assert "channel.gateway.responses" in str(asyncapi)
    assert (await client.get("/healthz")).json() == {"status": "ok"}
