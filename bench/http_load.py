"""Load on the customer service's HTTP API, and command → view latency.

Three shapes of load, every request with a genuine access token (``http_client``):

- **commands**, closed loop: ``concurrency`` clients of an upstream system's service
  account, each taking the next customer and registering, assigning, activating and
  segmenting it;
- **steady**, open loop: profile changes at a fixed rate whatever the answers take; a
  MongoDB change stream on the view's positions says when each change reached the view
  (a position is written after its view updates were acknowledged);
- **reads**, closed loop: ``GET /customers/{id}/view``, each reader a relationship manager
  reading random customers of their own book (so every request also places its caller in
  the organisation), while core banking's events :func:`flow` at a steady rate through
  the service's worker process into the view the API reads.

The load generator runs in the benchmark's process, on the same cores as the service
(``http_client`` says why it is not httpx).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from crm_backbone.kafka import reliable_producer
from crm_backbone.organisation import STAFF
from crm_backbone.readmodel import guard_key
from crm_customer.views import CustomerViews
from crm_simulator.day import registration
from crm_simulator.feed import FeedEvent
from crm_simulator.population import SimulatedCustomer

from bench.bank import CRM_SOURCE
from bench.common import Database, Kafka, percentile
from bench.http_client import Connection, Credentials, Pool


@dataclass
class Latencies:
    """Request latencies (seconds) over a wall-clock span; failures counted apart."""

    samples: list[float] = field(default_factory=list)
    failures: dict[str, int] = field(default_factory=dict)
    """HTTP status or exception → count."""
    elapsed: float = 0.0

    def add(self, began: float, status: int) -> bool:
        """Count one answer; whether it was a success."""
        if 200 <= status < 300:
            self.samples.append(time.perf_counter() - began)
            return True
        self.fail(str(status))
        return False

    def fail(self, why: str) -> None:
        self.failures[why] = self.failures.get(why, 0) + 1

    @property
    def rate(self) -> float:
        return len(self.samples) / self.elapsed if self.elapsed else 0.0

    def ms(self, q: float) -> float:
        return percentile(self.samples, q) * 1000

    def check(self, what: str) -> None:
        if self.failures:
            raise RuntimeError(f"{what}: failed requests {self.failures}")

    @classmethod
    def merged(cls, parts: Iterable[Latencies]) -> Latencies:
        """Rounds of one measurement as if they were one run."""
        whole = cls()
        for part in parts:
            whole.samples += part.samples
            whole.elapsed += part.elapsed
            for why, count in part.failures.items():
                whole.failures[why] = whole.failures.get(why, 0) + count
        return whole


async def commands(
    url: str, customers: Sequence[SimulatedCustomer], concurrency: int, credentials: Credentials
) -> tuple[Latencies, dict[str, int]]:
    """Register, assign, activate and segment each customer; the customers' last versions."""
    work: Iterator[SimulatedCustomer] = iter(customers)
    latencies = Latencies()
    versions: dict[str, int] = {}

    async def manager(connection: Connection) -> None:
        for customer in work:
            base = f"/customers/{customer.customer_id}"
            tier = customer.corporate_tier.value if customer.corporate_tier else None
            for method, path, body in (
                ("POST", "/customers", registration(customer)),
                (
                    "PUT",
                    f"{base}/manager",
                    {"manager_id": customer.manager_id, "branch_id": customer.branch_id},
                ),
                ("POST", f"{base}/status", {"status": "active", "reason": "accounts opened"}),
                (
                    "POST",
                    f"{base}/segment",
                    {
                        "value_band": customer.value_band.value,
                        "corporate_tier": tier,
                        "reason": "annual review",
                    },
                ),
            ):
                began = time.perf_counter()
                status, answer = await connection.request(method, path, body)
                if latencies.add(began, status):
                    versions[customer.customer_id] = json.loads(answer)["version"]

    connections = [Connection.to(url, credentials) for _ in range(concurrency)]
    try:
        began = time.perf_counter()
        await asyncio.gather(*(manager(connection) for connection in connections))
        latencies.elapsed = time.perf_counter() - began
    finally:
        for connection in connections:
            connection.close()
    latencies.check("commands")
    return latencies, versions


async def caught_up(db: Database, expected: dict[str, int], within: float = 300) -> None:
    """Wait until the view's positions reach ``expected`` (guard key → version)."""
    positions = db[f"{CustomerViews.name}__positions"]
    deadline = time.perf_counter() + within
    while time.perf_counter() < deadline:
        found = {d["_id"]: d["version"] async for d in positions.find({}, {"version": 1})}
        if all(found.get(key, 0) >= version for key, version in expected.items()):
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"the service's view did not catch up within {within:g} s")


async def staff_placed(db: Database, staff_ids: Iterable[str], within: float = 120) -> None:
    """Wait until the service's organisation view places every one of ``staff_ids``."""
    wanted = set(staff_ids)
    deadline = time.perf_counter() + within
    while time.perf_counter() < deadline:
        placed = {d["_id"] async for d in db[STAFF].find({"_id": {"$in": list(wanted)}})}
        if placed == wanted:
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"the service's organisation view did not place them within {within:g} s")


@dataclass
class Steady:
    commands: Latencies
    to_view: list[float]
    """Seconds from sending each accepted command to its version being in the view."""
    offered_rate: float
    unseen: int
    """Accepted commands whose version never reached the view within the drain time."""

    def to_view_ms(self, q: float) -> float:
        return percentile(self.to_view, q) * 1000


async def _watch(db: Database, seen: dict[str, list[tuple[float, int]]]) -> None:
    """Record (time, version) each time a customer's position moves, until cancelled."""
    positions = db[f"{CustomerViews.name}__positions"]
    match = [{"$match": {"operationType": {"$in": ["insert", "update", "replace"]}}}]
    async with await positions.watch(match) as stream:
        async for change in stream:
            now = time.perf_counter()
            document = change.get("fullDocument") or {}
            fields = change.get("updateDescription", {}).get("updatedFields", {})
            version = fields.get("version", document.get("version"))
            if version is not None:
                seen[change["documentKey"]["_id"]].append((now, int(version)))


async def steady(
    url: str,
    db: Database,
    customer_ids: Sequence[str],
    rate: float,
    seconds: float,
    credentials: Credentials,
    drain: float = 5.0,
) -> Steady:
    """``rate`` profile changes a second for ``seconds``, round robin over the customers."""
    seen: dict[str, list[tuple[float, int]]] = defaultdict(list)
    watcher = asyncio.create_task(_watch(db, seen))
    await asyncio.sleep(0.5)  # the change stream is open
    latencies = Latencies()
    accepted: list[tuple[str, int, float]] = []  # guard key, version, sent at

    async def change(n: int) -> None:
        customer_id = customer_ids[n % len(customer_ids)]
        body = {"email": f"steady.{n}@example.com"}
        began = time.perf_counter()
        try:
            status, answer = await pool.request("PATCH", f"/customers/{customer_id}/profile", body)
        except (OSError, asyncio.IncompleteReadError) as error:
            latencies.fail(type(error).__name__)
            return
        if latencies.add(began, status):
            key = guard_key(CRM_SOURCE, customer_id)
            accepted.append((key, json.loads(answer)["version"], began))

    total = round(rate * seconds)
    pool = Pool(url, credentials)
    try:
        began = time.perf_counter()
        running: set[asyncio.Task[None]] = set()
        for n in range(total):
            delay = began + n / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(change(n))
            running.add(task)
            task.add_done_callback(running.discard)
        offered = total / (time.perf_counter() - began)
        await asyncio.gather(*running)
        latencies.elapsed = time.perf_counter() - began
        for _ in range(round(drain / 0.1)):  # the last changes reach the view
            if all(_reached(seen[key], version) is not None for key, version, _ in accepted):
                break
            await asyncio.sleep(0.1)
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        pool.close()
    latencies.check("steady commands")
    to_view = []
    for key, version, sent in accepted:
        reached = _reached(seen[key], version)
        if reached is not None:
            to_view.append(reached - sent)
    return Steady(latencies, to_view, offered, len(accepted) - len(to_view))


def _reached(moves: list[tuple[float, int]], version: int) -> float | None:
    """When a customer's position first reached ``version``."""
    return next((at for at, applied in moves if applied >= version), None)


class Reader(NamedTuple):
    """A relationship manager reading: their token, and the customers of their book."""

    credentials: Credentials
    customer_ids: Sequence[str]


async def reads(
    url: str, readers: Sequence[Reader], seconds: float, seed: int, warmup: float = 2.0
) -> Latencies:
    """``GET /customers/{id}/view``: each reader, on a connection of their own, reads random
    customers of their book, one at a time."""
    rng = random.Random(f"reads/{seed}")
    latencies = Latencies()

    async def read(connection: Connection, ids: Sequence[str], until: float, record: bool) -> None:
        while time.perf_counter() < until:
            began = time.perf_counter()
            status, _ = await connection.request("GET", f"/customers/{rng.choice(ids)}/view")
            if record:
                latencies.add(began, status)

    async def run(span: float, record: bool) -> None:
        until = time.perf_counter() + span
        await asyncio.gather(
            *(
                read(c, r.customer_ids, until, record)
                for c, r in zip(connections, readers, strict=True)
            )
        )

    connections = [Connection.to(url, reader.credentials) for reader in readers]
    try:
        await run(warmup, record=False)
        began = time.perf_counter()
        await run(seconds, record=True)
        latencies.elapsed = time.perf_counter() - began
    finally:
        for connection in connections:
            connection.close()
    latencies.check("reads")
    return latencies


@dataclass
class Flow:
    """Events sent at a steady rate, over a wall-clock span."""

    sent: int = 0
    began: float = 0.0
    ended: float = 0.0

    @property
    def rate(self) -> float:
        return self.sent / (self.ended - self.began) if self.ended > self.began else 0.0


async def flow(kafka: Kafka, events: Iterable[FeedEvent], rate: float, into: Flow) -> None:
    """Send ``events`` at ``rate`` a second (open loop) until they run out or the task is
    cancelled; ``into`` counts them."""
    producer = reliable_producer(kafka.bootstrap, linger_ms=5, **kafka.login)
    await producer.start()
    into.began = time.perf_counter()
    try:
        for n, event in enumerate(events):
            delay = into.began + n / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            key, value, headers = event.record
            await producer.send(event.topic, value=value, key=key, headers=headers)
            into.sent += 1
    finally:
        into.ended = time.perf_counter()
        await producer.stop()


async def validated_against_unchecked(
    validated_url: str,
    unchecked_url: str,
    readers: Sequence[Reader],
    seconds: float,
    seed: int,
    rounds: int = 4,
) -> tuple[Latencies, Latencies]:
    """The same reads of two API processes over the same view, one validating every token
    and one that does not (``bench/unchecked_tokens.py``), ``seconds`` each in
    alternating rounds, so that whatever else the machine does falls on both."""
    validated: list[Latencies] = []
    unchecked: list[Latencies] = []
    for n in range(rounds):
        validated.append(await reads(validated_url, readers, seconds / rounds, seed + n))
        unchecked.append(await reads(unchecked_url, readers, seconds / rounds, seed + n))
    return Latencies.merged(validated), Latencies.merged(unchecked)
