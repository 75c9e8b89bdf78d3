"""Policies: reactions to events of other streams that issue commands on a service's own aggregates.

A :class:`Policy` maps event types to async handlers. The :class:`PolicyConsumer` applies a
Kafka batch in order; a record that breaks the contract, or that a handler rejects with
:class:`Rejected` (the event is valid but cannot be applied, e.g. it names data the
service refuses), goes to the dead-letter topic with the reason and never blocks its
partition. Any other exception fails the batch, which is redelivered (a store or
MongoDB outage): handlers are idempotent, so reapplying is safe.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, ClassVar

import structlog
from crm_events.envelope import Envelope, from_kafka
from crm_events.errors import ContractError
from crm_events.registry import EventPayload

from crm_backbone.metrics import DEAD_LETTERS, POLICY_EVENTS
from crm_backbone.projection import DeadLetters, Record

log = structlog.get_logger(__name__)

PolicyHandler = Callable[[Envelope[EventPayload]], Awaitable[None]]


class Rejected(Exception):
    """The event is well formed but this service cannot apply it: dead-letter it."""


class Policy:
    name: ClassVar[str]
    topics: ClassVar[tuple[str, ...]]

    def handlers(self) -> Mapping[str, PolicyHandler]:
        raise NotImplementedError

    async def setup(self) -> None:
        """Create what the policy needs (indexes); idempotent."""


class PolicyConsumer:
    """Applies batches of records to one policy, in partition order."""

    def __init__(self, policy: Policy, dead_letters: DeadLetters, consumer_group: str) -> None:
        self.policy = policy
        self.name = policy.name
        self.topics = policy.topics
        self.dead_letters = dead_letters
        self.consumer_group = consumer_group
        self._handlers = policy.handlers()

    async def setup(self) -> None:
        await self.policy.setup()

    async def process(self, records: Sequence[Record]) -> Any:
        applied = 0
        for record in records:
            try:
                envelope = from_kafka(record.key, record.value or b"", record.headers)
            except ContractError as error:
                await self._dead_letter(record, error.code, error.reason)
                continue
            handler = self._handlers.get(envelope.type)
            if handler is None:
                continue
            try:
                await handler(envelope)
            except Rejected as error:
                await self._dead_letter(record, "rejected", str(error))
                continue
            applied += 1
        POLICY_EVENTS.labels(self.name).inc(applied)
        return applied

    async def _dead_letter(self, record: Record, code: str, reason: str) -> None:
        await self.dead_letters(record, code, reason, self.consumer_group)
        DEAD_LETTERS.labels(self.name, code).inc()
        log.warning(
            "event dead-lettered", policy=self.name, code=code, reason=reason,
            topic=record.topic, partition=record.partition, offset=record.offset,
        )  # fmt: skip
