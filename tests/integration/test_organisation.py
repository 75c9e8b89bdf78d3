"""The organisation read model against the genuine Kafka and MongoDB: the simulated bank's
organisation, published to the HR topic as the simulator publishes it, is projected by the
real subscriber; the directory then answers positions, and follows moves and departures;
the whole topic delivered again, to another consumer group, changes nothing, and neither
does a rebuild of the view as ``crm-ops rebuild organisation_view@<service>`` runs it."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import Any

import pytest
from crm_backbone.kafka_acls import ADMIN
from crm_backbone.organisation import (
    STAFF,
    UNITS,
    OrganisationDirectory,
    OrganisationView,
    Position,
)
from crm_backbone.projection import ProjectionEngine
from crm_backbone.rebuild import rebuild
from crm_backbone.testing import NoDeadLetters
from crm_backbone.topic_names import TopicNames
from crm_events import organisation as hr
from crm_events.envelope import Envelope, to_kafka
from crm_events.organisation import Role
from crm_events.registry import EventPayload
from crm_events.topics import HR_ORGANISATION, Service
from crm_ops.views_commands import VIEWS
from crm_simulator.feed import FeedEvent, organisation_feed
from crm_simulator.poison import UpstreamRecord
from crm_simulator.publisher import UpstreamProducers, publish
from local_infra.pytest_plugin import Servers, kafka_login
from pymongo.asynchronous.database import AsyncDatabase

from tests.integration.kafka_support import consume_all

pytestmark = pytest.mark.integration

START = datetime(2026, 1, 1, tzinfo=UTC)
LATER = datetime(2026, 6, 1, tzinfo=UTC)
EAST, NORTH = "RG-EAST", "RG-NORTH"
NORTH_BRANCHES = {f"BR-{n:03d}" for n in range(3, 13)}


def hr_event(topic: str, aggregate_id: str, version: int, payload: EventPayload) -> FeedEvent:
    envelope = Envelope.new(
        payload, aggregate_id, version, actor="hr", source=Service.HR.source, time=LATER
    )
    return FeedEvent(topic, UpstreamRecord(*to_kafka(envelope)), LATER, envelope)


async def produce(bootstrap: str, names: TopicNames, events: Iterable[FeedEvent]) -> None:
    """Through the simulator's own producer path, as HR."""
    producer = UpstreamProducers(bootstrap, (Service.HR,), names)
    await producer.start()
    try:
        await publish(producer, list(events))
    finally:
        await producer.stop()


async def project(bootstrap: str, topic: str, database: AsyncDatabase[Any], group: str) -> None:
    engine = ProjectionEngine(OrganisationView(), database, NoDeadLetters(), group)
    await engine.setup()
    await consume_all(bootstrap, topic, engine)


async def snapshot(database: AsyncDatabase[Any]) -> dict[str, list[dict[str, Any]]]:
    return {name: await database[name].find().sort("_id").to_list() for name in (UNITS, STAFF)}


async def test_the_directory_follows_the_organisation_hr_publishes(
    crm_servers: Servers, topic_prefix: str, database: AsyncDatabase[Any]
) -> None:
    bootstrap = crm_servers.kafka_bootstrap
    names = TopicNames(topic_prefix)
    topic = names(HR_ORGANISATION.name)
    await UpstreamProducers(bootstrap, (Service.HR,), names).ensure_topics()
    directory = OrganisationDirectory(database)

    organisation = list(organisation_feed(start=START, route=names.of_event))
    await produce(bootstrap, names, organisation)
    await project(bootstrap, topic, database, "org-live")

    assert await directory.position_of("RM-0001") == Position(
        "RM-0001", Role.RELATIONSHIP_MANAGER, "BR-001", EAST, "BM-0001"
    )
    assert await directory.position_of("BM-0001") == Position(
        "BM-0001", Role.BRANCH_MANAGER, "BR-001", EAST, "RH-0001"
    )
    assert await directory.position_of("RH-0001") == Position(
        "RH-0001", Role.REGIONAL_HEAD, None, EAST, None, frozenset({"BR-001", "BR-002"})
    )
    assert await directory.position_of("HO-0001") == Position("HO-0001", Role.ANALYST)
    assert await directory.position_of("nobody") is None
    assert await directory.branches_of(NORTH) == NORTH_BRANCHES

    changes = [
        hr_event(
            topic,
            "RM-0001",
            2,
            hr.StaffMoved(role=Role.RELATIONSHIP_MANAGER, branch_id="BR-003", reports_to="BM-0003"),
        ),
        hr_event(topic, "BR-002", 2, hr.BranchMoved(region_id=NORTH, previous_region_id=EAST)),
        hr_event(topic, "RM-0002", 2, hr.StaffLeft(left_on=date(2026, 5, 31))),
        hr_event(topic, "BR-012", 2, hr.BranchClosed(closed_on=date(2026, 5, 31))),
        hr_event(topic, EAST, 2, hr.RegionRenamed(name="East China")),
    ]
    await produce(bootstrap, names, changes)
    await project(bootstrap, topic, database, "org-live")

    assert await directory.position_of("RM-0001") == Position(
        "RM-0001", Role.RELATIONSHIP_MANAGER, "BR-003", NORTH, "BM-0003"
    )
    assert await directory.position_of("RM-0002") is None
    moved = await directory.position_of("RM-0005")  # at BR-002, which moved
    assert moved is not None
    assert (moved.branch_id, moved.region_id) == ("BR-002", NORTH)
    east_head = await directory.position_of("RH-0001")
    assert east_head is not None
    assert east_head.region_branch_ids == {"BR-001"}
    assert await directory.branches_of(NORTH) == NORTH_BRANCHES | {"BR-002"}  # BR-012 closed
    assert (await database[UNITS].find_one({"_id": EAST}) or {})["name"] == "East China"

    before = await snapshot(database)
    await produce(bootstrap, names, organisation + changes)  # everything, delivered again
    await project(bootstrap, topic, database, "org-live")
    await project(bootstrap, topic, database, "org-replay")  # from the start
    assert await snapshot(database) == before

    view = VIEWS["organisation_view@customer"].load()
    await rebuild(
        view,
        database,
        bootstrap=bootstrap,
        login=kafka_login(ADMIN),
        live_group="org-live",
        topics=[topic],
    )
    assert await snapshot(database) == before
