"""Each staff member's pipeline, lead queues and SLA board, on the genuine MongoDB, over
generated books.

Customers are spread across the test organisation's managers and branches (some of
them reassigned), and each has opportunities (whatever manager and branch the
opportunity itself names), complaints and leads; prospects' leads are their own
manager's and branch's. The records go through the service's real projections
(``customer_owners`` and the opportunity views); then every figure, list and count each
staff member gets is compared with the one computed here from the generated book alone:
nothing out of reach is ever counted, summed or listed.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from crm_backbone.access import Reach, reach_for
from crm_backbone.book import CustomerBook, CustomerOwnersView
from crm_backbone.masking import mask_value
from crm_backbone.principal import Principal
from crm_backbone.projection import Document, Projection, ProjectionEngine
from crm_backbone.testing import InMemoryRecord, NoDeadLetters
from crm_backbone.testing_identity import TEST_BRANCHES, TEST_POSITIONS, FixedPositions
from crm_events import customer as cu
from crm_events import opportunity as op
from crm_events.common import Channel, CustomerName, CustomerType, Money
from crm_events.envelope import Envelope
from crm_events.personal import PersonalData
from crm_events.registry import EventPayload
from crm_events.topics import Service
from crm_opportunity.ownership import Book
from crm_opportunity.queries import OpportunityQueries
from crm_opportunity.views import OpportunityViews
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from local_infra.pytest_plugin import Servers
from pymongo import AsyncMongoClient

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
MANAGERS = ("RM-0001", "RM-0002", "RM-0005", "RM-0009")
BRANCHES = tuple(sorted(TEST_BRANCHES))
STAFF = ("RM-0001", "RM-0002", "RM-0005", "RM-0009", "BM-0001", "RH-0001", "HO-0001")
CUSTOMERS = tuple(f"C{n}" for n in range(5))
STAGES = (op.OpportunityStage.PROPOSAL, op.OpportunityStage.CLOSED_LOST)
EXAMPLES = itertools.count()
"""Numbers each generated example's own database."""


@dataclass(frozen=True)
class Deal:
    customer_id: str
    manager_id: str
    branch_id: str
    amount: int
    stage: op.OpportunityStage


@dataclass(frozen=True)
class Complaint:
    customer_id: str
    due_in_hours: int


@dataclass(frozen=True)
class Prospect:
    customer_id: str | None
    manager_id: str | None
    branch_id: str


@dataclass(frozen=True)
class BookOfBank:
    """Who owns each customer (after any reassignment), and what hangs off them."""

    owners: dict[str, list[tuple[str, str]]]
    deals: list[Deal]
    complaints: list[Complaint]
    leads: list[Prospect]

    def owner(self, customer_id: str) -> tuple[str, str]:
        return self.owners[customer_id][-1]


def books() -> st.SearchStrategy[BookOfBank]:
    customer = st.sampled_from(CUSTOMERS)
    owner = st.tuples(st.sampled_from(MANAGERS), st.sampled_from(BRANCHES))
    return st.builds(
        BookOfBank,
        owners=st.fixed_dictionaries(
            {c: st.lists(owner, min_size=1, max_size=2) for c in CUSTOMERS}
        ),
        deals=st.lists(
            st.builds(
                Deal,
                customer,
                st.sampled_from((*MANAGERS, "RM-0042")),
                st.sampled_from(BRANCHES),
                st.integers(1, 10**6),
                st.sampled_from(STAGES),
            ),
            max_size=8,
        ),
        complaints=st.lists(st.builds(Complaint, customer, st.integers(-48, 72)), max_size=5),
        leads=st.lists(
            st.builds(
                Prospect,
                st.none() | customer,
                st.none() | st.sampled_from(MANAGERS),
                st.sampled_from(BRANCHES),
            ),
            max_size=5,
        ),
    )


def staff_reaches(staff_id: str, manager_id: str | None, branch_id: str | None) -> bool:
    """The table of docs/access.md for the test organisation, written out."""
    if staff_id.startswith("RM-"):
        return manager_id == staff_id
    if staff_id == "BM-0001":
        return branch_id == "BR-001"
    if staff_id == "RH-0001":
        return TEST_BRANCHES.get(branch_id or "") == "RG-01"
    return True


def envelopes(book: BookOfBank) -> tuple[list[InMemoryRecord], list[InMemoryRecord]]:
    """The customer stream's records and the opportunity service's own."""
    offsets = itertools.count()

    def stream(source: str, key: str, payloads: list[EventPayload]) -> list[InMemoryRecord]:
        return [
            InMemoryRecord.of(
                Envelope.new(
                    payload,
                    key,
                    version,
                    actor="test",
                    source=source,
                    time=NOW - timedelta(days=3) + timedelta(minutes=next(offsets)),
                ),
                next(offsets),
            )
            for version, payload in enumerate(payloads, start=1)
        ]

    customers: list[InMemoryRecord] = []
    for customer_id, assignments in book.owners.items():
        registered = cu.CustomerRegistered(
            customer_type=CustomerType.INDIVIDUAL,
            name=CustomerName(full_name="Wang Fang"),
            status=cu.CustomerStatus.ACTIVE,
            branch_id=assignments[0][1],
        )
        assigned: list[EventPayload] = [
            cu.RelationshipManagerAssigned(manager_id=manager, branch_id=branch)
            for manager, branch in assignments
        ]
        customers += stream(Service.CUSTOMER.source, customer_id, [registered, *assigned])

    ours: list[InMemoryRecord] = []
    source = Service.OPPORTUNITY.source
    for n, deal in enumerate(book.deals):
        created = op.OpportunityCreated(
            customer_id=deal.customer_id,
            title="Deal",
            products=["WM-1"],
            stage=op.OpportunityStage.OPPORTUNITY_CREATED,
            probability=20,
            expected_value=Money(amount=Decimal(deal.amount), currency="CNY"),
            start_date=date(2026, 11, 1),
            expected_close_date=date(2027, 3, 31),
            manager_id=deal.manager_id,
            branch_id=deal.branch_id,
            source=op.LeadSource.RELATIONSHIP_MANAGER,
        )
        moved = op.OpportunityStageChanged(
            customer_id=deal.customer_id,
            previous_stage=op.OpportunityStage.OPPORTUNITY_CREATED,
            stage=deal.stage,
            probability=40 if deal.stage is op.OpportunityStage.PROPOSAL else 0,
            lost_reason="price" if deal.stage is op.OpportunityStage.CLOSED_LOST else None,
        )
        ours += stream(source, f"OPP-{n}", [created, moved])
    for n, complaint in enumerate(book.complaints):
        logged = op.NeedLogged(
            customer_id=complaint.customer_id,
            kind=op.NeedKind.COMPLAINT,
            summary="Fee twice",
            content="charged twice",
            severity=op.Severity.HIGH,
            urgency=op.Urgency.HIGH,
            channel=Channel.PHONE,
            started_at=NOW - timedelta(days=3),
            sla_due_at=NOW + timedelta(hours=complaint.due_in_hours, minutes=1),
        )
        ours += stream(source, f"N-{n}", [logged])
    for n, lead in enumerate(book.leads):
        captured = op.LeadCaptured(
            customer_id=lead.customer_id,
            contact_name="Zhao Min",
            phone="+86 139 5555 0101",
            source=op.LeadSource.WALK_IN,
            branch_id=lead.branch_id,
        )
        taken: list[EventPayload] = (
            [op.LeadAssigned(manager_id=lead.manager_id)] if lead.manager_id else []
        )
        ours += stream(source, f"L-{n}", [captured, *taken])
    return customers, ours


def lead_owner(book: BookOfBank, lead: Prospect) -> tuple[str | None, str | None]:
    if lead.customer_id is not None:
        return book.owner(lead.customer_id)
    return lead.manager_id, lead.branch_id


async def reach_of(staff_id: str) -> Reach:
    position = await FixedPositions({p.staff_id: p for p in TEST_POSITIONS}).position_of(staff_id)
    assert position is not None
    principal = Principal(
        subject=staff_id, staff_id=staff_id, roles=frozenset({position.role.value})
    )
    return reach_for(principal, position)


@pytest.fixture
async def mongo(crm_servers: Servers) -> AsyncIterator[AsyncMongoClient[Document]]:
    client: AsyncMongoClient[Document] = AsyncMongoClient(crm_servers.mongo_uri, tz_aware=True)
    yield client
    await client.close()


@settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(book=books())
async def test_every_figure_and_list_counts_only_the_records_in_reach(
    mongo: AsyncMongoClient[Document], mongo_database: str, book: BookOfBank
) -> None:
    database = mongo[f"{mongo_database[:55]}_{next(EXAMPLES)}"]
    try:
        customers, ours = envelopes(book)
        projection: Projection
        for projection, records in ((CustomerOwnersView(), customers), (OpportunityViews(), ours)):
            engine = ProjectionEngine(projection, database, NoDeadLetters(), "test")
            await engine.setup()
            await engine.process(records)
        queries = OpportunityQueries(database, Book(CustomerBook(database)), now=lambda: NOW)
        shown = 0
        for staff_id in STAFF:
            reach = await reach_of(staff_id)
            shown += await assert_reach(queries, reach, staff_id, book)
        print(
            f"{len(book.deals)} deals, {len(book.complaints)} complaints, "
            f"{len(book.leads)} leads: {shown} records shown across {len(STAFF)} staff"
        )
    finally:
        await mongo.drop_database(database.name)


async def assert_reach(
    queries: OpportunityQueries, reach: Reach, staff_id: str, book: BookOfBank
) -> int:
    """Compare what ``staff_id`` gets with what the book says they reach; how many
    records they were shown."""

    def mine(customer_id: str) -> bool:
        return staff_reaches(staff_id, *book.owner(customer_id))

    deals = [deal for deal in book.deals if mine(deal.customer_id)]
    pipeline = await queries.pipeline(reach)
    open_deals = [deal for deal in deals if deal.stage is op.OpportunityStage.PROPOSAL]
    assert pipeline.open.count == len(open_deals), staff_id
    total = sum(Decimal(deal.amount) for deal in open_deals)
    assert pipeline.open.expected_value == ({"CNY": str(total)} if open_deals else {})
    weighted = sum(Decimal(deal.amount) * 40 / 100 for deal in open_deals)
    assert sum(Decimal(v) for v in pipeline.open.weighted_value.values()) == weighted
    assert pipeline.closed_lost == len(deals) - len(open_deals), staff_id
    by_manager: dict[str, int] = defaultdict(int)
    for deal in open_deals:
        by_manager[deal.manager_id] += 1
    assert {k: f.count for k, f in pipeline.by_manager.items()} == by_manager, staff_id

    board = await queries.sla_board(reach)
    listed = [c.need_id for c in (*board.breached, *board.due_soon, *board.on_track)]
    expected_needs = {
        f"N-{n}" for n, complaint in enumerate(book.complaints) if mine(complaint.customer_id)
    }
    assert sorted(listed) == sorted(expected_needs), staff_id
    assert board.open == len(expected_needs)

    queued = 0
    for branch_id in BRANCHES:
        queue = await queries.lead_queue(reach, branch_id)
        expected_leads = {
            f"L-{n}"
            for n, lead in enumerate(book.leads)
            if lead.branch_id == branch_id and staff_reaches(staff_id, *lead_owner(book, lead))
        }
        assert {item.lead_id for item in queue.items} == expected_leads, (staff_id, branch_id)
        assert queue.open == len(expected_leads)
        masked = mask_value(PersonalData.NAME, "Zhao Min") if reach.masked else "Zhao Min"
        assert {item.contact_name for item in queue.items} <= {masked}
        queued += len(expected_leads)
    return len(deals) + len(expected_needs) + queued


async def test_a_reassignment_moves_every_record_of_the_customer_at_once(
    mongo: AsyncMongoClient[Document], mongo_database: str
) -> None:
    book = BookOfBank(
        owners={"C0": [("RM-0001", "BR-001")]},
        deals=[Deal("C0", "RM-0001", "BR-001", 100, op.OpportunityStage.PROPOSAL)],
        complaints=[Complaint("C0", 5)],
        leads=[Prospect("C0", "RM-0001", "BR-001")],
    )
    database = mongo[mongo_database]
    customers, ours = envelopes(book)
    for projection, records in ((CustomerOwnersView(), customers), (OpportunityViews(), ours)):
        engine = ProjectionEngine(projection, database, NoDeadLetters(), "test")
        await engine.setup()
        await engine.process(records)
    queries = OpportunityQueries(database, Book(CustomerBook(database)), now=lambda: NOW)
    old, new = await reach_of("RM-0001"), await reach_of("RM-0005")
    assert (await queries.pipeline(old)).open.count == 1
    assert (await queries.pipeline(new)).open.count == 0

    reassigned = InMemoryRecord.of(
        Envelope.new(
            cu.RelationshipManagerAssigned(
                manager_id="RM-0005", previous_manager_id="RM-0001", branch_id="BR-002"
            ),
            "C0",
            3,
            actor="test",
            source=Service.CUSTOMER.source,
        ),
        100,
    )
    engine = ProjectionEngine(CustomerOwnersView(), database, NoDeadLetters(), "test")
    await engine.process([reassigned])
    for reach, count in ((old, 0), (new, 1)):
        assert (await queries.pipeline(reach)).open.count == count
        assert (await queries.sla_board(reach)).open == count
        assert (await queries.lead_queue(reach, "BR-001")).open == count
        assert (await queries.opportunity(reach, "OPP-0") is not None) == bool(count)
