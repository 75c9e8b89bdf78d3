"""The HTTP contract of the contact-log service's commands: status codes and problem documents.

The API runs in-process without workers, on an SQLite store in a temporary folder, with
a fixed clock. Callers are the contact-log service's own account (``crm_service``: the
whole book, so no read of MongoDB is needed) unless a test is about someone else; scope
and masking are ``test_contactlog_scope.py``'s. The overlap check reads the busy times
the service's own events project in memory (``CaughtUpBusyTimes``), as ``busy_times``
holds them once caught up.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from crm_backbone.testing_identity import TestIdentity
from crm_contactlog.api import create_app
from crm_contactlog.bootstrap import ContactLogSettings, bootstrap
from crm_contactlog.testing import CaughtUpBusyTimes
from local_infra.harness import assert_documented, assert_problem, in_process

IDENTITY = TestIdentity()
NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    service = bootstrap(ContactLogSettings(data_dir=tmp_path), clock=lambda: NOW)
    service.busy_times = CaughtUpBusyTimes(service.application)
    app = create_app(service, run_workers=False, authentication=IDENTITY.authentication)
    async with in_process(app, service.close, IDENTITY.service("crm-contact-log")) as client:
        yield client


def contact(**overrides: Any) -> dict[str, Any]:
    return {
        "customer_id": "C00000001",
        "category": "visit",
        "summary": "Annual review",
        "called": False,
        "outcome": "interested",
        "manager_id": "RM-0042",
        "started_at": "2026-11-23T08:00:00+00:00",
    } | overrides


def plan(**overrides: Any) -> dict[str, Any]:
    return {
        "activity_id": "ACT-1",
        "customer_id": "C00000001",
        "category": "call",
        "description": "Rollover of the time deposit",
        "priority": "high",
        "due_at": "2026-11-24T17:00:00+08:00",
        "assignee_id": "RM-0042",
    } | overrides


async def test_log_a_contact_with_or_without_an_id(client: httpx.AsyncClient) -> None:
    named = await client.post("/contacts", json=contact(contact_id="CT-1"))
    assert named.status_code == 201, named.text
    assert named.headers["location"] == "/contacts/CT-1"
    assert named.json() == {"contact_id": "CT-1", "version": 1}
    generated = await client.post("/contacts", json=contact())
    assert generated.json()["contact_id"].startswith("CT-")
    again = await client.post("/contacts", json=contact(contact_id="CT-1"))
    assert_problem(again, 409, "conflict")


async def test_an_activity_through_its_life_with_versions(client: httpx.AsyncClient) -> None:
    created = await client.post("/activities", json=plan())
    assert created.status_code == 201, created.text
    assert created.json() == {"activity_id": "ACT-1", "version": 1}
    moved = await client.post(
        "/activities/ACT-1/reschedule",
        json={"due_at": "2026-11-25T17:00:00+08:00", "expected_version": 1, "reason": "away"},
    )
    assert moved.json() == {"activity_id": "ACT-1", "version": 2}
    stale = await client.post(
        "/activities/ACT-1/cancel", json={"reason": "no", "expected_version": 1}
    )
    assert assert_problem(stale, 409, "stale-version")["current_version"] == 2
    done = await client.post(
        "/activities/ACT-1/complete",
        json={"cost": {"amount": "12.30", "currency": "CNY"}, "expected_version": 2},
    )
    assert done.json()["version"] == 3
    closed = await client.post("/activities/ACT-1/cancel", json={"reason": "x"})
    assert assert_problem(closed, 409, "activity-closed")["activity_status"] == "completed"


async def test_an_overlapping_plan_is_refused_naming_the_activity_unless_confirmed(
    client: httpx.AsyncClient,
) -> None:
    hour = {"started_at": "2026-11-24T10:00:00+08:00", "ended_at": "2026-11-24T11:00:00+08:00"}
    first = await client.post("/activities", json=plan(**hour, due_at=hour["ended_at"]))
    assert first.status_code == 201, first.text
    later = {"started_at": "2026-11-24T10:30:00+08:00", "ended_at": "2026-11-24T11:30:00+08:00"}
    clashing = plan(activity_id="ACT-2", **later, due_at=later["ended_at"])
    refused = await client.post("/activities", json=clashing)
    problem = assert_problem(refused, 409, "activity-overlap")
    assert [o["activity_id"] for o in problem["overlaps"]] == ["ACT-1"]
    confirmed = await client.post("/activities", json=clashing | {"confirm_overlap": True})
    assert confirmed.json() == {"activity_id": "ACT-2", "version": 1}
    after = {"due_at": "2026-11-24T12:00:00+08:00", "started_at": "2026-11-24T11:00:00+08:00"}
    moved = await client.post("/activities/ACT-2/reschedule", json=after)
    assert moved.json() == {"activity_id": "ACT-2", "version": 2}
    back = await client.post(
        "/activities/ACT-1/reschedule", json=later | {"due_at": "2026-11-24T11:30:00+08:00"}
    )
    assert [
        o["activity_id"] for o in assert_problem(back, 409, "activity-overlap")["overlaps"]
    ] == ["ACT-2"]


async def test_bad_requests_are_problem_documents(client: httpx.AsyncClient) -> None:
    unproven = await client.post("/contacts", json=contact(), headers={"Authorization": "Bearer x"})
    assert_problem(unproven, 401, "unauthenticated")
    invalid = await client.post(
        "/contacts", json=contact(category="carrier pigeon", started_at="2026-11-23T08:00:00")
    )
    body = assert_problem(invalid, 422, "invalid-request")
    assert {tuple(e["location"]) for e in body["errors"]} == {
        ("body", "category"),
        ("body", "started_at"),
    }
    future = await client.post("/contacts", json=contact(started_at="2026-11-24T08:00:00+00:00"))
    assert "future" in assert_problem(future, 422, "rule-violation")["detail"]
    backwards = await client.post("/activities", json=plan(started_at="2026-11-25T09:00:00+08:00"))
    assert "due_at" in assert_problem(backwards, 422, "rule-violation")["detail"]
    missing = await client.post("/activities/ACT-404/cancel", json={"reason": "x"})
    assert_problem(missing, 404, "activity-not-found")
    unknown = await client.post("/activities/ACT-1/complete", json={"shoe_size": 42})
    assert_problem(unknown, 422, "invalid-request")


async def test_reads_refuse_what_they_cannot_answer(client: httpx.AsyncClient) -> None:
    cursor = await client.get("/customers/C00000001/timeline", params={"cursor": "not-ours"})
    assert_problem(cursor, 400, "invalid-cursor")
    too_many = await client.get("/customers/C00000001/timeline", params={"limit": 1000})
    assert_problem(too_many, 422, "invalid-request")
    naive = await client.get("/managers/RM-1/tasks", params={"as_of": "2026-11-23T09:00:00"})
    assert_problem(naive, 422, "invalid-request")


async def test_openapi_documents_examples_and_problems(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    assert spec["components"]["schemas"]["ContactLog"]["examples"][0]["category"] == "phone"
    responses = spec["paths"]["/activities/{activity_id}/reschedule"]["post"]["responses"]
    assert "application/problem+json" in responses["409"]["content"]
    assert "/managers/{manager_id}/tasks" in spec["paths"]
    assert (await client.get("/healthz")).json() == {"status": "ok"}


async def test_the_team_calendar_is_documented_with_examples_and_its_problems(
    client: httpx.AsyncClient,
) -> None:
    spec = (await client.get("/openapi.json")).json()
    assert_documented(spec, "/activities", "get", {404: "manager-not-found"})
    assert_documented(spec, "/activities", "post", {409: "activity-overlap"})
    assert_documented(
        spec, "/activities/{activity_id}/reschedule", "post", {409: "activity-overlap"}
    )
