"""The HTTP contract of the customer service's commands: status codes and problem documents.

The API runs in-process without workers, on an SQLite store in a temporary folder.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from crm_backbone.testing_identity import TestIdentity
from crm_customer.api import create_app
from crm_customer.bootstrap import CustomerSettings, bootstrap
from local_infra.harness import assert_problem, in_process

IDENTITY = TestIdentity()
ACTOR = IDENTITY.service("crm-customer")
"""These tests are about the commands, not access: the service's own account, whole book."""


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    service = bootstrap(CustomerSettings(data_dir=tmp_path))
    app = create_app(service, run_workers=False, authentication=IDENTITY.authentication)
    async with in_process(app, service.close) as client:
        yield client


def registration(customer_id: str = "C00000001", **overrides: Any) -> dict[str, Any]:
    return {
        "customer_id": customer_id,
        "customer_type": "individual",
        "name": {"full_name": "Wang Fang"},
        "branch_id": "BR-001",
        "phone": "+86 139 1234 5678",
    } | overrides


async def test_register_then_command_with_versions(client: httpx.AsyncClient) -> None:
    created = await client.post("/customers", json=registration(), headers=ACTOR)
    assert created.status_code == 201
    assert created.headers["location"] == "/customers/C00000001"
    assert created.json() == {"customer_id": "C00000001", "version": 1}

    changed = await client.post(
        "/customers/C00000001/status",
        json={"status": "active", "reason": "first account", "expected_version": 1},
        headers=ACTOR,
    )
    assert changed.json()["version"] == 2
    current = await client.get("/customers/C00000001", headers=ACTOR)
    assert current.json()["status"] == "active"


async def test_a_stale_version_is_a_409_naming_the_current_one(client: httpx.AsyncClient) -> None:
    await client.post("/customers", json=registration(), headers=ACTOR)
    await client.patch("/customers/C00000001/profile", json={"email": "a@bank.cn"}, headers=ACTOR)
    stale = await client.patch(
        "/customers/C00000001/profile",
        json={"email": "b@bank.cn", "expected_version": 1},
        headers=ACTOR,
    )
    assert assert_problem(stale, 409, "stale-version")["current_version"] == 2
    current = await client.get("/customers/C00000001", headers=ACTOR)
    assert current.json()["profile"]["email"] == "a@bank.cn"


async def test_core_owned_fields_are_refused_naming_the_owner(client: httpx.AsyncClient) -> None:
    await client.post("/customers", json=registration(), headers=ACTOR)
    refused = await client.patch(
        "/customers/C00000001/profile",
        json={"name": {"full_name": "Someone Else"}, "id_documents": []},
        headers=ACTOR,
    )
    body = assert_problem(refused, 403, "field-owned-upstream")
    assert body["owner"] == "core-banking"
    assert body["fields"] == ["id_documents", "name"]
    unknown = await client.patch(
        "/customers/C00000001/profile", json={"shoe_size": 42}, headers=ACTOR
    )
    assert_problem(unknown, 422, "invalid-request")


async def test_bad_requests_are_problem_documents(client: httpx.AsyncClient) -> None:
    no_token = await client.post("/customers", json=registration())
    assert_problem(no_token, 401, "unauthenticated")
    invalid = await client.post(
        "/customers", json=registration(phone="call me", customer_type="alien"), headers=ACTOR
    )
    body = assert_problem(invalid, 422, "invalid-request")
    assert {tuple(e["location"]) for e in body["errors"]} == {
        ("body", "phone"),
        ("body", "customer_type"),
    }
    missing = await client.post(
        "/customers/C404/status", json={"status": "active", "reason": "x"}, headers=ACTOR
    )
    assert_problem(missing, 404, "customer-not-found")
    await client.post("/customers", json=registration(), headers=ACTOR)
    again = await client.post("/customers", json=registration(), headers=ACTOR)
    assert_problem(again, 409, "conflict")
    jump = await client.post(
        "/customers/C00000001/status", json={"status": "dormant", "reason": "x"}, headers=ACTOR
    )
    assert (
        "prospect customer cannot become dormant"
        in assert_problem(jump, 422, "rule-violation")["detail"]
    )


async def test_commands_on_a_merged_customer_point_to_the_survivor(
    client: httpx.AsyncClient,
) -> None:
    for customer_id in ("C00000001", "C00000002"):
        await client.post("/customers", json=registration(customer_id), headers=ACTOR)
    merged = await client.post(
        "/customers/C00000001/merge",
        json={"duplicate_customer_id": "C00000002", "reason": "same", "merged_on": "2026-11-23"},
        headers=ACTOR,
    )
    assert merged.status_code == 200
    refused = await client.put(
        "/customers/C00000002/manager",
        json={"manager_id": "RM-1", "branch_id": "BR-001"},
        headers=ACTOR,
    )
    assert assert_problem(refused, 409, "customer-merged")["survivor_customer_id"] == "C00000001"


async def test_openapi_documents_examples_and_problems(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    registration_schema = spec["components"]["schemas"]["Registration"]
    assert registration_schema["examples"][0]["customer_id"] == "C00012345"
    responses = spec["paths"]["/customers/{customer_id}/profile"]["patch"]["responses"]
    assert "application/problem+json" in responses["409"]["content"]
    assert (await client.get("/healthz")).json() == {"status": "ok"}
