"""The single customer view on the genuine MongoDB: any order across streams, merges, search.

Records go straight to the projection engine (no Kafka) so that the test decides the
order in which the streams arrive.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from crm_backbone.projection import Document, ProjectionEngine
from crm_backbone.testing import InMemoryRecord, NoDeadLetters, interleave
from crm_customer.ownership import WHOLE_BOOK
from crm_customer.queries import CustomerQueries
from crm_customer.views import CustomerViews
from crm_events import campaign as cmp
from crm_events import contact_log as cl
from crm_events import core_banking as cb
from crm_events import customer as cu
from crm_events import opportunity as op
from crm_events.common import (
    Channel,
    CustomerName,
    CustomerType,
    IdDocument,
    IdDocumentKind,
    Money,
    ValueBand,
)
from crm_events.envelope import Envelope
from crm_events.registry import EventPayload
from crm_events.topics import Service
from local_infra.pytest_plugin import Servers
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
TODAY = date(2026, 11, 23)


@dataclass
class Streams:
    """Builds each producer's events with contiguous versions per aggregate."""

    versions: dict[str, int] = field(default_factory=dict)
    offsets: Iterator[int] = field(default_factory=itertools.count)

    def event(self, service: Service, aggregate_id: str, payload: EventPayload) -> InMemoryRecord:
        version = self.versions[aggregate_id] = self.versions.get(aggregate_id, 0) + 1
        envelope = Envelope.new(
            payload,
            aggregate_id,
            version,
            actor="test",
            source=service.source,
            time=T0 + timedelta(minutes=next(self.offsets)),
        )
        return InMemoryRecord.of(envelope, version)


def registration(name: str, phone: str, number: str) -> cu.CustomerRegistered:
    return cu.CustomerRegistered(
        customer_type=CustomerType.INDIVIDUAL,
        name=CustomerName(full_name=name, family_name=name.split()[0]),
        status=cu.CustomerStatus.ACTIVE,
        id_documents=[
            IdDocument(kind=IdDocumentKind.NATIONAL_ID, number=number, issuing_country="CN")
        ],
        birth_date=date(1980, 12, 2),
        phone=phone,
        branch_id="BR-001",
    )


def cny(amount: str) -> Money:
    return Money(amount=Decimal(amount), currency="CNY")


def bank_day(streams: Streams, customer: str) -> dict[str, list[InMemoryRecord]]:
    """One customer's events, per stream, each stream in its own order."""
    crm, core = Service.CUSTOMER, Service.CORE_BANKING
    s = streams
    return {
        "customer": [
            s.event(crm, customer, registration("Wang Fang", "+86 139 0000 0001", "110101A")),
            s.event(crm, customer, cu.CustomerSegmentChanged(value_band=ValueBand.HIGH, reason="")),
            s.event(
                crm, customer, cu.RelationshipManagerAssigned(manager_id="RM-7", branch_id="BR-002")
            ),
            s.event(crm, customer, cu.ConsentChanged(channel=Channel.SMS, opted_in=False)),
        ],
        "accounts": [
            s.event(
                core,
                "ACC.1",
                cb.AccountOpened(
                    customer_id=customer,
                    product_code="TD-1Y",
                    product_name="1Y deposit",
                    product_type=cb.ProductType.TIME_DEPOSIT,
                    currency="CNY",
                    branch_id="BR-001",
                    opened_on=date(2026, 1, 5),
                    maturity_date=date(2027, 1, 5),
                ),
            ),
            s.event(
                core,
                "ACC.1",
                cb.HoldingBalanceChanged(
                    customer_id=customer,
                    product_type=cb.ProductType.TIME_DEPOSIT,
                    previous_balance=cny("0"),
                    balance=cny("100000.00"),
                    changed_at=T0,
                ),
            ),
            s.event(
                core,
                "LOAN-1",
                cb.AccountOpened(
                    customer_id=customer,
                    product_code="ML",
                    product_name="Mortgage",
                    product_type=cb.ProductType.LOAN,
                    currency="CNY",
                    branch_id="BR-001",
                    opened_on=date(2026, 2, 1),
                ),
            ),
            s.event(
                core,
                "LOAN-1",
                cb.HoldingBalanceChanged(
                    customer_id=customer,
                    product_type=cb.ProductType.LOAN,
                    previous_balance=cny("0"),
                    balance=cny("500000.50"),
                    changed_at=T0 + timedelta(days=3),
                ),
            ),
        ],
        "opportunities": [
            s.event(
                Service.OPPORTUNITY,
                "OPP-1",
                op.OpportunityCreated(
                    customer_id=customer,
                    title="Wealth plan",
                    products=["WM-1"],
                    probability=20,
                    expected_value=cny("200000"),
                    start_date=date(2026, 11, 1),
                    expected_close_date=date(2026, 12, 31),
                    manager_id="RM-7",
                    branch_id="BR-002",
                    source=op.LeadSource.RELATIONSHIP_MANAGER,
                ),
            ),
            s.event(
                Service.OPPORTUNITY,
                "OPP-1",
                op.OpportunityStageChanged(
                    customer_id=customer,
                    previous_stage=op.OpportunityStage.OPPORTUNITY_CREATED,
                    stage=op.OpportunityStage.PROPOSAL,
                    probability=50,
                ),
            ),
        ],
        "contacts": [
            s.event(
                Service.CONTACT_LOG,
                f"CT-{i}",
                cl.ContactLogged(
                    customer_id=customer,
                    category=cl.ContactCategory.PHONE,
                    summary=f"call {i}",
                    called=True,
                    outcome=cl.ContactOutcome.REACHED,
                    manager_id="RM-7",
                    started_at=T0 + timedelta(days=i),
                ),
            )
            for i in range(12)
        ],
        "campaigns": [
            s.event(
                Service.CAMPAIGN,
                "CMP-1",
                cmp.CampaignStarted(
                    targets=[
                        cmp.Target(
                            customer_id=customer,
                            channel=Channel.EMAIL,
                            segment=cmp.Segment(value_band=ValueBand.HIGH),
                        )
                    ]
                ),
            ),
            s.event(
                Service.CAMPAIGN,
                "CMP-1",
                cmp.CampaignResponseRecorded(
                    customer_id=customer,
                    channel=Channel.EMAIL,
                    stage=cmp.ResponseStage.OPENED,
                    occurred_at=T0,
                ),
            ),
        ],
    }


async def project(
    database: AsyncDatabase[Document], records: list[InMemoryRecord], batch: int
) -> CustomerQueries:
    views = CustomerViews()
    engine = ProjectionEngine(views, database, NoDeadLetters(), "test")
    await engine.setup()
    for start in range(0, len(records), batch):
        await engine.process(records[start : start + batch])
    return CustomerQueries(database, today=lambda: TODAY)


@pytest.fixture
async def database(
    crm_servers: Servers, mongo_database: str
) -> AsyncIterator[AsyncDatabase[Document]]:
    client: AsyncMongoClient[Document] = AsyncMongoClient(crm_servers.mongo_uri, tz_aware=True)
    yield client[mongo_database]
    await client.close()


def comparable(view: Any) -> dict[str, Any]:
    return view.model_dump(exclude={"updated_at"})  # type: ignore[no-any-return]


async def test_the_view_is_the_same_whatever_order_the_streams_arrive_in(
    database: AsyncDatabase[Document],
) -> None:
    streams = bank_day(Streams(), "C1")
    reference = None
    for seed in range(4):
        rng = random.Random(seed)
        ordered = database.client[f"{database.name}_{seed}"]
        try:
            queries = await project(
                ordered, interleave(streams.values(), rng), batch=rng.choice([1, 3, 50])
            )
            view = await queries.view("C1", WHOLE_BOOK)
        finally:
            await database.client.drop_database(ordered.name)
        assert view is not None
        if reference is None:
            reference = comparable(view)
        assert comparable(view) == reference

    assert reference is not None
    assert reference["version"] == 4
    assert reference["manager_id"] == "RM-7"
    assert reference["consent"]["sms"]["opted_in"] is False
    assert reference["holdings"]["assets_under_management"] == {"CNY": "100000.00"}
    assert reference["holdings"]["liabilities"] == {"CNY": "500000.50"}
    assert reference["opportunities"]["open_count"] == 1
    assert reference["opportunities"]["weighted_value"] == {"CNY": "100000"}
    assert [c["summary"] for c in reference["last_contacts"]] == [
        f"call {i}" for i in range(11, 1, -1)
    ]
    assert reference["contact_count"] == 12
    assert reference["campaigns"][0]["last_stage"] == "opened"
    assert reference["key_dates"]["next_birthday"] == "2026-12-02"
    assert reference["key_dates"]["next_maturity"]["maturity_date"] == "2027-01-05"
    assert reference["signals"]["dormancy_risk"] is False


async def test_a_merged_duplicate_resolves_to_its_survivor_everywhere(
    database: AsyncDatabase[Document],
) -> None:
    s, crm = Streams(), Service.CUSTOMER
    records = [
        s.event(crm, "A", registration("Li Lei", "+86 139 1111 1111", "AAA")),
        s.event(crm, "B", registration("Li Lei", "+86 139 2222 2222", "BBB")),
        s.event(
            crm,
            "A",
            cu.CustomersMerged(
                merged_customer_id="B",
                reason="same person",
                merged_name=CustomerName(full_name="Li Lei"),
                merged_id_documents=[
                    IdDocument(kind=IdDocumentKind.NATIONAL_ID, number="BBB", issuing_country="CN")
                ],
                merged_phone="+86 139 2222 2222",
            ),
        ),
        s.event(crm, "B", cu.CustomerMergedInto(survivor_customer_id="A", reason="same person")),
        # Other systems still name the duplicate afterwards.
        s.event(
            Service.CORE_BANKING,
            "ACC-B",
            cb.AccountOpened(
                customer_id="B",
                product_code="SAV",
                product_name="Savings",
                product_type=cb.ProductType.SAVINGS,
                currency="CNY",
                branch_id="BR-001",
                opened_on=date(2026, 11, 2),
            ),
        ),
        s.event(
            Service.CORE_BANKING,
            "ACC-B",
            cb.HoldingBalanceChanged(
                customer_id="B",
                product_type=cb.ProductType.SAVINGS,
                previous_balance=cny("0"),
                balance=cny("42.00"),
                changed_at=T0,
            ),
        ),
    ]
    queries = await project(database, records, batch=2)

    by_survivor, by_duplicate = (
        await queries.view("A", WHOLE_BOOK),
        await queries.view("B", WHOLE_BOOK),
    )
    assert by_survivor is not None
    assert by_duplicate is not None
    assert by_duplicate.customer_id == "A"
    assert by_duplicate.resolved_from == "B"
    assert by_survivor.merged_ids == ["B"]
    assert by_survivor.holdings.assets_under_management == {"CNY": "42.00"}
    searches: list[dict[str, Any]] = [
        {"phone": "86-139-2222-2222"},
        {"id_number": "bbb"},
        {"name": "li"},
    ]
    for search in searches:
        page = await queries.search(**search, reach=WHOLE_BOOK)
        assert [item["customer_id"] for item in page.items] == ["A"], search


async def test_search_filters_and_pages_in_a_stable_order(
    database: AsyncDatabase[Document],
) -> None:
    s, crm = Streams(), Service.CUSTOMER
    names = ["Zhang Wei", "Zhang Min", "Zhao Lei", "Wang Fang", "Zhang Wei"]
    records = []
    for i, name in enumerate(names):
        customer = f"C{i}"
        records.append(s.event(crm, customer, registration(name, f"+86 139 0000 000{i}", f"N{i}")))
        band = ValueBand.HIGH if i % 2 == 0 else ValueBand.LOW
        records.append(
            s.event(crm, customer, cu.CustomerSegmentChanged(value_band=band, reason="x"))
        )
    queries = await project(database, records, batch=100)

    seen, cursor = [], None
    while True:
        page = await queries.search(name="zh", limit=2, cursor=cursor, reach=WHOLE_BOOK)
        seen += [item["customer_id"] for item in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == ["C1", "C0", "C4", "C2"]  # by name, then id: Zhang Min, Zhang Wei x2, Zhao
    high = await queries.search(name="zhang", segment="high", reach=WHOLE_BOOK)
    assert [item["customer_id"] for item in high.items] == ["C0", "C4"]
    assert (await queries.search(phone="+86 139 0000 0003", reach=WHOLE_BOOK)).items[0][
        "customer_id"
    ] == "C3"
