"""A scenario run and measured: the stream played, the fault injected, then recovery
timed from the fault's end until every read model equals the ground truth and every poison
record is dead-lettered; then (once the consumer groups have consumed and committed
everything) the final count of events lost and applied twice."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka.errors import KafkaError
from crm_customer.views import CustomerViews
from local_infra.infra import Infra
from pymongo.errors import PyMongoError

from faults.driver import Driver
from faults.plan import Plan
from faults.system import System
from faults.truth import Truth, Verdict, compare, ground_truth
from faults.waiting import until


@dataclass
class Fault:
    """What a scenario injected, and when the fault ended (monotonic)."""

    count: int
    what: str
    ended: float
    redriven: int = 0
    """Records the customer view dead-lettered beyond the poison ones, redriven since."""


@dataclass
class Result:
    """One scenario's line of the report."""

    scenario: str
    events: int
    faults: int
    what: str
    lost: int
    twice: int
    dead_letters: int
    poison: int
    recovery: float | None
    redriven: int = 0
    parked: int = 0
    """Records still parked at the end (held back behind a dead letter or a condition)."""
    dead_letter_records: int = 0
    dead_letters_per_group: dict[str, int] = field(default_factory=dict)
    expected_dead_letters: dict[str, int] = field(default_factory=dict)
    """Per group: the poison records, plus for the customer view the redriven ones."""
    unplanned_restarts: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)

    HEADER = (
        f"{'scenario':22} {'events sent':>11} {'faults':>6} {'lost':>5} {'twice':>5} "
        f"{'dead letters':>12} {'poison':>6} {'parked':>6} {'recovery':>9}  fault"
    )

    def line(self) -> str:
        recovery = f"{self.recovery:8.1f}s" if self.recovery is not None else "      n/a"
        notes = [self.what]
        if self.dead_letter_records > self.dead_letters * max(len(self.dead_letters_per_group), 1):
            notes.append(f"{self.dead_letter_records} dead-letter records (some twice)")
        if self.unplanned_restarts:
            notes.append("unplanned restarts: " + ", ".join(self.unplanned_restarts))
        return (
            f"{self.scenario:22} {self.events:11d} {self.faults:6d} {self.lost:5d} "
            f"{self.twice:5d} {self.dead_letters:12d} {self.poison:6d} {self.parked:6d} "
            f"{recovery}  " + "; ".join(notes)
        )


Injection = Callable[[System, Driver], Awaitable[Fault]]


async def run_scenario(
    infra: Infra,
    scenario: str,
    plan: Plan,
    inject: Injection,
    *,
    logs: Path,
    workers: int = 1,
    duration: float = 10.0,
    duplicate_from: float | None = None,
    worker_die: dict[str, str] | None = None,
    worker_bug: dict[str, Any] | None = None,
    relay_die: bool = False,
    recover_within: float = 240.0,
) -> Result:
    """Run ``plan`` with ``inject``'s fault; measure recovery, losses and doubles."""
    async with System(
        infra,
        scenario,
        logs=logs,
        workers=workers,
        worker_die=worker_die,
        worker_bug=worker_bug,
        relay_die=relay_die,
    ) as system:
        driver = Driver(system, plan, duration=duration, duplicate_from=duplicate_from)
        driver.start()
        try:
            fault = await inject(system, driver)
            driver.hurry()
            await driver.finished()
        finally:
            await driver.cancel()
        assert system.app is not None
        truth = await asyncio.to_thread(ground_truth, system.app, plan)
        expected = {group: plan.poison for group in system.groups}
        expected[system.groups[0]] += fault.redriven
        recovery, verdict = await _recover(system, truth, expected, fault.ended, recover_within)
        if recovery is not None:
            # Quiescent: every record consumed and committed; anything applied late shows now.
            await until(_no_lag(system), within=120, what="consumer groups caught up", every=0.5)
            verdict = await compare(system.database, truth)
        per_group, records = await system.dead_letters()
        result = Result(
            scenario=scenario,
            events=truth.events,
            faults=fault.count,
            what=fault.what,
            lost=verdict.lost,
            twice=verdict.twice,
            dead_letters=per_group.get(system.groups[0], 0),
            poison=plan.poison,
            recovery=recovery,
            redriven=fault.redriven,
            parked=await system.parked(),
            dead_letter_records=records,
            dead_letters_per_group=per_group,
            expected_dead_letters=expected,
            unplanned_restarts=list(system.unplanned_restarts),
            mismatches=verdict.mismatches,
        )
        print(f"\n{Result.HEADER}\n{result.line()}")
        if recovery is None or not verdict.ok:
            system.keep = True
            print(await _diagnosis(system, verdict))
        return result


def _no_lag(system: System) -> Callable[[], Awaitable[bool]]:
    async def caught_up() -> bool:
        return await system.lag() == 0

    return caught_up


async def _recover(
    system: System, truth: Truth, expected: dict[str, int], since: float, within: float
) -> tuple[float | None, Verdict]:
    """Seconds from ``since`` until the read models equal the truth, each group dead-lettered
    the records ``expected`` and nothing is parked any more (None if not within
    ``within``); the last verdict."""
    deadline = time.monotonic() + within
    verdict = Verdict(mismatches=["not compared yet"])
    while time.monotonic() < deadline:
        try:
            verdict = await compare(system.database, truth)
            if verdict.ok:
                per_group, _ = await system.dead_letters()
                dead_lettered = all(per_group.get(g, 0) == n for g, n in expected.items())
                if dead_lettered and await system.parked() == 0:
                    return time.monotonic() - since, verdict
        except (PyMongoError, KafkaError, OSError, TimeoutError):
            pass  # a server still recovering: look again
        await asyncio.sleep(0.5)
    return None, verdict


async def _diagnosis(system: System, verdict: Verdict) -> str:
    """What a failed scenario leaves to look at: the first mismatches, with the guards and
    positions of the customers concerned, and where its data and logs are kept."""
    lines = [f"kept for inspection: databases and topics {system.name}, logs in {system.logs}"]
    seen: set[str] = set()
    for mismatch in verdict.mismatches[:10]:
        lines.append(f"  {mismatch}")
        words = mismatch.split()
        if words[0] != "customer" or words[1] in seen:
            continue
        seen.add(words[1])
        try:
            doc = await system.database["customers"].find_one({"_id": words[1]}, {"_applied": 1})
            guards = (doc or {}).get("_applied", {})
            positions = (
                await system.database[f"{CustomerViews.name}__positions"]
                .find({"_id": {"$in": list(guards)}})
                .to_list()
            )
        except PyMongoError as error:
            lines.append(f"    (guards and positions unreadable: {error!r})")
            continue
        lines.append(
            f"    guards {guards}; positions {[(p['_id'], p['version']) for p in positions]}"
        )
    return "\n".join(lines)
