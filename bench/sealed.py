"""Personal data sealed against in clear: the relay and the projection, in the same run.

The same CRM history is written again into stores that seal personal data (the services'
default: ``crm_backbone.sealing``), relayed to topics of their own with the customers'
fields sealed on Kafka, and the same core-banking events sent beside them; the projection
then consumes them opening every token, into views of its own, in rounds alternated with
rounds in clear. The keys are in key databases of the run's own (an SQLite file for the
SQLite store, ``<namespace>_keys`` on PostgreSQL for PostgreSQL's), wrapped by the
profile's master key ring, as the services'.
Each process that reads starts with an empty memory of keys, as a worker just started.
"""

from __future__ import annotations

import contextlib
import statistics
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crm_backbone.eventstore import EventStoreConfig
from crm_backbone.keys.database import (
    DatabaseKeyStore,
    KeyDatabase,
    PostgresKeyDatabase,
    SqliteKeyDatabase,
)
from crm_backbone.keys.master import KeyWrapper, MasterKeyRing
from crm_backbone.keys.sealer import KeySealer
from crm_backbone.sealing import EventSealing
from crm_backbone.settings import ServiceSettings, ensure_database
from crm_backbone.topic_names import TopicNames
from crm_customer.application import CustomerApplication
from crm_customer.publication import PAYLOADS
from crm_simulator.population import SimulatedCustomer
from pymongo import AsyncMongoClient

from bench import limits, pipeline, report
from bench.bank import Expected, crm_history, upstream
from bench.common import Names, Servers
from bench.common import create_topics as create

if TYPE_CHECKING:
    from bench.suite import Phases

SEALED = "sealed"
RELAY_POSTGRES = "relay.postgres.sealed"
DATABASES = ("relay_sealed", "keys")
"""The run's PostgreSQL databases made here (``Names.database``)."""
PROJECTION_ROUNDS = 2
"""Rounds of the projection sealed, each followed by one in clear."""


def master_keys(found: Servers) -> KeyWrapper:
    """The profile's master key ring (``CRM_MASTER_KEYS`` or its secrets folder), as the
    services read it; a ring of the run's own for servers that have none."""
    ring = ServiceSettings(secrets_dir=found.secrets_dir).master_key_ring()
    text = ring.get_secret_value() if ring else MasterKeyRing.new_entry(SEALED)
    return MasterKeyRing.parse(text)


@dataclass
class KeyStores:
    """The run's two key databases; every sealer made on them is closed with :meth:`close`."""

    wrapper: KeyWrapper
    sqlite: Path
    postgres: str
    _opened: list[DatabaseKeyStore] = field(default_factory=list)

    def sealer(self, store: str) -> KeySealer:
        """A sealer with an empty memory on the ``sqlite`` or ``postgres`` key database."""
        database: KeyDatabase = (
            SqliteKeyDatabase(self.sqlite)
            if store == "sqlite"
            else PostgresKeyDatabase(self.postgres)
        )
        keys = DatabaseKeyStore(database, self.wrapper)
        self._opened.append(keys)
        return KeySealer(keys)

    def close(self) -> None:
        for keys in self._opened:
            keys.close()


@dataclass(frozen=True)
class Run:
    """What the sealed phases share with the clear ones."""

    found: Servers
    names: Names
    phases: Phases
    figures: report.Figures
    customers: Sequence[SimulatedCustomer]
    seed: int
    tmp: Path

    @property
    def topics(self) -> TopicNames:
        return TopicNames(f"{self.names.prefix}{SEALED}.")


async def sealed_phases(
    run: Run,
    mongo: AsyncMongoClient[dict[str, Any]],
    view_topics: Sequence[str],
    expected: Expected,
    core: int,
    batch: int,
) -> None:
    """Relays (SQLite and PostgreSQL stores) and the projection with personal data sealed;
    the figures beside the clear ones'."""
    found, names = run.found, run.names
    topics = run.topics.of(view_topics)
    await create(found.kafka, [*topics, run.topics(RELAY_POSTGRES)])
    keys = KeyStores(
        master_keys(found),
        run.tmp / "keys.sqlite",
        ensure_database(found.postgres, names.database("keys")),
    )
    try:
        sqlite = EventStoreConfig(sqlite_path=run.tmp / "relay-sealed.sqlite").environment()
        run.figures.relay_sqlite_sealed = await _relay(run, keys, "sqlite", sqlite, topics[0])
        dsn = ensure_database(found.postgres, names.database("relay_sealed"))
        postgres = EventStoreConfig(postgres_dsn=dsn).environment()
        topic = run.topics(RELAY_POSTGRES)
        run.figures.relay_postgres_sealed = await _relay(
            run, keys, "postgres", postgres, topic, dsn
        )
        chunks = upstream(run.customers, run.seed, core, run.topics.of_event, Expected())
        async with run.phases("produce_sealed", f"core-banking events again ({core:,})"):
            await limits.produce_rate(found.kafka, chunks)
        rates = await _projection_rounds(run, mongo, keys, view_topics, expected, batch)
        run.figures.projection_sealed = statistics.mean(rates["sealed"])
        run.figures.projection_clear_beside = statistics.mean(rates["in clear"])
    finally:
        keys.close()


async def _projection_rounds(
    run: Run,
    mongo: AsyncMongoClient[dict[str, Any]],
    keys: KeyStores,
    view_topics: Sequence[str],
    expected: Expected,
    batch: int,
) -> dict[str, list[float]]:
    """The projection's rates, sealed and in clear, in alternate rounds into views of
    their own (each checked), so that the machine's load drifting weighs on both alike."""
    found, names, total = run.found, run.names, expected.events
    rates: dict[str, list[float]] = {"sealed": [], "in clear": []}
    for round_ in range(1, PROJECTION_ROUNDS + 1):
        for kind, topics, sealer in (
            ("sealed", run.topics.of(view_topics), keys.sealer("sqlite")),
            ("in clear", names.topics.of(view_topics), None),
        ):
            name = f"{kind.replace(' ', '_')}_{round_}"
            view = mongo[names.database(f"view_{name}")]
            label = f"projection, personal data {kind}, round {round_}"
            async with run.phases(f"projection_{name}", label, events=total):
                rate, _ = await pipeline.projection_rate(
                    found.kafka,
                    view,
                    topics,
                    names.group(f"customer_view_{name}"),
                    names.topics("deadletter"),
                    total,
                    batch,
                    total,
                    sealer=sealer,
                )
            rates[kind].append(rate)
            await pipeline.verify(view, expected)
    return rates


async def _relay(
    run: Run,
    keys: KeyStores,
    store: str,
    env: dict[str, str],
    topic: str,
    postgres_dsn: str | None = None,
) -> float:
    """The CRM history written into a sealing store of kind ``store``, then relayed by an
    application and relay whose memory of keys starts empty; the relay's rate."""
    with _application(env, keys.sealer(store)) as app:
        async with run.phases(f"history_{store}_sealed", f"CRM history, {store}, sealed"):
            events = crm_history(app, run.customers, run.seed)
    reader = keys.sealer(store)
    with _application(env, reader) as app:
        label = f"relay, {store} store, personal data sealed ({events:,} events)"
        async with run.phases(f"relay_{store}_sealed", label):
            return await pipeline.relay_rate(app, run.found.kafka, topic, postgres_dsn, reader)


@contextlib.contextmanager
def _application(env: dict[str, str], sealer: KeySealer) -> Iterator[CustomerApplication]:
    app = CustomerApplication(env=env, sealing=EventSealing(sealer, PAYLOADS))
    try:
        yield app
    finally:
        app.close()
