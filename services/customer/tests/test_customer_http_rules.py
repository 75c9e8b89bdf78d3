"""The HTTP rules every service shares, tried on the customer service: ids, strict JSON,
``Location``, ``Allow``, unreachable ``min_version``; a refused write writes nothing.

The API runs in-process without workers, on an SQLite store in a temporary folder.
"""

from __future__ import annotations

import asyncio
import re
import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from crm_backbone.testing_identity import TestIdentity
from crm_customer.api import create_app
from crm_customer.bootstrap import CustomerService, CustomerSettings, bootstrap
from crm_events.common import ID_PATTERN
from hypothesis import given, settings
from hypothesis import strategies as st
from local_infra.harness import assert_problem, in_process

IDENTITY = TestIdentity()
ACTOR = IDENTITY.service("crm-customer")


@pytest.fixture
def service(tmp_path: Path) -> CustomerService:
    return bootstrap(CustomerSettings(data_dir=tmp_path))


@pytest.fixture
async def client(service: CustomerService) -> AsyncIterator[httpx.AsyncClient]:
    async with in_process(
        create_app(service, run_workers=False, authentication=IDENTITY.authentication),
        service.close,
    ) as client:
        yield client


def registration(customer_id: str, **overrides: Any) -> dict[str, Any]:
    return {
        "customer_id": customer_id,
        "customer_type": "individual",
        "name": {"full_name": "Wang Fang"},
        "branch_id": "BR-001",
    } | overrides


def stored_events(service: CustomerService) -> int:
    return int(service.application.recorder.max_notification_id() or 0)


CUSTOMER_IDS = (
    st.text(max_size=140)
    | st.from_regex(ID_PATTERN, fullmatch=True)
    | st.sampled_from(["CZ1王", "C/1", "C\x07", "C 1", "C%2F1", ".x", "x" * 129])
)


def test_any_customer_id_is_registered_and_readable_or_refused_unwritten(
    service: CustomerService,
) -> None:
    transport = httpx.ASGITransport(
        app=create_app(service, run_workers=False, authentication=IDENTITY.authentication)
    )

    @settings(max_examples=100, deadline=None)
    @given(customer_id=CUSTOMER_IDS)
    def attempt(customer_id: str) -> None:
        asyncio.run(register(customer_id))

    async def register(customer_id: str) -> None:
        async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
            before = stored_events(service)
            answer = await client.post("/customers", json=registration(customer_id), headers=ACTOR)
            if answer.status_code == 201:
                assert re.fullmatch(ID_PATTERN, customer_id)
                location = answer.headers["location"]
                assert urllib.parse.unquote(location) == f"/customers/{customer_id}"
                found = await client.get(location, headers=ACTOR)
                assert found.json()["customer_id"] == customer_id
            elif answer.status_code == 409:  # generated twice
                assert_problem(answer, 409, "conflict")
                assert stored_events(service) == before
            else:
                assert_problem(answer, 422, "invalid-request")
                assert not re.fullmatch(ID_PATTERN, customer_id)
                assert stored_events(service) == before

    attempt()


async def test_json_types_are_strict(client: httpx.AsyncClient) -> None:
    await client.post("/customers", json=registration("C1"), headers=ACTOR)
    for body in (
        {"status": "active", "reason": "x", "expected_version": True},
        {"status": "active", "reason": "x", "expected_version": "1"},
        {"status": "active", "reason": 7},
    ):
        refused = await client.post("/customers/C1/status", json=body, headers=ACTOR)
        assert_problem(refused, 422, "invalid-request")
    joined = {"group_id": "HH-1", "group_type": "household", "group_name": "Wang", "role": "head"}
    for joined_on in (61516, True):
        refused = await client.post(
            "/customers/C1/groups", json=joined | {"joined_on": joined_on}, headers=ACTOR
        )
        assert_problem(refused, 422, "invalid-request")
    accepted = await client.post(
        "/customers/C1/status",
        json={"status": "active", "reason": "x", "expected_version": 1.0},
        headers=ACTOR,
    )
    assert accepted.json()["version"] == 2, "1.0 is the integer 1, as in JSON Schema"


async def test_a_call_without_a_valid_token_is_refused_unwritten(
    service: CustomerService, client: httpx.AsyncClient
) -> None:
    for headers in ({}, {"Authorization": "Bearer not-a-token"}, {"X-Actor": "rm-0042"}):
        refused = await client.post("/customers", json=registration("C1"), headers=headers)
        assert_problem(refused, 401, "unauthenticated")
    assert stored_events(service) == 0
    spec = (await client.get("/openapi.json")).json()
    assert spec["paths"]["/customers"]["post"]["security"]


async def test_a_405_names_the_allowed_methods(client: httpx.AsyncClient) -> None:
    answer = await client.delete("/customers")
    assert_problem(answer, 405, "http")
    assert answer.headers["allow"] == "GET, POST"


async def test_an_unreachable_min_version_is_a_409_at_once_an_unknown_customer_a_404(
    client: httpx.AsyncClient,
) -> None:
    await client.post("/customers", json=registration("C1"), headers=ACTOR)
    beyond = await client.get("/customers/C1/view", params={"min_version": 2}, headers=ACTOR)
    assert assert_problem(beyond, 409, "version-unreachable")["current_version"] == 1
    unknown = await client.get("/customers/C404/view", params={"min_version": 1}, headers=ACTOR)
    assert assert_problem(unknown, 404, "customer-not-found")["detail"] == "no customer C404"
