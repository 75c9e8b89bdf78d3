"""Manager performance and the league table on the genuine MongoDB, over a generated book
(``performance_scenario.py``).

Records go straight to the projection engines (the performance read model and the
organisation, no Kafka), so the test decides the order: streams interleaved, batches
redelivered, the customers' owners arriving after everything else, the balances last.
Whatever the order, every reader's league is the one worked out day by day in the test
from the facts the events were made from: figures, ranks, the previous period's and what
each reader may see (``docs/analysis.md``).
"""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from collections.abc import Mapping
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from crm_backbone.organisation import OrganisationView
from crm_backbone.projection import Document
from crm_backbone.rebuild import rebuild
from crm_backbone.testing import InMemoryRecord, interleave
from crm_backbone.topic_names import TopicNames
from crm_customer.bootstrap import CustomerService
from crm_customer.performance import GroupBy, Period, PeriodKind
from crm_customer.performance_models import Figures
from crm_customer.performance_queries import PerformanceQueries
from crm_customer.performance_view import BOOKS, FACTS, POSITIONS, ManagerPerformanceView
from crm_events.topics import COREBANKING_ACCOUNTS, CUSTOMER_EVENTS
from crm_ops.kafka_state import ops_login
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from local_infra.harness import produce_plain
from local_infra.pytest_plugin import Servers
from local_infra.tokens import RealmTokens
from pydantic import BaseModel
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from tests.integration.book_scenario import Account
from tests.integration.conftest import eventually
from tests.integration.performance_scenario import (
    MANAGERS,
    RATES,
    REGIONS,
    Customer,
    expected_tallies,
    generate,
    organisation,
    streams,
)
from tests.integration.test_book_worklists import (
    client,  # noqa: F401 (a fixture)
    redelivered,
)
from tests.integration.test_book_worklists import project as project_with
from tests.integration.test_customer_scope import (
    reach_of,
    service,  # noqa: F401 (a fixture)
)

pytestmark = pytest.mark.integration

ORIGIN = date(2026, 2, 10)
SPAN = 60
READERS = ("RM-0001", "BM-0001", "RH-0001", "HO-0001")
VISIBLE_BRANCHES = {
    "RM-0001": set(),
    "BM-0001": {"BR-001"},
    "RH-0001": {"BR-001", "BR-002"},
    "HO-0001": set(REGIONS),
}
PERIODS = (
    (PeriodKind.MONTH, date(2026, 3, 17)),
    (PeriodKind.DAY, date(2026, 3, 15)),
    (PeriodKind.YEAR, date(2026, 6, 1)),
    (PeriodKind.MONTH, date(2026, 4, 30)),
)


def delivery(records: list[list[InMemoryRecord]], variant: int) -> list[InMemoryRecord]:
    """Interleaved (each aggregate in its order); then redelivered batches; then with the
    customers' events (owners) last; then with the balances last."""
    rng = random.Random(variant)
    if variant >= 2:
        late = CUSTOMER_EVENTS.name if variant == 2 else COREBANKING_ACCOUNTS.name
        first = [s for s in records if s[0].topic != late]
        behind = [s for s in records if s[0].topic == late]
        merged = [*interleave(first, rng), *interleave(behind, rng)]
    else:
        merged = interleave(records, rng)
    return merged if variant == 0 else redelivered(merged, rng, 0.15)


async def project(
    database: AsyncDatabase[Document], records: list[InMemoryRecord], rng: random.Random
) -> None:
    await project_with(database, records, rng, (ManagerPerformanceView(), OrganisationView()))


def period_of(kind: PeriodKind, day: date) -> tuple[date, date]:
    if kind == PeriodKind.DAY:
        return day, day
    if kind == PeriodKind.YEAR:
        return date(day.year, 1, 1), date(day.year, 12, 31)
    following = (day.replace(day=28) + timedelta(days=4)).replace(day=1)
    return day.replace(day=1), following - timedelta(days=1)


def previous_of(kind: PeriodKind, first: date) -> tuple[date, date]:
    return period_of(kind, first - timedelta(days=1))


def row_key(group_by: GroupBy, manager: str) -> str:
    branch = MANAGERS[manager]
    return {"manager": manager, "branch": branch, "region": REGIONS[branch]}[group_by.value]


def expected_figures(
    book: list[Customer], kind: PeriodKind, first: date, last: date, group_by: GroupBy
) -> dict[str, dict[str, Any]]:
    """Row key → the figures shown, folded from the managers' and derived by hand."""
    folded: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for manager, sums in expected_tallies(book, ORIGIN, first, last).items():
        row = folded[row_key(group_by, manager)]
        for name, value in sums.items():
            row[name] += value
    days = (last - first).days + 1
    out: dict[str, dict[str, Any]] = {}
    for key, sums in folded.items():
        # Counts, period ends and the value won are the sums as they are (zero when none).
        figures: dict[str, Any] = {name: sums[name] for name in Figures.model_fields}
        for name in ("deposits", "loans", "aum"):
            figures[f"{name}_daily_average"] = round(sums[f"{name}_day_sum"] / days, 2)
        customers = sums["customers"]
        figures["products_per_customer"] = (
            round(sums["products"] / customers, 2) if customers else None
        )
        out[key] = figures
    return out


def competition_ranks(values: Mapping[str, Decimal]) -> dict[str, int]:
    return {
        key: 1 + sum(1 for other in values.values() if other > value)
        for key, value in values.items()
    }


def sees(reader: str, group_by: GroupBy, key: str) -> bool:
    branches = VISIBLE_BRANCHES[reader]
    if reader == "RM-0001":
        return group_by == GroupBy.MANAGER and key == "RM-0001"
    if group_by == GroupBy.MANAGER:
        return MANAGERS[key] in branches
    if group_by == GroupBy.BRANCH:
        return key in branches
    return {b for b, r in REGIONS.items() if r == key} <= branches


def numbers(figures: BaseModel | None) -> dict[str, Any] | None:
    """A row's figures as numbers (amounts are shown as text)."""
    if figures is None:
        return None
    dumped = figures.model_dump()
    return {k: Decimal(v) if isinstance(v, str) else v for k, v in dumped.items()}


def shown_key(row: dict[str, Any]) -> str:
    key = row["manager_id"] or row["branch_id"] or row["region_id"]
    assert isinstance(key, str)
    return key


async def check_league(
    queries: PerformanceQueries, book: list[Customer], kind: PeriodKind, at: date, group_by: GroupBy
) -> None:
    first, last = period_of(kind, at)
    now = expected_figures(book, kind, first, last, group_by)
    before = expected_figures(book, kind, *previous_of(kind, first), group_by)
    rank_now = competition_ranks({k: f["aum_daily_average"] for k, f in now.items()})
    rank_before = competition_ranks({k: f["aum_daily_average"] for k, f in before.items()})
    for reader in READERS:
        table = await queries.league(
            kind, at, group_by, "aum_daily_average", await reach_of(reader)
        )
        assert (table.start, table.end) == (first, last)
        assert table.ranked == len(now)
        rows = {shown_key(r.model_dump()): r for r in table.rows}
        assert set(rows) == {k for k in now if sees(reader, group_by, k)}, (reader, kind, group_by)
        for key, row in rows.items():
            assert numbers(row.figures) == now[key], (reader, kind, at, group_by, key)
            assert row.rank == rank_now[key]
            assert row.previous_rank == rank_before.get(key)
            previous = before.get(key)
            assert numbers(row.previous) == previous
            if previous is not None:
                assert row.change is not None
                assert row.change.aum_daily_average == (
                    now[key]["aum_daily_average"] - previous["aum_daily_average"]
                )
        assert [r.rank for r in table.rows] == sorted(r.rank for r in table.rows)


async def test_the_league_is_the_book_s_whatever_the_order_of_delivery(
    client: AsyncMongoClient[Document],  # noqa: F811
    mongo_database: str,
) -> None:
    book = generate(seed=16, customers=40, span=SPAN)
    records = streams(book, ORIGIN) + organisation(ORIGIN)
    assert any(len(p.owners) > 1 for p in book), "some customers change managers"
    assert any(p.won for p in book)
    assert any(p.complaints for p in book)
    for variant in range(4):
        database = client[f"{mongo_database}_{variant}"]
        try:
            await project(database, delivery(records, variant), random.Random(variant))
            queries = PerformanceQueries(database, "CNY", RATES)
            for kind, at in PERIODS:
                for group_by in GroupBy:
                    await check_league(queries, book, kind, at, group_by)
        finally:
            await client.drop_database(database.name)


@st.composite
def one_customer(draw: st.DrawFn) -> Customer:
    """A customer whose owners change on drawn days (several on one day at times), with
    accounts changing on drawn days (several on one day at times)."""
    registered = draw(st.integers(0, 25))
    later = st.integers(registered, SPAN - 1)
    managers = st.sampled_from(sorted(MANAGERS))
    owners = [(registered, draw(managers))]
    owners += sorted(draw(st.lists(st.tuples(later, managers), max_size=3)), key=lambda o: o[0])
    accounts = []
    for n in range(draw(st.integers(1, 2))):
        changes = draw(st.lists(st.tuples(later, st.integers(0, 10**7)), min_size=1, max_size=8))
        kind = draw(st.sampled_from(["current", "time_deposit", "loan", "fund"]))
        account = Account(f"AC-H-{n}", kind, draw(st.sampled_from(sorted(RATES))), registered)
        account.balances = sorted(changes, key=lambda c: c[0])
        accounts.append(account)
    return Customer("C80000001", registered, owners, accounts=accounts)


async def daily_positions_of(
    mongo_uri: str, database_name: str, customer: Customer, kind: PeriodKind, at: date
) -> None:
    mongo: AsyncMongoClient[Document] = AsyncMongoClient(mongo_uri, tz_aware=True)
    try:
        await mongo.drop_database(database_name)
        database = mongo[database_name]
        records = delivery(streams([customer], ORIGIN), variant=1)
        await project(database, records, random.Random(1))
        period = Period.holding(kind, at)
        found = await PerformanceQueries(database, "CNY", RATES).tallies(period)
        expected = expected_tallies([customer], ORIGIN, period.start, period.end)
        positions = [
            f"{name}_{part}" for name in ("deposits", "loans", "aum") for part in ("day_sum", "end")
        ]
        assert {
            manager: {name: tally.amounts[name] for name in positions}
            for (manager, _), tally in found.items()
        } == {
            manager: {name: sums[name] for name in positions} for manager, sums in expected.items()
        }
    finally:
        await mongo.drop_database(database_name)
        await mongo.close()


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(customer=one_customer(), period=st.sampled_from(PERIODS))
def test_daily_sums_and_period_ends_are_the_day_by_day_walk(
    crm_servers: Servers, mongo_database: str, customer: Customer, period: tuple[PeriodKind, date]
) -> None:
    """The daily average's arithmetic: the sum over the period's days of each day's
    closing (carried forward, zero before the first change), credited to the owner of the
    day; and the period end's closing, whatever owners change and however many changes a
    day holds."""
    asyncio.run(daily_positions_of(crm_servers.mongo_uri, f"{mongo_database}_h", customer, *period))


async def test_the_league_over_http_from_kafka_and_rebuilt(
    service: tuple[CustomerService, str],  # noqa: F811
    crm_servers: Servers,
    topic_prefix: str,
    realm_tokens: RealmTokens,
) -> None:
    """The customer service on the genuine Kafka, MongoDB and Keycloak: the book's events
    published by their owners, interleaved and partly twice; the league over HTTP is the
    one worked out here, for the analyst (every manager) and a relationship manager (their
    own row, their rank); ``crm-ops rebuild`` gives the documents the live consumer built."""
    handle, url = service
    book = generate(seed=7, customers=20, span=SPAN)
    aggregates = streams(book, ORIGIN)
    sent = delivery(aggregates, variant=1)
    records = [(r.topic, (r.key or b"", r.value or b"", list(r.headers))) for r in sent]
    await produce_plain(crm_servers.kafka_bootstrap, records, name=TopicNames(topic_prefix))
    first, last = period_of(PeriodKind.MONTH, date(2026, 3, 1))
    expected = expected_figures(book, PeriodKind.MONTH, first, last, GroupBy.MANAGER)
    ranked = competition_ranks({k: f["aum_daily_average"] for k, f in expected.items()})
    analyst, rm = realm_tokens.staff("ho-0001"), realm_tokens.staff("rm-0001")
    params = {"period": "month", "at": "2026-03-01", "group_by": "manager"}
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:

        async def league(headers: dict[str, str]) -> dict[str, Any]:
            answer = await http.get("/performance", params=params, headers=headers)
            assert answer.status_code == 200, answer.text
            body: dict[str, Any] = answer.json()
            return body

        def figures(body: dict[str, Any]) -> dict[str, dict[str, Any] | None]:
            return {
                row["manager_id"]: numbers(Figures.model_validate(row["figures"]))
                for row in body["rows"]
            }

        applied = handle.database[f"{ManagerPerformanceView.name}__positions"]
        every_version = sum(len(stream) for stream in aggregates)

        async def projected() -> bool:
            versions: list[int] = [p["version"] async for p in applied.find()]
            return sum(versions) == every_version

        await eventually(projected, "every event reached the read model")
        assert figures(await league(analyst)) == expected
        whole = await league(analyst)
        assert {r["manager_id"]: r["rank"] for r in whole["rows"]} == ranked
        own = await league(rm)
        assert own["ranked"] == len(expected)
        assert [(r["manager_id"], r["rank"]) for r in own["rows"]] == [
            ("RM-0001", ranked["RM-0001"])
        ]

        collections = (POSITIONS, BOOKS, FACTS)
        live = {c: [d async for d in handle.database[c].find().sort("_id")] for c in collections}
        await rebuild(
            ManagerPerformanceView(),
            handle.database,
            bootstrap=crm_servers.kafka_bootstrap,
            login=ops_login(),
            live_group=handle.runtime.group(ManagerPerformanceView.name),
            topics=TopicNames(topic_prefix).of(ManagerPerformanceView.topics),
        )
        for collection in collections:
            rebuilt = [d async for d in handle.database[collection].find().sort("_id")]
            assert rebuilt == live[collection], collection
        assert await league(analyst) == whole
