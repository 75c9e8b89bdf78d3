"""The operators' endpoints of every service API: how its consumers are doing.

Unlike ``/healthz``, ``/readyz`` and ``/metrics`` (open to probes and scrapers, which
carry no token; a deployment keeps them inside the cluster), these need a bearer token
whose role reaches the operations surface (the operator, ``docs/access.md``); every other
role gets 403. They tell nothing about customers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from fastapi import APIRouter
from pydantic import BaseModel, Field

from crm_backbone.access import Surface, require_read
from crm_backbone.callers import Who
from crm_backbone.kafka import ConsumerHealth


class PartitionLag(BaseModel):
    topic: str
    partition: int
    lag: int = Field(description="Records behind the end of the partition at the last batch")


class ConsumerState(BaseModel):
    """One consumer group this process runs (a projection or a policy)."""

    group: str
    last_batch_at: datetime | None = Field(description="When its last batch was handled")
    failures_in_row: int = Field(description="Batches in a row that failed")
    lag: int = Field(description="Records behind, over its partitions")
    partitions: list[PartitionLag]
    stalled: str | None = Field(description="Why it is not healthy; null when it is")

    @classmethod
    def of(cls, health: ConsumerHealth) -> ConsumerState:
        last = health.last_batch_at
        return cls(
            group=health.group,
            last_batch_at=None if last is None else datetime.fromtimestamp(last, UTC),
            failures_in_row=health.failures_in_row,
            lag=sum(health.lag.values()),
            partitions=[
                PartitionLag(topic=topic, partition=partition, lag=lag)
                for (topic, partition), lag in sorted(health.lag.items())
            ],
            stalled=health.stalled(),
        )


def operators_router(health: Callable[[], Sequence[ConsumerHealth]]) -> APIRouter:
    """``GET /ops/consumers``: the state of each consumer group ``health`` lists."""
    router = APIRouter(tags=["operations"])

    @router.get(
        "/ops/consumers",
        summary="The consumer groups this process runs: lag, last batch, why stalled",
    )
    async def consumers(caller: Who) -> list[ConsumerState]:
        require_read(caller.reach, Surface.OPS)
        return [ConsumerState.of(state) for state in health()]

    return router
