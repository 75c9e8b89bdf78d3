"""Faults injected into the customer pipeline on genuine servers; nothing lost, nothing twice.

Each scenario plays a stream of relationship managers' commands and upstream events
(``plan.make_plan``, poison records included), injects its fault mid-stream, lets the
system recover, and compares every read model with the ground truth recomputed from the
event store and the upstream records (``truth.ground_truth``). The ledger projection
(``ledger.py``) counts each event's applications: lost and applied twice are exact counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from crm_backbone.kafka_acls import ADMIN
from crm_backbone.pause import CONTROL as PAUSE_CONTROL
from crm_backbone.projection import Document
from crm_customer.views import CustomerViews
from crm_events.topics import CUSTOMER_EVENTS
from crm_ops.deadletters import read_all, redrive
from crm_simulator.poison import Poison
from local_infra.infra import Infra
from local_infra.servers import Server
from pymongo import AsyncMongoClient

from faults.child import key_sealer
from faults.driver import Driver
from faults.ledger import LEDGER, Ledger
from faults.outages import restart
from faults.plan import make_plan
from faults.scenario import Fault, Result, run_scenario
from faults.system import PREFIX, System
from faults.truth import Truth, compare
from faults.waiting import until

pytestmark = [pytest.mark.faults, pytest.mark.timeout(900)]

Record = Callable[[Result], None]


def check(result: Result) -> None:
    assert result.recovery is not None, "not recovered:\n" + "\n".join(result.mismatches[:20])
    assert result.lost == 0
    assert result.twice == 0
    assert result.parked == 0
    assert not result.mismatches, "\n".join(result.mismatches[:20])
    assert result.dead_letters == result.poison + result.redriven
    per_group = result.dead_letters_per_group
    assert {group: per_group.get(group, 0) for group in result.expected_dead_letters} == (
        result.expected_dead_letters
    )


async def outage(server: Server, *, hard: bool, what: str) -> Fault:
    """Kill (or stop) ``server`` now and start it again: one fault, ended once it answers."""
    began = time.monotonic()
    ended = await restart(server, hard=hard)
    return Fault(1, f"{what}, answering again after {ended - began:.1f}s", ended)


async def test_the_comparison_sees_lost_doubled_and_wrong_values(fault_infra: Infra) -> None:
    """The instrument first: a view missing an event, holding one twice, or wrong, shows."""
    truth = Truth(
        customers={"C1": {"status": "active", "contact_count": 2}},
        versions={"a": 3, "b": 1},
        stored_events=3,
        upstream_events=3,
    )
    client: AsyncMongoClient[Document] = AsyncMongoClient(fault_infra.mongo.admin_uri)
    database = client[f"{PREFIX}selftest_{uuid.uuid4().hex[:6]}"]
    try:
        await database[LEDGER].insert_many(
            [{"_id": "a", "versions": [1, 3, 3], "applied": 3}, {"_id": "b", "versions": [1]}]
        )
        await database["customers"].insert_one(
            {"_id": "C1", "status": "dormant", "contact_count": 3}
        )
        verdict = await compare(database, truth)
    finally:
        await client.drop_database(database.name)
        await client.close()
    assert (verdict.lost, verdict.twice) == (1, 2)  # version 2 of a; 3 of a and a contact
    assert len(verdict.mismatches) == 3  # b's count, C1's status and contact count


async def test_kafka_broker_killed_mid_stream_and_restarted(
    fault_infra: Infra, fault_logs: Path, record: Record
) -> None:
    async def inject(system: System, driver: Driver) -> Fault:
        await driver.reached(0.5)
        return await outage(system.infra.kafka, hard=True, what="broker SIGKILLed mid-stream")

    result = await run_scenario(fault_infra, "kafka_killed", make_plan(1), inject, logs=fault_logs)
    record(result)
    check(result)


async def test_projection_worker_killed_mid_batch(
    fault_infra: Infra, fault_logs: Path, record: Record
) -> None:
    async def inject(system: System, driver: Driver) -> Fault:
        await driver.reached(0.3)
        first = system.workers[0]  # its view's positions write is its kill point
        await system.kill_at_armed_point(first)
        second = system.worker(0, {"engine": Ledger.name, "at": "commit"})
        await system.relaunch(first, second)
        await driver.reached(0.6)
        await system.kill_at_armed_point(second)
        third = system.worker(0)
        await system.relaunch(second, third)
        await driver.reached(0.8)
        third.supervised = False
        third.kill()  # wherever it is
        ended = await system.relaunch(third)
        return Fault(
            3,
            "worker SIGKILLed: view written before positions; ledger batch written before "
            "its offsets commit; anywhere",
            ended,
        )

    result = await run_scenario(
        fault_infra,
        "worker_killed",
        make_plan(2),
        inject,
        logs=fault_logs,
        duration=25,
        worker_die={"engine": CustomerViews.name, "at": "positions"},
    )
    record(result)
    check(result)


async def test_relay_killed_between_publish_and_record(
    fault_infra: Infra, fault_logs: Path, record: Record
) -> None:
    async def inject(system: System, driver: Driver) -> Fault:
        await driver.reached(0.5)
        await system.kill_at_armed_point(system.relay)
        ended = await system.relaunch(system.relay)
        return Fault(1, "relay SIGKILLed after Kafka acked a batch, before recording it", ended)

    result = await run_scenario(
        fault_infra, "relay_killed", make_plan(3), inject, logs=fault_logs, relay_die=True
    )
    record(result)
    check(result)


async def test_relay_stuck_on_an_event_its_translator_rejects(
    fault_infra: Infra, fault_logs: Path, record: Record
) -> None:
    async def inject(system: System, driver: Driver) -> Fault:
        await driver.reached(0.3)
        stuck = system.relay_child(reject=("Customer.StatusChanged", datetime.now(UTC)))
        await asyncio.to_thread(system.relay.stop)
        await system.relaunch(system.relay, stuck)

        async def stopped() -> bool:
            return "relay stopped" in stuck.log.read_text(errors="replace")

        await until(stopped, within=120, what="the relay stopping at the rejected event")
        found = re.search(r"stored event (\d+) \([^)]*Customer.StatusChanged\)", stuck.tail(50))
        assert found, stuck.tail()
        rejected = int(found.group(1))
        published = await system.published(CUSTOMER_EVENTS.name)
        await driver.reached(0.7)  # the stream goes on; nothing of it may come out
        assert system.store_head() > rejected
        assert system.relay_position() == rejected - 1
        assert await system.published(CUSTOMER_EVENTS.name) == published
        await asyncio.to_thread(stuck.stop)
        ended = await system.relaunch(stuck, system.relay_child())  # the fix deployed
        return Fault(
            1,
            f"relay stopped at stored event {rejected} (its translator rejected it, nothing "
            "after it published) until relaunched with the fix",
            ended,
        )

    result = await run_scenario(fault_infra, "relay_stuck", make_plan(8), inject, logs=fault_logs)
    record(result)
    check(result)


async def test_rebuild_killed_while_the_live_consumer_is_paused(
    fault_infra: Infra, fault_logs: Path, record: Record
) -> None:
    lease = 5.0

    async def inject(system: System, driver: Driver) -> Fault:
        await driver.reached(0.1)  # the stream flows while the rebuild asks for its pause
        rebuild = system.rebuild_child(lease)
        rebuild.launch()
        rebuild.supervised = False
        code = await rebuild.wait_exit(within=120)
        assert code == -signal.SIGKILL, rebuild.tail()
        killed = time.monotonic()
        control = system.database[PAUSE_CONTROL]
        gate = await control.find_one({"_id": system.groups[0]})
        assert gate is not None
        assert (gate["paused"], gate["acknowledged"]) == (True, True)  # its holder is dead

        async def resumed() -> bool:
            gate = await control.find_one({"_id": system.groups[0]})
            return bool(gate and not gate["paused"] and "expired_at" in gate)

        await until(resumed, within=lease + 60, what="the live consumer resuming by itself")
        ended = time.monotonic()
        assert "pause_lease_expired_resuming" in system.workers[0].tail(200)
        return Fault(
            1,
            f"rebuild SIGKILLed holding the live consumer's pause; the consumer resumed "
            f"{ended - killed:.1f}s later, its {lease:.0f}s lease expired",
            ended,
        )

    result = await run_scenario(
        fault_infra, "rebuild_killed", make_plan(9), inject, logs=fault_logs, duration=20
    )
    record(result)
    check(result)


async def test_handler_bug_dead_lettered_then_fixed_and_redriven(
    fault_infra: Infra, fault_logs: Path, record: Record
) -> None:
    bug = {"event": "crm.customer.profile_updated", "one_in": 3}
    held = 0

    async def inject(system: System, driver: Driver) -> Fault:
        nonlocal held
        bootstrap = system.infra.kafka.address
        admin = system.infra.kafka.login(ADMIN)  # the suite's topics are in no ACL table

        async def parked() -> bool:
            return await system.parked() > 0

        await driver.reached(0.6)
        with contextlib.suppress(TimeoutError):  # if none ever is, the test says so at its end
            await until(parked, within=60, what="later versions parked behind a handler_error")
        held = await system.parked()
        buggy = system.workers[0]
        await asyncio.to_thread(buggy.stop)
        await system.relaunch(buggy, system.worker(0))  # the fix deployed
        letters = [
            letter
            async for letter in read_all(bootstrap, system.dead_letter_topic, admin)
            if letter.origin[0] == system.groups[0] and letter.header("dlq_code") == "handler_error"
        ]
        assert letters
        ended = time.monotonic()
        await redrive(bootstrap, letters, key_sealer(system.keys), admin)  # sealed
        return Fault(
            len(letters),
            f"{bug['event']} handler raising for 1 customer in {bug['one_in']}: "
            f"{len(letters)} events dead-lettered (handler_error), {held} later ones parked "
            "behind them; worker relaunched with the fix, the dead letters redriven",
            ended,
            redriven=len(letters),
        )

    result = await run_scenario(
        fault_infra,
        "handler_bug_redriven",
        make_plan(10),
        inject,
        logs=fault_logs,
        worker_bug=bug,
    )
    record(result)
    check(result)
    assert held > 0, "no later version was parked behind the handler_error dead letters"


async def test_mongod_killed_and_restarted(
    fault_infra: Infra, fault_logs: Path, record: Record
) -> None:
    async def inject(system: System, driver: Driver) -> Fault:
        await driver.reached(0.5)
        return await outage(system.infra.mongo, hard=True, what="mongod SIGKILLed mid-stream")

    result = await run_scenario(fault_infra, "mongod_killed", make_plan(4), inject, logs=fault_logs)
    record(result)
    check(result)


async def test_postgres_restarted(fault_infra: Infra, fault_logs: Path, record: Record) -> None:
    async def inject(system: System, driver: Driver) -> Fault:
        await driver.reached(0.5)
        return await outage(
            system.infra.postgres, hard=False, what="PostgreSQL (the event store) restarted"
        )

    result = await run_scenario(
        fault_infra, "postgres_restarted", make_plan(5), inject, logs=fault_logs
    )
    record(result)
    check(result)


async def test_events_delivered_twice_and_out_of_order_across_partitions(
    fault_infra: Infra, fault_logs: Path, record: Record
) -> None:
    async def inject(system: System, driver: Driver) -> Fault:
        await driver.reached(0.3)
        await system.start_replay_relay()
        await driver.finished()
        head = system.store_head()

        async def republished() -> bool:
            return system.relay_position("replay") >= head

        await until(republished, within=120, what="the second relay republishing everything")
        return Fault(
            head + driver.duplicates,
            f"{head} stored events republished by a second relay and {driver.duplicates} "
            "upstream records sent again, shuffled across keys; 2 workers share 6 partitions",
            time.monotonic(),
        )

    result = await run_scenario(
        fault_infra,
        "delivered_twice",
        make_plan(6),
        inject,
        logs=fault_logs,
        workers=2,
        duplicate_from=0.3,
    )
    record(result)
    check(result)


async def test_poison_events_mixed_into_the_stream(
    fault_infra: Infra, fault_logs: Path, record: Record
) -> None:
    plan = make_plan(7, poison_rate=0.08)
    kinds = {item.poison for item in plan.upstream if item.poison is not None}
    assert kinds == set(Poison), f"the plan lacks {set(Poison) - kinds}"

    async def inject(system: System, driver: Driver) -> Fault:
        ended = await driver.finished()
        what = f"poison records among the upstream ones, {len(kinds)} kinds, each a broken copy "
        return Fault(plan.poison, what + "of the valid record that follows it", ended)

    result = await run_scenario(fault_infra, "poison", plan, inject, logs=fault_logs)
    record(result)
    check(result)
