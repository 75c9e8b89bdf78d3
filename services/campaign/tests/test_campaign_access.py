"""Who may manage, read and report on which campaigns (``crm_campaign.access``), over HTTP
with tokens made in the test (``crm_backbone.testing_identity``).

What each caller may do is written out here from the test organisation, not asked of the
access module. The customers' current owners are held in memory (``FixedCustomerBook``);
the figures and lists narrowed in the genuine MongoDB are tried in
``tests/integration/test_campaign_scope.py``.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from crm_backbone.testing_identity import FixedCustomerBook, TestIdentity
from crm_campaign.api import create_app
from crm_campaign.bootstrap import CampaignService, CampaignSettings, bootstrap
from crm_campaign.targeting import Criteria, Profile
from crm_events.campaign import Segment
from fastapi import FastAPI
from hypothesis import given, settings
from hypothesis import strategies as st
from local_infra.harness import assert_problem

IDENTITY = TestIdentity()
BRANCHES = ("BR-001", "BR-002", "BR-003")
MANAGERS = {"RM-0001": "BR-001", "RM-0002": "BR-001", "RM-0005": "BR-002", "RM-0009": "BR-003"}
"""The test organisation's relationship managers and their branches."""
COVERED = {"BM-0001": {"BR-001"}, "RH-0001": {"BR-001", "BR-002"}}
"""The branches the branch manager and the regional head (region RG-01) cover."""
STAFF = (*MANAGERS, *COVERED, "HO-0001", "OP-0001", "AU-0001")
SERVICES = {"crm-campaign": "crm_service", "channel-gateway": "upstream_system"}
CALLERS = (*STAFF, *SERVICES)
WHOLE_BOOK = ("HO-0001", *SERVICES)
READERS = (*MANAGERS, *COVERED, "HO-0001", "crm-campaign")
WRITERS = (*MANAGERS, *COVERED, *SERVICES)
SCHEDULE = {"starts_at": "2026-03-01T09:00:00+08:00", "ends_at": "2026-03-31T18:00:00+08:00"}


def headers(caller: str) -> dict[str, str]:
    if caller in SERVICES:
        return IDENTITY.service(caller, SERVICES[caller])
    return IDENTITY.staff(caller)


CRM = headers("crm-campaign")


def sees(caller: str, manager: str, branch: str) -> bool:
    """Whether ``caller`` reaches a customer of ``manager`` in ``branch``."""
    if caller in MANAGERS:
        return manager == caller
    if caller in COVERED:
        return branch in COVERED[caller]
    return caller in WHOLE_BOOK


def may_manage(caller: str, branches: Sequence[str]) -> bool:
    """Whether ``caller`` manages a campaign targeting ``branches`` (none: the bank)."""
    if caller in SERVICES:
        return True
    return caller in COVERED and bool(branches) and set(branches) <= COVERED[caller]


class FixedAudience:
    def __init__(self, profiles: list[Profile]) -> None:
        self.profiles_given = profiles

    async def profiles(self, segments: Sequence[Segment], criteria: Criteria) -> list[Profile]:
        return self.profiles_given


def customer(customer_id: str, manager_id: str, branch_id: str) -> Profile:
    return Profile(
        customer_id=customer_id,
        status="active",
        value_band="high",
        corporate_tier=None,
        branch_id=branch_id,
        manager_id=manager_id,
        preferred_channel="phone",
        contacts=frozenset({"phone"}),
    )


def draft(campaign_id: str, branches: Sequence[str] = ()) -> dict[str, Any]:
    return {
        "campaign_id": campaign_id,
        "name": "Spring wealth growth",
        "kind": "sms",
        "channels": ["sms", "phone"],
        "target_segments": [{"value_band": "high"}],
        "criteria": {"branch_ids": list(branches)},
        "owner_manager_ids": ["RM-0001"],
        "budget": {"amount": "5000.00", "currency": "CNY"},
        "planned_start": "2026-03-01",
        "planned_end": "2026-03-31",
    }


@pytest.fixture
def service(tmp_path: Path) -> Iterator[CampaignService]:
    service = bootstrap(CampaignSettings(data_dir=tmp_path))
    yield service
    asyncio.run(service.close())


def api(service: CampaignService) -> FastAPI:
    return create_app(service, run_workers=False, authentication=IDENTITY.authentication)


def client_of(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://campaign")


def stored_events(service: CampaignService) -> int:
    return int(service.application.recorder.max_notification_id() or 0)


BRANCH_SETS = st.lists(st.sampled_from(BRANCHES), unique=True, max_size=3)


def test_only_a_reach_covering_every_branch_of_a_campaign_manages_it(
    service: CampaignService,
) -> None:
    app = api(service)
    numbers = itertools.count()

    @settings(max_examples=80, deadline=None)
    @given(caller=st.sampled_from(CALLERS), branches=BRANCH_SETS)
    def attempt(caller: str, branches: list[str]) -> None:
        asyncio.run(manage(caller, branches, f"CMP-{next(numbers)}"))

    async def manage(caller: str, branches: list[str], campaign_id: str) -> None:
        async with client_of(app) as client:
            existing = await client.post(
                "/campaigns", json=draft(campaign_id, branches), headers=CRM
            )
            assert existing.status_code == 201, existing.text
            before = stored_events(service)
            as_caller = headers(caller)
            own = await client.post(
                "/campaigns", json=draft(f"{campaign_id}-own", branches), headers=as_caller
            )
            scheduled = await client.post(
                f"/campaigns/{campaign_id}/schedule", json=SCHEDULE, headers=as_caller
            )
            cancelled = await client.post(
                f"/campaigns/{campaign_id}/cancel", json={"reason": "budget"}, headers=as_caller
            )
            missing = await client.post(
                f"/campaigns/{campaign_id}-none/schedule", json=SCHEDULE, headers=as_caller
            )
        if may_manage(caller, branches):
            assert [own.status_code, scheduled.status_code, cancelled.status_code] == [
                201,
                200,
                200,
            ]
            assert_problem(missing, 404, "campaign-not-found")
            return
        for refused in (own, scheduled, cancelled):
            assert_problem(refused, 403, "forbidden")
        if caller in SERVICES or caller in COVERED:  # it manages some campaigns
            assert_problem(missing, 404, "campaign-not-found")
        else:  # it manages none: refused whatever the campaign
            assert_problem(missing, 403, "forbidden")
        assert stored_events(service) == before

    attempt()


async def test_a_branch_manager_runs_a_campaign_of_the_branch(service: CampaignService) -> None:
    service.audience = FixedAudience([customer("C1", "RM-0001", "BR-001")])
    branch_manager, manager = headers("BM-0001"), headers("RM-0001")
    async with client_of(api(service)) as client:
        created = await client.post("/campaigns", json=draft("CMP-1", ["BR-001"]), headers=manager)
        assert_problem(created, 403, "forbidden")
        created = await client.post(
            "/campaigns", json=draft("CMP-1", ["BR-001"]), headers=branch_manager
        )
        assert created.status_code == 201, created.text
        for command, body in (("schedule", SCHEDULE), ("start", {}), ("complete", {})):
            refused = await client.post(f"/campaigns/CMP-1/{command}", json=body, headers=manager)
            assert_problem(refused, 403, "forbidden")
            done = await client.post(
                f"/campaigns/CMP-1/{command}", json=body, headers=branch_manager
            )
            assert done.status_code == 200, done.text
        analyst = await client.post(
            "/campaigns/CMP-1/cancel", json={"reason": "x"}, headers=headers("HO-0001")
        )
        assert_problem(analyst, 403, "forbidden")


OWNER = st.sampled_from(sorted(MANAGERS.items()))
BOOKS = st.dictionaries(
    st.sampled_from([f"C{n}" for n in range(1, 9)]),
    st.tuples(OWNER, OWNER),  # the owner when the campaign started, the owner today
    min_size=1,
)


def test_responses_and_counts_follow_the_customers_owners_today(
    service: CampaignService,
) -> None:
    app = api(service)
    numbers = itertools.count()

    @settings(max_examples=60, deadline=None)
    @given(caller=st.sampled_from(CALLERS), book=BOOKS)
    def attempt(caller: str, book: dict[str, tuple[tuple[str, str], tuple[str, str]]]) -> None:
        asyncio.run(report(caller, book, f"CMP-{next(numbers)}"))

    async def report(
        caller: str, book: dict[str, tuple[tuple[str, str], tuple[str, str]]], campaign_id: str
    ) -> None:
        service.audience = FixedAudience(
            [customer(c, *at_start) for c, (at_start, _) in book.items()]
        )
        service.access.book = FixedCustomerBook(
            {c: {"manager_id": m, "branch_id": b} for c, (_, (m, b)) in book.items()}
        )
        in_reach = {c for c, (_, today) in book.items() if sees(caller, *today)}
        as_caller = headers(caller)
        async with client_of(app) as client:
            await client.post("/campaigns", json=draft(campaign_id), headers=CRM)
            await client.post(f"/campaigns/{campaign_id}/schedule", json=SCHEDULE, headers=CRM)
            started = await client.post(f"/campaigns/{campaign_id}/start", json={}, headers=CRM)
            assert started.json()["targeted"] == len(book)

            read = await client.get(f"/campaigns/{campaign_id}", headers=as_caller)
            if caller in READERS:
                assert read.json()["targeted"] == len(in_reach)
                assert bool(read.json()["call_lists"]) == (caller in WHOLE_BOOK)
            else:
                assert_problem(read, 403, "forbidden")

            async def respond(customer_id: str) -> httpx.Response:
                response = {
                    "customer_id": customer_id,
                    "channel": "sms",
                    "stage": "responded",
                    "occurred_at": "2026-03-02T10:00:00+08:00",
                }
                url = f"/campaigns/{campaign_id}/responses"
                return await client.post(url, json=response, headers=as_caller)

            missing = await respond("C-NONE")
            for customer_id in book:
                answer = await respond(customer_id)
                if caller not in WRITERS:
                    assert_problem(answer, 403, "forbidden")
                elif customer_id in in_reach:
                    assert answer.json()["recorded"] is True, answer.text
                else:  # exactly what a customer who does not exist answers
                    assert_problem(answer, 404, "customer-not-found")
                    assert answer.json() == {
                        k: v.replace("C-NONE", customer_id) if isinstance(v, str) else v
                        for k, v in missing.json().items()
                    }

    attempt()
