"""The HTTP contract of the book's analyses (exposure, value, the league table): documented
with examples and problems, and a bad request is a problem document before anything is
read."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from crm_backbone.testing_identity import TestIdentity
from crm_customer.api import create_app
from crm_customer.bootstrap import CustomerSettings, bootstrap
from local_infra.harness import assert_documented, assert_problem, in_process

IDENTITY = TestIdentity()
ANALYST = IDENTITY.staff("HO-0001")
OPERATIONS = {
    "/customers/{customer_id}/exposure": ("CustomerExposure", "customer-not-found"),
    "/groups/{group_id}/exposure": ("GroupExposure", "group-not-found"),
    "/customers/{customer_id}/value": ("CustomerValue", "customer-not-found"),
    "/analysis/value": ("ValueAnalysis", None),
    "/analysis/segment-reviews": ("SegmentReviews", None),
}


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    service = bootstrap(CustomerSettings(data_dir=tmp_path))
    app = create_app(service, run_workers=False, authentication=IDENTITY.authentication)
    async with in_process(app, service.close) as client:
        yield client


async def test_every_analysis_is_documented_with_examples_and_its_problems(
    client: httpx.AsyncClient,
) -> None:
    spec = (await client.get("/openapi.json")).json()
    for path, (model, not_found) in OPERATIONS.items():
        operation = spec["paths"][path]["get"]
        answer = operation["responses"]["200"]["content"]["application/json"]["schema"]
        assert answer == {"$ref": f"#/components/schemas/{model}"}
        assert spec["components"]["schemas"][model]["examples"], model
        assert operation["summary"]
        assert operation["description"]
        for status in ("401", "403", "422"):
            assert "application/problem+json" in operation["responses"][status]["content"]
        if not_found is not None:
            example = operation["responses"]["404"]["content"]["application/problem+json"]
            assert example["example"]["type"] == f"/problems/{not_found}"
    assert_documented(spec, "/performance")
    league = spec["paths"]["/performance"]["get"]["responses"]["200"]["content"]
    assert league["application/json"]["schema"] == {"$ref": "#/components/schemas/LeagueTable"}


async def test_bad_requests_are_problems_before_any_read(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/analysis/value"), 401, "unauthenticated")
    too_many = await client.get("/analysis/segment-reviews?limit=501", headers=ANALYST)
    assert_problem(too_many, 422, "invalid-request")
    bad_id = await client.get("/groups/%20bad%20/exposure", headers=ANALYST)
    assert_problem(bad_id, 422, "invalid-request")
    bad = ("period=week", "at=2026-02-30", "at=0", "at=0001-01-01", "group_by=desk", "rank_by=x")
    for query in (*bad, "period=year&at=9999-12-31"):
        bad_league = await client.get(f"/performance?{query}", headers=ANALYST)
        assert_problem(bad_league, 422, "invalid-request")
    operator = IDENTITY.staff("OP-0001")
    assert_problem(await client.get("/performance", headers=operator), 403, "forbidden")
