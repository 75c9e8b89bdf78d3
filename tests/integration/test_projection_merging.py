"""The projection engine's merged writes against genuine MongoDB: exactly once in effect.

A scripted projection turns each event into generated updates. Whatever the batches, the
crashes (anywhere: between waves, in the middle of a bulk write, after the view writes and
before the positions write) and the redeliveries, the views must end as MongoDB itself
leaves them when it applies each event's updates once, in order.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, cast

import pytest
from crm_backbone.projection import Handler, Projection, ProjectionEngine, ViewUpdate
from crm_backbone.readmodel import guard_key
from crm_backbone.testing import SOURCE, NoDeadLetters
from crm_events.customer import CustomerProfileUpdated
from crm_events.envelope import Envelope, to_kafka
from crm_events.registry import EventPayload
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pymongo import UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

pytestmark = pytest.mark.integration

Document = dict[str, Any]
Event = tuple[str, list[tuple[str, str, Document]]]  # aggregate, (collection, id, update)s


@dataclass(frozen=True)
class FakeRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


class Crash(Exception):
    """The process died."""


class CrashingCollection:
    """A collection whose bulk writes stop, part-done, once the database's budget is spent."""

    def __init__(self, database: CrashingDatabase, inner: AsyncCollection[Document]) -> None:
        self.database = database
        self.inner = inner
        self.positions = inner.name.endswith("__positions")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)  # reads and other collections: straight through

    async def bulk_write(self, operations: list[UpdateOne], ordered: bool = True) -> Any:
        self.database.bulk_writes += 1
        if self.positions and self.database.lose_positions:
            raise Crash
        budget = self.database.budget
        if budget is not None:
            if budget == 0:
                done = operations[: self.database.cut]  # an unordered bulk applies in order
                if done:
                    with contextlib.suppress(BulkWriteError):  # refusals: not the point here
                        await self.inner.bulk_write(done, ordered=ordered)
                raise Crash
            self.database.budget = budget - 1
        return await self.inner.bulk_write(operations, ordered=ordered)


class CrashingDatabase:
    """Passes through to a genuine database; counts bulk writes and can crash in one."""

    def __init__(self, inner: AsyncDatabase[Document]) -> None:
        self.inner = inner
        self.bulk_writes = 0
        self.budget: int | None = None
        self.cut = 0
        self.lose_positions = False

    def __getitem__(self, name: str) -> CrashingCollection:
        return CrashingCollection(self, self.inner[name])

    def crash_after(self, bulk_writes: int, cut: int = 0) -> None:
        """Let ``bulk_writes`` bulk writes through, then apply ``cut`` operations and crash."""
        self.budget, self.cut = bulk_writes, cut

    def heal(self) -> None:
        self.budget, self.lose_positions = None, False


class ScriptedProjection(Projection):
    """Each event's updates are looked up by (aggregate, version) in a script."""

    name: ClassVar[str] = "scripted"
    topics: ClassVar[tuple[str, ...]] = ("unused",)

    def __init__(self, script: Mapping[tuple[str, int], list[ViewUpdate]]) -> None:
        self.script = script

    def handlers(self) -> Mapping[str, Handler]:
        return {"crm.customer.profile_updated": self.updated}

    def updated(self, envelope: Envelope[EventPayload]) -> Iterable[ViewUpdate]:
        return self.script[(envelope.aggregateid, envelope.aggregateversion)]


@dataclass
class Scenario:
    """Generated events as Kafka records, the engine over a crashing database, the script."""

    records: list[FakeRecord]
    engine: ProjectionEngine
    database: CrashingDatabase
    script: dict[tuple[str, int], list[ViewUpdate]]
    collections: list[str]
    positions: AsyncCollection[Document]  # the engine's, not through the crashing proxy
    expected: Document | None = None  # the views, once computed


def build(database: AsyncDatabase[Document], events: Sequence[Event]) -> Scenario:
    """Records of ``events`` (versions counted per aggregate), in collections of their own."""
    prefix = f"x{uuid.uuid4().hex[:10]}"
    versions: dict[str, int] = {}
    script: dict[tuple[str, int], list[ViewUpdate]] = {}
    records: list[FakeRecord] = []
    for offset, (aggregate, updates) in enumerate(events):
        version = versions[aggregate] = versions.get(aggregate, 0) + 1
        script[(aggregate, version)] = [
            ViewUpdate(f"{prefix}_{collection}", document_id, update)
            for collection, document_id, update in updates
        ]
        envelope = Envelope.new(
            CustomerProfileUpdated(phone=f"+86 {offset:04d}"),
            aggregate_id=aggregate,
            aggregate_version=version,
            actor="test",
            source=SOURCE,
        )
        record = to_kafka(envelope)
        records.append(FakeRecord("t", 0, offset, record.key, record.value, record.headers))
    projection = ScriptedProjection(script)
    projection.name = f"{prefix}_view"  # type: ignore[misc]  # its own positions collection
    crashing = CrashingDatabase(database)
    engine = ProjectionEngine(
        projection, cast(AsyncDatabase[Document], crashing), NoDeadLetters(), "test"
    )
    collections = sorted({u.collection for updates in script.values() for u in updates})
    positions = database[f"{projection.name}__positions"]
    return Scenario(records, engine, crashing, script, collections, positions)


async def expected_views(database: AsyncDatabase[Document], scenario: Scenario) -> Document:
    """What MongoDB makes of the events' updates applied once each, in order, unguarded."""
    for offset in range(len(scenario.records)):
        aggregate, version = event_of(scenario, offset)
        for update in scenario.script[(aggregate, version)]:
            await database[f"ref_{update.collection}"].update_one(
                {"_id": update.document_id}, update.update, upsert=True
            )
    return {c: await contents(database[f"ref_{c}"]) for c in scenario.collections}


def event_of(scenario: Scenario, offset: int) -> tuple[str, int]:
    headers = dict(scenario.records[offset].headers)
    return headers["ce_aggregateid"].decode(), int(headers["ce_aggregateversion"])


async def contents(collection: AsyncCollection[Document]) -> dict[str, Document]:
    return {doc["_id"]: doc async for doc in collection.find()}


async def views(database: AsyncDatabase[Document], scenario: Scenario) -> Document:
    """The engine's views, without the guards."""
    result: Document = {}
    for collection in scenario.collections:
        documents = await contents(database[collection])
        for document in documents.values():
            document.pop("_applied", None)
        result[collection] = documents
    return result


async def check(database: AsyncDatabase[Document], scenario: Scenario) -> None:
    """Views as MongoDB applies each event once; guards and positions at the last versions."""
    if scenario.expected is None:
        scenario.expected = await expected_views(database, scenario)
    assert await views(database, scenario) == scenario.expected
    last: dict[str, int] = {}
    guards: dict[tuple[str, str], dict[str, int]] = {}
    for offset in range(len(scenario.records)):
        aggregate, version = event_of(scenario, offset)
        key = guard_key(SOURCE, aggregate)
        last[key] = version
        for update in scenario.script[(aggregate, version)]:
            guards.setdefault((update.collection, update.document_id), {})[key] = version
    for (collection, document_id), applied in guards.items():
        document = await database[collection].find_one({"_id": document_id})
        assert document is not None
        assert document["_applied"] == applied
    positions = await contents(scenario.positions)
    assert {key: doc["version"] for key, doc in positions.items()} == last


# --- Generated scripts and deliveries ------------------------------------------------------

AGGREGATES = ("A", "B")
SHARED = (("va", "d1"), ("vb", "d1"))  # documents both aggregates update
numbers = st.one_of(st.integers(-5, 5), st.integers(-8, 8).map(lambda n: n / 2))
lists = st.lists(st.integers(0, 4), max_size=3)


def effects(prefix: str, own: bool) -> st.SearchStrategy[tuple[str, str, Any]]:
    """One operator on one path of an aggregate's own fields (so aggregates commute).

    ``$setOnInsert`` only in a document of the aggregate's ``own``: which aggregate
    inserts a shared document depends on the order their updates meet.
    """
    n, m, mx, lst = (f"{prefix}{name}" for name in ("n", "m", "m.x", "l"))
    number_paths = st.sampled_from([n, mx])
    operators = ["$set", "$inc", "$max", "$min", *(["$setOnInsert"] if own else [])]
    return st.one_of(
        st.tuples(st.sampled_from(operators), number_paths, numbers),
        st.tuples(st.just("$unset"), st.sampled_from([n, m, mx, lst]), st.just("")),
        st.tuples(st.just("$set"), st.just(m), st.fixed_dictionaries({"x": st.integers(0, 3)})),
        st.tuples(st.just("$set"), st.just(lst), lists),
        st.tuples(
            st.just("$push"),
            st.just(lst),
            st.one_of(
                st.integers(0, 4),
                st.builds(lambda items: {"$each": items}, lists),
                st.builds(lambda items: {"$each": items, "$slice": -2}, lists),
            ),
        ),
        st.tuples(
            st.just("$addToSet"),
            st.just(lst),
            st.one_of(st.integers(0, 4), st.builds(lambda items: {"$each": items}, lists)),
        ),
    )


def _overlap(a: str, b: str) -> bool:
    return a == b or a.startswith(b + ".") or b.startswith(a + ".")


@st.composite
def update_of(draw: st.DrawFn, aggregate: str, own: bool) -> Document:
    """One valid update: one to three operators on paths that do not overlap."""
    update: Document = {}
    paths: list[str] = []
    chosen = draw(st.lists(effects(f"{aggregate}_", own), min_size=1, max_size=3))
    for operator, path, operand in chosen:
        if not any(_overlap(path, other) for other in paths):
            paths.append(path)
            update.setdefault(operator, {})[path] = operand
    return update


@st.composite
def event(draw: st.DrawFn) -> Event:
    aggregate = draw(st.sampled_from(AGGREGATES))
    own = ("vb", f"own_{aggregate}")
    targets = draw(st.lists(st.sampled_from([*SHARED, own]), max_size=3))  # may repeat
    return aggregate, [(c, d, draw(update_of(aggregate, (c, d) == own))) for c, d in targets]


# A delivery: batch size; then None (committed), "uncommitted" (processed, offsets not
# committed), "positions" (a crash after the view writes, before the positions write) or
# (bulk writes let through, operations applied of the next one) for a crash anywhere.
Fate = None | str | tuple[int, int]
deliveries = st.lists(
    st.tuples(
        st.integers(1, 10),
        st.one_of(
            st.sampled_from([None, "uncommitted", "positions", "positions"]),
            st.tuples(st.integers(0, 4), st.integers(0, 3)),
        ),
    ),
    max_size=12,
)


async def deliver(scenario: Scenario, plan: Sequence[tuple[int, Fate]]) -> None:
    """Deliver the records as a consumer would, following ``plan``, then the rest."""
    committed = 0
    for size, fate in plan:
        if committed == len(scenario.records):
            break
        batch = scenario.records[committed : committed + size]
        if isinstance(fate, tuple):
            scenario.database.crash_after(*fate)
        scenario.database.lose_positions = fate == "positions"
        try:
            await scenario.engine.process(batch)
        except Crash:
            continue  # redelivered from the last committed offset
        finally:
            scenario.database.heal()
        if fate != "uncommitted":
            committed += len(batch)
    if committed < len(scenario.records):
        await scenario.engine.process(scenario.records[committed:])


def counter(aggregate: str, path: str, n: int) -> Event:
    return aggregate, [("va", "d1", {"$inc": {path: n}})]


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(events=st.lists(event(), min_size=1, max_size=16), plan=deliveries, resize=st.integers(1, 8))
@example(  # redelivered in a batch longer than the one whose positions were lost
    events=[counter("A", "A_n", n) for n in (1, 2, 4, 8)],
    plan=[(2, "positions"), (3, None)],
    resize=1,
)
@example(  # an $unset of a dotted path leaves its parent behind: {A_m: {}}
    events=[
        ("A", [("va", "d1", {"$set": {"A_m.x": 1}})]),
        ("A", [("va", "d1", {"$unset": {"A_m.x": ""}})]),
    ],
    plan=[],
    resize=2,
)
async def test_any_batches_crashes_and_redeliveries_apply_each_event_once(
    database: AsyncDatabase[Document],
    events: list[Event],
    plan: list[tuple[int, Fate]],
    resize: int,
) -> None:
    scenario = build(database, events)
    await deliver(scenario, plan)
    await check(database, scenario)

    # Everything again: the positions say it is all applied.
    again = await scenario.engine.process(scenario.records)
    assert again.duplicates == len(scenario.records)
    # Positions lost: the guards refuse every update, in batches cut anew.
    await scenario.positions.delete_many({})
    for start in range(0, len(scenario.records), resize):
        await scenario.engine.process(scenario.records[start : start + resize])
    await check(database, scenario)


# --- Particular cases --------------------------------------------------------------------


def counting(n: int) -> Document:
    return {"$set": {"last": n}, "$inc": {"count": 1}, "$push": {"seen": n}}


async def test_a_batch_costs_one_view_write_and_one_positions_write(
    database: AsyncDatabase[Document],
) -> None:
    events = [
        (aggregate, [("cards", aggregate, counting(n))])
        for aggregate in ("c1", "c2", "c3")
        for n in range(10)
    ]
    scenario = build(database, events)
    result = await scenario.engine.process(scenario.records)
    assert result.applied == 30
    assert scenario.database.bulk_writes == 2  # not ten waves
    await check(database, scenario)
    card = await database[scenario.collections[0]].find_one({"_id": "c2"})
    assert card is not None
    assert (card["last"], card["count"], card["seen"]) == (9, 10, list(range(10)))


async def test_a_group_refused_after_a_crash_is_replayed_update_by_update(
    database: AsyncDatabase[Document],
) -> None:
    events = [("c1", [("cards", "c1", counting(n))]) for n in range(8)]
    scenario = build(database, events)
    scenario.database.lose_positions = True  # the view written, the positions not
    with pytest.raises(Crash):
        await scenario.engine.process(scenario.records[:5])
    scenario.database.heal()
    writes = scenario.database.bulk_writes

    result = await scenario.engine.process(scenario.records)  # redelivered, in a larger batch
    assert (result.applied, result.duplicates) == (8, 0)
    # The merged write (versions 1..8) refused, then 8 single updates, then the positions.
    assert scenario.database.bulk_writes - writes == 1 + 8 + 1
    await check(database, scenario)


async def test_updates_of_one_event_that_do_not_merge_are_guarded_step_by_step(
    database: AsyncDatabase[Document],
) -> None:
    nested: list[tuple[str, str, Document]] = [
        ("cards", "c1", {"$set": {"m": {"x": 1}}}),
        ("cards", "c1", {"$inc": {"m.x": 1}}),  # inside the path just set: a new group
        ("cards", "c1", {"$inc": {"m.x": 10}}),
    ]
    events = [("a", nested), ("a", nested)]
    scenario = build(database, events)
    for crash_point in range(4):  # a crash between each of the writes, then on
        scenario.database.crash_after(crash_point)
        with pytest.raises(Crash):
            await scenario.engine.process(scenario.records)
    scenario.database.heal()
    await scenario.engine.process(scenario.records)
    await check(database, scenario)
    card = await database[scenario.collections[0]].find_one({"_id": "c1"})
    assert card is not None
    assert card["m"] == {"x": 12}
    assert card["_applied"] == {guard_key(SOURCE, "a"): 2}
