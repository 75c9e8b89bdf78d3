"""A test-only projection that records every version it applies, per aggregate.

Each event adds its aggregate version to ``versions`` (``$push``) and one to ``applied``
(``$inc``) of the aggregate's ledger document. Compared with the versions that exist (the
event store and the upstream feed), a missing version is an event lost and a repeated one
an event applied twice: a guarded update that let a redelivery through shows at once.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import ClassVar

from crm_backbone.projection import Handler, Projection, ViewUpdate
from crm_backbone.readmodel import guard_key
from crm_events.envelope import Envelope
from crm_events.registry import EventPayload, registry

LEDGER = "ledger"
"""The collection: one document per (source, aggregate), ``_id`` = its guard key."""


class Ledger(Projection):
    """Counts every event of every registered type, whatever its topic."""

    name: ClassVar[str] = "fault_ledger"
    topics: ClassVar[tuple[str, ...]] = ()  # the suite subscribes it to its own topics

    def handlers(self) -> Mapping[str, Handler]:
        return dict.fromkeys(registry.event_types(), self.count)

    def count(self, envelope: Envelope[EventPayload]) -> Iterator[ViewUpdate]:
        yield ViewUpdate(
            LEDGER,
            guard_key(envelope.source, envelope.aggregateid),
            {
                "$set": {"source": envelope.source, "aggregate_id": envelope.aggregateid},
                "$push": {"versions": envelope.aggregateversion},
                "$inc": {"applied": 1},
            },
        )
