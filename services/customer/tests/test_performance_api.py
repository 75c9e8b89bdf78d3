"""The HTTP contract of ``GET /performance``: documented with its example and problems, and
a bad request is a problem document before anything is read."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from crm_backbone.testing_identity import TestIdentity
from crm_customer.api import create_app
from crm_customer.bootstrap import CustomerSettings, bootstrap
from local_infra.harness import assert_problem, in_process

IDENTITY = TestIdentity()
MANAGER = IDENTITY.staff("RM-0001")


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    service = bootstrap(CustomerSettings(data_dir=tmp_path))
    app = create_app(service, run_workers=False, authentication=IDENTITY.authentication)
    async with in_process(app, service.close) as client:
        yield client


async def test_the_league_is_documented_with_its_example_and_problems(
    client: httpx.AsyncClient,
) -> None:
    spec = (await client.get("/openapi.json")).json()
    operation = spec["paths"]["/performance"]["get"]
    answer = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert answer == {"$ref": "#/components/schemas/LeagueTable"}
    assert spec["components"]["schemas"]["LeagueTable"]["examples"]
    assert operation["summary"]
    assert operation["description"]
    for status in ("401", "403", "422"):
        assert "application/problem+json" in operation["responses"][status]["content"]
    parameters = {p["name"]: p for p in operation["parameters"]}
    assert {"period", "at", "group_by", "rank_by"} <= set(parameters)
    assert "aum_daily_average" in str(parameters["rank_by"]["schema"])


@pytest.mark.parametrize(
    "query",
    ["period=week", "at=2026-02-30", "group_by=desk", "rank_by=name", "at=yesterday"],
)
async def test_bad_requests_are_problems_before_any_read(
    client: httpx.AsyncClient, query: str
) -> None:
    assert_problem(
        await client.get(f"/performance?{query}", headers=MANAGER), 422, "invalid-request"
    )


async def test_callers_without_the_book_are_refused(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/performance"), 401, "unauthenticated")
    operator = IDENTITY.staff("OP-0001")
    assert_problem(await client.get("/performance", headers=operator), 403, "forbidden")
