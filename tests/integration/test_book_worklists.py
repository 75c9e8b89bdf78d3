"""The churn and cross-sell worklists and the dormancy rule's candidates on the genuine
MongoDB, over a generated book (``book_scenario.py``).

Records go straight to the projection engines (the single customer view and the balance
history, no Kafka), so the test decides the order: streams interleaved, redelivered
records, whole streams arriving late. Whatever the order, every reader's worklists are
the ones computed in ``book_scenario`` from the plain facts the events were made from,
narrowed to the reader's book (``docs/access.md``).
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from crm_backbone.cursor import InvalidCursor
from crm_backbone.projection import Document, Projection, ProjectionEngine
from crm_backbone.testing import InMemoryRecord, NoDeadLetters, interleave
from crm_customer.balance_history import BalanceHistory
from crm_customer.churn import SignalKind
from crm_customer.cross_sell import CrossSellRule
from crm_customer.views import CustomerViews
from crm_customer.worklists import BookFilter, BookWorklists
from crm_events.topics import CONTACTLOG_EVENTS, COREBANKING_ACCOUNTS, OPPORTUNITY_EVENTS
from local_infra.pytest_plugin import Servers
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from tests.integration.book_scenario import (
    Person,
    book_day,
    expected_churn,
    expected_cross_sell,
    expected_dormant,
    generate,
    in_reach,
    streams,
)
from tests.integration.test_customer_scope import reach_of

pytestmark = pytest.mark.integration

ORIGIN = date(2026, 3, 2)
CUSTOMERS = 48
RULE = CrossSellRule(min_rate_percent=Decimal(40), min_segment_customers=5)
LATER = datetime(2030, 1, 1, tzinfo=UTC)
"""A clock past the book: its time is the last balance change's."""
READERS = ("RM-0001", "RM-0005", "BM-0001", "HO-0001")


@pytest.fixture
async def client(crm_servers: Servers) -> AsyncIterator[AsyncMongoClient[Document]]:
    mongo: AsyncMongoClient[Document] = AsyncMongoClient(crm_servers.mongo_uri, tz_aware=True)
    yield mongo
    await mongo.close()


def delivery(records: list[list[InMemoryRecord]], variant: int) -> list[InMemoryRecord]:
    """The records as one consumer might receive them: interleaved (each aggregate in its
    order); redelivered (copies after their originals); or with the contact-log and
    opportunity streams late, after everything else."""
    rng = random.Random(variant)
    if variant == 2:
        late = {CONTACTLOG_EVENTS.name, OPPORTUNITY_EVENTS.name}
        early = [s for s in records if s[0].topic == COREBANKING_ACCOUNTS.name]
        rest = [s for s in records if s not in early and s[0].topic not in late]
        behind = [s for s in records if s[0].topic in late]
        merged = [*interleave(early, rng), *interleave(rest, rng), *interleave(behind, rng)]
    else:
        merged = interleave(records, rng)
    return merged if variant == 0 else redelivered(merged, rng, 0.1)


def redelivered(
    records: list[InMemoryRecord], rng: random.Random, rate: float
) -> list[InMemoryRecord]:
    """``records`` with, after about one in ``1 / rate``, the last few again, as a batch
    delivered again after a lost commit."""
    out: list[InMemoryRecord] = []
    for record in records:
        out.append(record)
        if rng.random() < rate:
            out += out[-rng.randint(1, 10) :]
    return out


async def project(
    database: AsyncDatabase[Document],
    records: list[InMemoryRecord],
    rng: random.Random,
    projections: tuple[Projection, ...] = (CustomerViews(), BalanceHistory()),
) -> None:
    """Each projection's records, through its engine, in batches of drawn sizes."""
    for projection in projections:
        engine = ProjectionEngine(projection, database, NoDeadLetters(), projection.name)
        await engine.setup()
        mine = [r for r in records if r.topic in projection.topics]
        start = 0
        while start < len(mine):
            size = rng.choice([1, 7, 50])
            await engine.process(mine[start : start + size])
            start += size


async def every_page(worklists: BookWorklists, staff_id: str, kind: str) -> list[dict[str, Any]]:
    reach = await reach_of(staff_id)
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        if kind == "churn":
            page = await worklists.churn_page(reach, BookFilter(), limit=3, cursor=cursor)
        else:
            page, _ = await worklists.cross_sell_page(reach, BookFilter(), limit=3, cursor=cursor)
        items += page.items
        if page.next_cursor is None:
            return items
        cursor = page.next_cursor


def churn_found(items: list[dict[str, Any]]) -> dict[str, list[str]]:
    return {i["customer_id"]: [s["kind"] for s in i["signals"]] for i in items}


def gaps_found(items: list[dict[str, Any]]) -> dict[str, list[str]]:
    return {i["customer_id"]: [g["product_type"] for g in i["gaps"]] for i in items}


async def test_worklists_are_the_book_s_whatever_the_order_of_delivery(
    client: AsyncMongoClient[Document], mongo_database: str
) -> None:
    book = generate(seed=16, customers=CUSTOMERS, origin=ORIGIN)
    records = streams(book, ORIGIN)
    today = book_day(book)
    churn = {p.customer_id: expected_churn(p, today) for p in book}
    churn = {cid: kinds for cid, kinds in churn.items() if kinds}
    cross_sell = expected_cross_sell(book, min_rate=40, min_customers=5)
    dormant = sorted(p.customer_id for p in book if expected_dormant(p, today))
    assert churn, "the book shows churn signals"
    assert cross_sell, "the book shows cross-sell gaps"
    assert dormant, "the book has quiet customers"
    for variant in range(3):
        database = client[f"{mongo_database}_{variant}"]
        try:
            await project(database, delivery(records, variant), random.Random(variant))
            worklists = BookWorklists(database, cross_sell=RULE, clock=lambda: LATER)
            page = await worklists.churn_page(await reach_of("HO-0001"), BookFilter(), limit=200)
            assert page.as_of == ORIGIN + timedelta(days=today)
            for staff_id in READERS:
                mine = {p.customer_id for p in book if in_reach(staff_id, p)}
                found = churn_found(await every_page(worklists, staff_id, "churn"))
                assert found == {c: k for c, k in churn.items() if c in mine}, (variant, staff_id)
                found = gaps_found(await every_page(worklists, staff_id, "cross-sell"))
                assert found == {c: g for c, g in cross_sell.items() if c in mine}, staff_id
            due = await worklists.dormancy_due(90)
            assert sorted(customer_id for customer_id, _, _ in due) == dormant, variant
        finally:
            await client.drop_database(database.name)


async def test_filters_masking_and_the_book_s_time(
    client: AsyncMongoClient[Document], mongo_database: str
) -> None:
    book = generate(seed=17, customers=CUSTOMERS, origin=ORIGIN)
    today = book_day(book)
    database = client[mongo_database]
    await project(database, delivery(streams(book, ORIGIN), 0), random.Random(0))
    worklists = BookWorklists(database, cross_sell=RULE, clock=lambda: LATER)
    analyst = await reach_of("HO-0001")

    def by_kind(person: Person, kind: str) -> bool:
        return kind in expected_churn(person, today)

    page = await worklists.churn_page(analyst, BookFilter(), SignalKind.OPEN_COMPLAINT, limit=200)
    assert [i["customer_id"] for i in page.items] == [
        p.customer_id for p in book if by_kind(p, "open_complaint")
    ]
    assert all("*" in i["name"]["full_name"] for i in page.items)  # masked for the analyst
    branch = await worklists.churn_page(analyst, BookFilter(branch_id="BR-002"), limit=200)
    assert {i["branch_id"] for i in branch.items} == {"BR-002"}
    named = await worklists.churn_page(analyst, BookFilter(name="book c000"), limit=200)
    assert {i["customer_id"] for i in named.items} <= {f"C000{n}" for n in range(10)}
    gaps = expected_cross_sell(book, min_rate=40, min_customers=5)
    wanted = next(iter(gaps.values()))[0]
    page, segments = await worklists.cross_sell_page(analyst, BookFilter(), wanted, limit=200)
    assert [i["customer_id"] for i in page.items] == sorted(
        c for c, g in gaps.items() if wanted in g
    )
    assert set(segments) <= {"high", "medium", "low"}
    # A cursor naming a customer out of the caller's reach is refused, as a forged one.
    rm5 = await reach_of("RM-0005")
    theirs = await worklists.churn_page(await reach_of("RM-0001"), BookFilter(), limit=1)
    assert theirs.next_cursor is not None
    with pytest.raises(InvalidCursor):
        await worklists.churn_page(rm5, BookFilter(), cursor=theirs.next_cursor)
    # The book's time never runs ahead of the clock.
    earlier = ORIGIN + timedelta(days=today - 40)
    stopped = BookWorklists(
        database, clock=lambda: datetime.combine(earlier, datetime.min.time(), UTC)
    )
    assert (await stopped.churn_page(analyst, BookFilter(), limit=1)).as_of == earlier
