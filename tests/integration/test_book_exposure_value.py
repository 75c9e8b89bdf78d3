"""Credit exposure and customer value on the genuine servers, end to end.

The customer service runs with its workers on the test's own topics; customers, their
group and segments are made through its API with the genuine Keycloak's tokens; core
banking, the credit system and management accounting publish to Kafka as their own
principals, each aggregate's versions out of order (a late version, which changes
nothing) and every event twice. The figures the API answers are compared with those worked
out by hand from the events sent (``book_upstream.py``), for a relationship manager (their
own book) and the head-office analyst (the whole bank). ``crm-ops rebuild`` of both views
gives the documents the live consumers built, and the same answers.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import httpx
import pytest
from crm_backbone.projection import Projection
from crm_backbone.rebuild import rebuild
from crm_backbone.topic_names import TopicNames
from crm_customer.bootstrap import CustomerService
from crm_customer.contributions import CONTRIBUTIONS, ContributionsView
from crm_customer.credit_facilities import FACILITIES, CreditFacilitiesView
from crm_ops.kafka_state import ops_login
from local_infra.harness import assert_problem, produce_plain
from local_infra.pytest_plugin import Servers
from local_infra.tokens import RealmTokens

from tests.integration.book_upstream import (
    Book,
    Expected,
    disordered,
    expected_exposure,
    expected_pareto,
    expected_values,
    latest,
)
from tests.integration.conftest import eventually
from tests.integration.test_customer_scope import service, staff_known

__all__ = ["service", "staff_known"]  # the fixture, used here

pytestmark = pytest.mark.integration

D = Decimal
AMOUNTS = {
    "limit",
    "drawn",
    "exposure",
    "exposure_drawn",
    "utilisation_percent",
    "direct_exposure",
    "guaranteed_exposure",
    "guaranteed_drawn",
    "total_exposure",
    "aum",
    "loans",
    "revenue",
    "cost",
    "contribution",
    "value",
    "share_percent",
    "cost_to_revenue",
    "median_value",
}


def exact(answer: Any) -> Any:
    """``answer`` with its amounts (text) as decimals, so ``"1500000"`` equals 1500000.00."""
    if isinstance(answer, dict):
        return {
            k: D(v) if k in AMOUNTS and isinstance(v, str) else exact(v) for k, v in answer.items()
        }
    if isinstance(answer, list):
        return [exact(v) for v in answer]
    return answer


async def set_up_book(client: httpx.AsyncClient, book: Book, realm_tokens: RealmTokens) -> None:
    """The customers, their group and segments, through the API as the CRM's service."""
    service_account = realm_tokens.service("crm-customer")
    owners = {book.a: "RM-0001", book.b: "RM-0001", book.c: "RM-0001", book.d: "RM-0005"}
    for customer_id, manager in owners.items():
        body = {
            "customer_id": customer_id,
            "customer_type": "corporate",
            "name": {"full_name": f"Book {customer_id} Co., Ltd."},
            "branch_id": "BR-001" if manager == "RM-0001" else "BR-002",
            "manager_id": manager,
        }
        created = await client.post("/customers", json=body, headers=service_account)
        assert created.status_code == 201, created.text
    for customer_id in (book.a, book.b, book.d):
        joined = await client.post(
            f"/customers/{customer_id}/groups",
            json={
                "group_id": book.group,
                "group_type": "corporate_group",
                "group_name": "Book group",
                "role": "member",
                "joined_on": "2026-01-01",
            },
            headers=service_account,
        )
        assert joined.status_code == 200, joined.text
    for customer_id, band in ((book.a, "low"), (book.b, "low"), (book.d, "high")):
        segment = {"value_band": band, "reason": "last year's review"}
        changed = await client.post(
            f"/customers/{customer_id}/segment", json=segment, headers=service_account
        )
        assert changed.status_code == 200, changed.text


async def publish(servers: Servers, prefix: str, book: Book) -> None:
    """Every upstream event of ``book``, out of order and twice, each system as itself."""
    route = TopicNames(prefix)
    sent = [*book.accounts(), *disordered(book.facilities()), *disordered(book.statements())]
    records = [event.record(route, n) for n, event in enumerate(sent)]
    await produce_plain(servers.kafka_bootstrap, records)


async def answered(
    client: httpx.AsyncClient, path: str, headers: dict[str, str], ready: Callable[[Any], bool]
) -> Any:
    """The answer to ``path`` once ``ready`` (bounded: the views catch up), else the last
    one, for the assertions that follow to show what differs."""
    last: dict[str, Any] = {}

    async def done() -> bool:
        response = await client.get(path, headers=headers)
        last["answer"] = exact(response.json()) if response.status_code == 200 else response.text
        return ready(last["answer"])

    with contextlib.suppress(AssertionError):  # the assertions that follow show what differs
        await eventually(done, f"{path} answered as expected")
    return last["answer"]


def exposure_answer(expected: dict[str, Any]) -> dict[str, Any]:
    """The API's shape of :func:`expected_exposure`'s figures."""
    nxt = expected["next_maturity"]
    due = next((f for f in expected["facilities"] if f["facility_id"] == nxt), None)
    return {
        "by_currency": expected["by_currency"],
        "next_maturity": None
        if due is None
        else {
            "facility_id": nxt,
            "maturity_date": due["maturity_date"],
            "currency": due["currency"],
            "limit": due["limit"],
            "drawn": due["drawn"],
        },
        "facilities": [{**f, "facility_type": "revolving"} for f in expected["facilities"]],
    }


def value_answer(figures: Expected, manager: str, segment: str | None) -> dict[str, Any]:
    return {
        "customer_id": figures.customer_id,
        "manager_id": manager,
        "segment": segment,
        "band": figures.band,
        "currency": "CNY",
        "contribution_months": ["2025-11", "2026-10"],
        "aum": figures.aum,
        "loans": figures.loans,
        "revenue": figures.revenue,
        "cost": figures.cost,
        "contribution": figures.contribution,
        "value": figures.value,
    }


async def test_exposure_and_value_from_disordered_upstream_events(
    service: tuple[CustomerService, str],
    crm_servers: Servers,
    topic_prefix: str,
    realm_tokens: RealmTokens,
    unique_name: Callable[[str], str],
) -> None:
    handle, url = service
    book = Book(unique_name("")[-8:])
    rm, analyst = realm_tokens.staff("rm-0001"), realm_tokens.staff("ho-0001")
    facilities = latest(book.facilities())
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        await set_up_book(client, book, realm_tokens)
        await publish(crm_servers, topic_prefix, book)

        # A, as their manager sees them: D, out of their book, is not named.
        mine = {book.a, book.b, book.c}
        expected = exposure_answer(expected_exposure({book.a}, facilities, mine))
        expected["customer_id"] = book.a
        got = await answered(client, f"/customers/{book.a}/exposure", rm, expected.__eq__)
        assert got == expected
        cny = got["by_currency"][0]
        assert (cny["total_exposure"], cny["utilisation_percent"]) == (D(1_700_000), D(20))
        assert got["next_maturity"]["facility_id"] == f"CF-{book.run}-5"

        # The group: its members in reach; the analyst counts D, and D's facility once.
        for reader, members in ((rm, [book.a, book.b]), (analyst, [book.a, book.b, book.d])):
            named = set(members) | ({book.c} if reader is rm else {book.c, book.d})
            expected_group = exposure_answer(expected_exposure(set(members), facilities, named))
            expected_group |= {"group_id": book.group, "members": sorted(members)}
            path = f"/groups/{book.group}/exposure"
            got = await answered(client, path, reader, expected_group.__eq__)
            assert got == expected_group
        assert got["by_currency"][0]["total_exposure"] == D(2_700_000)

        # Customer value: each customer, the book's figures and Pareto shares, the reviews.
        await check_value(client, book, rm, [book.a, book.b, book.c])
        await check_value(client, book, analyst, [book.a, book.b, book.c, book.d])

        # Out of reach is missing; a group with no member in reach too.
        for path in (f"/customers/{book.d}/exposure", f"/customers/{book.d}/value"):
            assert_problem(await client.get(path, headers=rm), 404, "customer-not-found")
        other = realm_tokens.staff("rm-0002")
        assert_problem(
            await client.get(f"/groups/{book.group}/exposure", headers=other),
            404,
            "group-not-found",
        )
        assert (await client.get("/analysis/value", headers=other)).json()["customers"] == 0

        # crm-ops rebuild gives the documents the live consumers built, and the same answers.
        exposure = (await client.get(f"/groups/{book.group}/exposure", headers=analyst)).json()
        value = (await client.get("/analysis/value", headers=analyst)).json()
        views: list[tuple[Projection, str]] = [
            (CreditFacilitiesView(), FACILITIES),
            (ContributionsView(), CONTRIBUTIONS),
        ]
        for view, collection in views:
            live = [d async for d in handle.database[collection].find().sort("_id")]
            assert live
            await rebuild(
                view,
                handle.database,
                bootstrap=crm_servers.kafka_bootstrap,
                login=ops_login(),
                live_group=handle.runtime.group(view.name),
                topics=TopicNames(topic_prefix).of(view.topics),
            )
            rebuilt = [d async for d in handle.database[collection].find().sort("_id")]
            assert rebuilt == live, view.name
        path = f"/groups/{book.group}/exposure"
        assert (await client.get(path, headers=analyst)).json() == exposure
        assert (await client.get("/analysis/value", headers=analyst)).json() == value


SEGMENTS = {"A": "low", "B": "low", "C": None, "D": "high"}
"""The segments :func:`set_up_book` gives, by the customer's letter."""


async def check_value(
    client: httpx.AsyncClient, book: Book, reader: dict[str, str], customers: list[str]
) -> None:
    """The value figures ``reader`` gets about ``customers``, their book."""
    values = expected_values(book, sorted(customers))
    segments = {c: SEGMENTS[c[-1]] for c in customers}
    answer = value_answer(values[book.a], "RM-0001", "low")
    path = f"/customers/{book.a}/value"
    assert await answered(client, path, reader, answer.__eq__) == answer
    value = sum((v.value for v in values.values()), D(0))
    analysis = await answered(client, "/analysis/value", reader, lambda a: a["value"] == value)
    assert analysis["customers"] == len(customers)
    assert analysis["contribution_months"] == ["2025-11", "2026-10"]
    for figure in ("aum", "loans", "revenue", "cost", "contribution"):
        assert analysis[figure] == sum((getattr(v, figure) for v in values.values()), D(0))
    for curve, of in (("pareto_aum", "aum"), ("pareto_contribution", "contribution")):
        points = [(p["top_percent"], p["customers"], p["share_percent"]) for p in analysis[curve]]
        assert points == expected_pareto([getattr(v, of) for v in values.values()]), curve
    bottom = min(values.values(), key=lambda v: (v.contribution, v.customer_id))
    assert analysis["bottom_fifth"] == {
        "customers": 1,
        "revenue": bottom.revenue,
        "cost": bottom.cost,
        "contribution": bottom.contribution,
        "cost_to_revenue": round(bottom.cost / bottom.revenue, 2),
    }
    by_band = {d["key"]: d["customers"] for d in analysis["by_band"]}
    assert by_band == Counter(v.band for v in values.values())
    by_segment = {d["key"]: d["customers"] for d in analysis["by_segment"]}
    assert by_segment == Counter(s or "none" for s in segments.values())
    disagreeing = sorted(
        (c for c in customers if segments[c] and segments[c] != values[c].band),
        key=lambda c: (-values[c].value, c),
    )
    assert analysis["segment_reviews"] == len(disagreeing)
    reviews = exact((await client.get("/analysis/segment-reviews", headers=reader)).json())
    assert [r["customer_id"] for r in reviews["items"]] == disagreeing
    for review in reviews["items"]:
        figures = values[review["customer_id"]]
        assert (review["band"], review["value"]) == (figures.band, figures.value)
    assert values[book.a].band == "high"
