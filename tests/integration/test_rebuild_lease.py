"""A rebuild's pause of the live consumer is a lease: a rebuild killed mid-pause leaves the
view paused only until the lease expires, and ``crm-ops rebuild --abort`` ends it at once
(genuine Kafka and MongoDB; the rebuild holding the pause is a process SIGKILLed)."""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from crm_backbone.kafka import kafka_broker, subscribe
from crm_backbone.kafka_acls import ADMIN
from crm_backbone.pause import CONTROL, LeaseLost, PauseGate
from crm_backbone.projection import Document, ProjectionEngine
from crm_backbone.rebuild import SCRATCH, CountOnly, committed_offsets
from crm_backbone.settings import ServiceSettings
from crm_backbone.testing import CustomerCards, customer_history
from crm_events.envelope import Envelope, to_kafka
from crm_events.registry import EventPayload
from crm_ops.cli import app
from local_infra.pytest_plugin import Servers, kafka_login
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from structlog.testing import capture_logs
from typer.testing import CliRunner, Result

pytestmark = pytest.mark.integration

CUSTOMERS = 10
CHANGES = 6

HOLDER = f"""
import asyncio, sys
from pymongo import AsyncMongoClient
from crm_backbone.pause import CONTROL, PauseGate

async def main(uri, database, group, lease):
    client = AsyncMongoClient(uri)
    await client[database + "{SCRATCH}"].cards.insert_one({{"_id": "half-built"}})
    gate = PauseGate(client[database], group, lease=float(lease))
    async with gate.paused(within=0):
        print("asked", flush=True)
        while not (await client[database][CONTROL].find_one({{"_id": group}}))["acknowledged"]:
            await asyncio.sleep(0.1)
        print("paused", flush=True)
        await asyncio.sleep(3600)

asyncio.run(main(*sys.argv[1:]))
"""
"""A rebuild reduced to what matters here: it pauses the live group, holds the lease (and
has begun a view beside the live one), and is then killed."""


@dataclass
class LiveView:
    """A view's database and its live consumer group, consuming through a pause gate."""

    bootstrap: str
    topic: str
    database: AsyncDatabase[Document]
    group: str

    async def produce(self, envelopes: list[Envelope[EventPayload]]) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, **kafka_login(ADMIN))
        await producer.start()
        try:
            for envelope in envelopes:
                record = to_kafka(envelope)
                await producer.send(
                    self.topic, record.value, key=record.key, headers=record.headers
                )
            await producer.flush()
        finally:
            await producer.stop()

    async def caught_up(self) -> None:
        """Wait (bounded) until the group has committed every record of the topic."""
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, **kafka_login(ADMIN))
        await consumer.start()
        try:
            partitions = [TopicPartition(self.topic, p) for p in range(3)]
            ends = await consumer.end_offsets(partitions)
        finally:
            await consumer.stop()
        async with asyncio.timeout(60):
            while True:
                committed = await committed_offsets(
                    self.bootstrap, self.group, login=kafka_login(ADMIN)
                )
                if all(committed.get(tp, 0) >= end for tp, end in ends.items()):
                    return
                await asyncio.sleep(0.2)

    async def cards(self) -> dict[str, Document]:
        return {doc["_id"]: doc async for doc in self.database.cards.find({})}

    async def control(self) -> Document:
        return await self.database[CONTROL].find_one({"_id": self.group}) or {}


@pytest.fixture
async def live(
    crm_servers: Servers,
    kafka_topics: Callable[..., Awaitable[str]],
    unique_name: Callable[[str], str],
) -> AsyncIterator[LiveView]:
    """The live consumer of a customer view named as ``crm-ops`` names it."""
    namespace = unique_name("ns")[:40]
    client: AsyncMongoClient[Document] = AsyncMongoClient(crm_servers.mongo_uri)
    database = client[ServiceSettings(namespace=namespace).mongo_database("customer")]
    view = LiveView(
        crm_servers.kafka_bootstrap,
        await kafka_topics("cards"),
        database,
        f"{namespace}.customer.customer_view",
    )
    engine = ProjectionEngine(CustomerCards(), database, CountOnly(), view.group)
    await engine.setup()
    broker = kafka_broker(view.bootstrap, kafka_login(ADMIN), logger=None)
    subscribe(broker, engine, [view.topic], max_records=20, gate=PauseGate(database, view.group))
    async with broker:
        await broker.start()
        yield view
    await client.drop_database(database.name)
    await client.drop_database(f"{database.name}{SCRATCH}")
    await client.close()


async def a_rebuild_holding_the_pause(
    crm_servers: Servers, view: LiveView, lease: float, waiting: list[Envelope[EventPayload]]
) -> asyncio.subprocess.Process:
    """A process that pauses the live consumer (which acknowledges once ``waiting``
    reaches it) and keeps renewing its lease of ``lease`` seconds until it is killed."""
    holder = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        HOLDER,
        crm_servers.mongo_uri,
        view.database.name,
        view.group,
        str(lease),
        stdout=asyncio.subprocess.PIPE,
    )
    assert holder.stdout is not None
    async with asyncio.timeout(60):
        assert await holder.stdout.readline() == b"asked\n"
        await view.produce(waiting)
        assert await holder.stdout.readline() == b"paused\n"
    return holder


async def kill(process: asyncio.subprocess.Process) -> None:
    process.kill()
    await process.wait()


def crm_ops(*arguments: str) -> Awaitable[Result]:
    """``crm-ops`` run as a command line (in a thread: it runs an event loop of its own)."""
    return asyncio.to_thread(CliRunner().invoke, app, list(arguments))


async def test_a_rebuild_killed_mid_pause_lets_the_consumer_go_on_once_its_lease_expires(
    crm_servers: Servers, live: LiveView
) -> None:
    customers = [f"C{n}" for n in range(CUSTOMERS)]
    histories = {c: customer_history(c, CHANGES) for c in customers}
    await live.produce([e for h in histories.values() for e in h[:2]])
    await live.caught_up()

    later = [e for h in histories.values() for e in h[2:]]
    holder = await a_rebuild_holding_the_pause(crm_servers, live, 2.0, later)
    control = await live.control()
    assert control["paused"]
    assert control["acknowledged"]
    with capture_logs() as logs:
        await kill(holder)
        await live.caught_up()

    assert [e for e in logs if e["event"] == "pause_lease_expired_resuming"]
    control = await live.control()
    assert not control["paused"]
    assert "expired_at" in control
    cards = await live.cards()
    assert {c: cards[c]["changes"] for c in customers} == {c: CHANGES + 1 for c in customers}


async def test_abort_resumes_the_consumer_at_once_and_drops_the_half_built_view(
    crm_servers: Servers, live: LiveView
) -> None:
    envelopes = customer_history("C1", CHANGES)
    await live.produce(envelopes[:1])
    await live.caught_up()
    holder = await a_rebuild_holding_the_pause(crm_servers, live, 3600.0, envelopes[1:])
    await kill(holder)  # its lease would hold the consumer for an hour
    client = live.database.client
    assert f"{live.database.name}{SCRATCH}" in await client.list_database_names()

    namespace = live.group.split(".")[0]
    abort = (
        "rebuild",
        "customer_view",
        "--abort",
        "--namespace",
        namespace,
        "--mongo-uri",
        crm_servers.mongo_uri,
    )
    aborted = await crm_ops(*abort)
    assert aborted.exit_code == 0, aborted.output
    assert "pause ended" in aborted.output
    assert "half-built view dropped" in aborted.output
    await live.caught_up()

    assert (await live.cards())["C1"]["changes"] == CHANGES + 1
    control = await live.control()
    assert not control["paused"]
    assert "aborted_at" in control
    assert f"{live.database.name}{SCRATCH}" not in await client.list_database_names()
    again = await crm_ops(*abort)
    assert "no pause on" in again.output
    assert "no half-built view" in again.output


async def test_a_rebuild_whose_pause_ended_under_it_stops_before_swapping(
    crm_servers: Servers, mongo_database: str
) -> None:
    client: AsyncMongoClient[Document] = AsyncMongoClient(crm_servers.mongo_uri)
    try:
        database = client[mongo_database]
        group = f"live-{uuid.uuid4()}"
        gate = PauseGate(database, group, lease=3600)
        assert not await gate.pause(within=0)  # no consumer answered: paused all the same
        await gate.renew()
        assert await PauseGate(database, group).abort()
        with pytest.raises(LeaseLost):
            await gate.renew()
    finally:
        await client.close()
