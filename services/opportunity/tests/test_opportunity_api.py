"""The HTTP contract of the opportunity service's commands: status codes and problem documents.

The API runs in-process without workers, on an SQLite store in a temporary folder. The
caller is the service's own account (``crm_service``: the whole book) unless a test is
about someone else.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from crm_backbone.testing_identity import TestIdentity
from crm_opportunity.api import create_app
from crm_opportunity.bootstrap import OpportunitySettings, bootstrap
from local_infra.harness import assert_documented, assert_problem, in_process

IDENTITY = TestIdentity()


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    service = bootstrap(OpportunitySettings(data_dir=tmp_path))
    app = create_app(service, run_workers=False, authentication=IDENTITY.authentication)
    async with in_process(app, service.close, IDENTITY.service("crm-opportunity")) as client:
        yield client


def opportunity(opportunity_id: str = "OPP-1", **overrides: Any) -> dict[str, Any]:
    return {
        "opportunity_id": opportunity_id,
        "customer_id": "C1",
        "title": "Mortgage",
        "products": ["ML-30"],
        "expected_value": {"amount": "1200000.00", "currency": "CNY"},
        "expected_close_date": "2099-03-31",
        "manager_id": "RM-7",
        "branch_id": "BR-001",
        "source": "relationship_manager",
    } | overrides


async def test_a_lead_is_captured_qualified_assigned_and_converted(
    client: httpx.AsyncClient,
) -> None:
    captured = await client.post(
        "/leads",
        json={
            "contact_name": "Zhao Min",
            "phone": "+86 139 5555 0101",
            "source": "walk_in",
            "branch_id": "BR-001",
        },
    )
    assert captured.status_code == 201, captured.text
    lead_id = captured.json()["id"]
    assert lead_id.startswith("L-")
    assert captured.headers["location"] == f"/leads/{lead_id}"
    await client.post(f"/leads/{lead_id}/qualify", json={"customer_id": "C1"})
    assigned = await client.put(f"/leads/{lead_id}/manager", json={"manager_id": "RM-7"})
    assert assigned.json() == {"id": lead_id, "version": 3}

    converted = await client.post(
        f"/leads/{lead_id}/convert",
        json={
            "expected_version": 3,
            "title": "Mortgage",
            "products": ["ML-30"],
            "expected_value": {"amount": "900000", "currency": "CNY"},
            "expected_close_date": "2099-01-31",
        },
    )
    assert converted.status_code == 201, converted.text
    body = converted.json()
    assert body["version"] == 4
    assert body["opportunity_version"] == 1
    assert converted.headers["location"] == f"/opportunities/{body['opportunity_id']}"
    lead = (await client.get(f"/leads/{lead_id}")).json()
    assert (lead["status"], lead["opportunity_id"]) == ("converted", body["opportunity_id"])


async def test_opportunity_commands_answer_the_new_version(client: httpx.AsyncClient) -> None:
    created = await client.post("/opportunities", json=opportunity())
    assert created.json() == {"id": "OPP-1", "version": 1}
    moved = await client.post("/opportunities/OPP-1/stage", json={"stage": "negotiation"})
    assert moved.json()["version"] == 2
    overridden = await client.put(
        "/opportunities/OPP-1/probability", json={"probability": 70, "reason": "board said yes"}
    )
    assert overridden.json()["version"] == 3
    valued = await client.put(
        "/opportunities/OPP-1/expected-value",
        json={"expected_value": {"amount": "1000000", "currency": "CNY"}, "expected_version": 3},
    )
    assert valued.json()["version"] == 4
    reassigned = await client.put("/opportunities/OPP-1/manager", json={"manager_id": "RM-8"})
    assert reassigned.json()["version"] == 5


async def test_a_stale_version_is_a_409_naming_the_current_one(client: httpx.AsyncClient) -> None:
    await client.post("/opportunities", json=opportunity())
    await client.post("/opportunities/OPP-1/stage", json={"stage": "proposal"})
    stale = await client.post(
        "/opportunities/OPP-1/stage", json={"stage": "evaluation", "expected_version": 1}
    )
    assert assert_problem(stale, 409, "stale-version")["current_version"] == 2


async def test_bad_requests_are_problem_documents(client: httpx.AsyncClient) -> None:
    no_token = await client.post(
        "/opportunities", json=opportunity(), headers={"Authorization": ""}
    )
    assert_problem(no_token, 401, "unauthenticated")
    invalid = await client.post(
        "/opportunities",
        json=opportunity(products=[], expected_value={"amount": "lots", "currency": "CNY"}),
    )
    body = assert_problem(invalid, 422, "invalid-request")
    assert {tuple(e["location"]) for e in body["errors"]} == {
        ("body", "products"),
        ("body", "expected_value", "amount"),
    }
    for amount in (1200000, 1200000.5, "1.2e6", " 1200000 "):  # not the documented string
        wrong = opportunity(expected_value={"amount": amount, "currency": "CNY"})
        body = assert_problem(
            await client.post("/opportunities", json=wrong), 422, "invalid-request"
        )
        assert body["errors"][0]["location"] == ["body", "expected_value", "amount"]
    assert_problem(await client.get("/opportunities/OPP-1"), 404, "opportunity-not-found")
    missing = await client.post("/opportunities/OPP-404/stage", json={"stage": "proposal"})
    assert_problem(missing, 404, "opportunity-not-found")
    assert_problem(await client.get("/needs/N-404"), 404, "need-not-found")

    await client.post("/opportunities", json=opportunity())
    assert_problem(await client.post("/opportunities", json=opportunity()), 409, "conflict")
    await client.post("/opportunities/OPP-1/stage", json={"stage": "evaluation"})
    backward = await client.post("/opportunities/OPP-1/stage", json={"stage": "proposal"})
    body = assert_problem(backward, 422, "invalid-stage-move")
    assert (body["current_stage"], body["wanted_stage"]) == ("evaluation", "proposal")
    lost = await client.post(
        "/opportunities/OPP-1/stage", json={"stage": "closed_lost", "lost_reason": "rate"}
    )
    assert lost.status_code == 200
    closed = await client.post("/opportunities/OPP-1/stage", json={"stage": "negotiation"})
    assert_problem(closed, 409, "conflict")

    no_sla = await client.post(
        "/needs",
        json={
            "customer_id": "C1",
            "kind": "complaint",
            "summary": "Fee twice",
            "content": "Charged twice",
            "severity": "low",
            "urgency": "normal",
            "channel": "phone",
        },
    )
    assert "SLA" in assert_problem(no_sla, 422, "rule-violation")["detail"]


async def test_a_complaint_through_its_life(client: httpx.AsyncClient) -> None:
    logged = await client.post(
        "/needs",
        json={
            "need_id": "N-1",
            "customer_id": "C1",
            "kind": "complaint",
            "summary": "Fee twice",
            "content": "Charged twice",
            "severity": "high",
            "urgency": "immediate",
            "channel": "branch",
            "started_at": "2026-11-23T09:00:00+08:00",
            "sla_due_at": "2026-11-24T09:00:00+08:00",
        },
    )
    assert logged.status_code == 201, logged.text
    await client.put("/needs/N-1/owner", json={"manager_id": "RM-7"})
    await client.post(
        "/needs/N-1/status", json={"status": "pending_customer", "sub_status": "docs"}
    )
    resolved = await client.post("/needs/N-1/resolve", json={"resolution": "refunded"})
    assert resolved.json()["version"] == 5  # logged, assigned (owner + status), working, resolved
    confirmed = await client.post("/needs/N-1/confirm", json={"satisfied": True})
    assert confirmed.status_code == 200
    need = (await client.get("/needs/N-1")).json()
    assert (need["status"], need["satisfied"], need["owner_id"]) == ("confirmed", True, "RM-7")
    assert_problem(await client.post("/needs/N-1/reopen", json={"reason": "x"}), 409, "conflict")


async def test_openapi_documents_examples_and_problems(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    assert spec["components"]["schemas"]["NewOpportunity"]["examples"][0]["customer_id"]
    responses = spec["paths"]["/opportunities/{opportunity_id}/stage"]["post"]["responses"]
    assert "application/problem+json" in responses["409"]["content"]
    assert {"/pipeline", "/leads", "/complaints/sla", "/opportunities/{opportunity_id}"} <= set(
        spec["paths"]
    )
    assert (await client.get("/healthz")).json() == {"status": "ok"}


async def test_the_sales_book_is_documented_with_examples_and_its_problems(
    client: httpx.AsyncClient,
) -> None:
    spec = (await client.get("/openapi.json")).json()
    assert_documented(spec, "/opportunities", "get", {400: "invalid-cursor"})
    assert_documented(spec, "/forecast")
    assert_documented(spec, "/lead-sources")
