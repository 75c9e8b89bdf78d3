"""Policies: reactions to events of other streams that issue commands on a service's own aggregates.

A :class:`Policy` maps event types to async handlers. The :class:`PolicyConsumer` applies a
Kafka batch in order; a record that breaks the contract, or that a handler rejects with
:class:`Rejected` (the event is valid but cannot be applied, e.g. it names data the
service refuses), goes to the dead-letter topic with the reason and never blocks its
partition; it holds back its own aggregate (:mod:`crm_backbone.holds`). Any other
exception fails the batch, which is redelivered (a store or MongoDB outage): handlers are
idempotent, so reapplying is safe; a handler that keeps raising (a code bug) has its event
dead-lettered as ``handler_error`` after its retries (:class:`HandlerRetries`).

An event that cannot apply *yet* (its customer is not registered, its campaign has not
started) makes its handler raise :class:`NotYet`: the consumer parks the record in the
service's parking lot (:mod:`crm_backbone.parking`) under the event's hold key
(:meth:`Policy.hold_of`), and so does every later event of that hold key until it is
released, so they keep their order. The event that settles a hold (the registration) is
named by :meth:`Policy.releases`: once its handler has returned (the fact is written),
the consumer releases the hold, reapplying the parked records through the same path.
After parking, the consumer checks :meth:`Policy.ready` again and releases if it holds by
then: whichever side runs last sees the other's write, across instances too.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from functools import partial
from typing import Any, ClassVar

import structlog
from crm_events.envelope import Envelope, from_kafka
from crm_events.errors import ContractError
from crm_events.personal import FieldSealer
from crm_events.registry import EventPayload
from pymongo.asynchronous.database import AsyncDatabase

from crm_backbone.holds import (
    DeadLetterHolds,
    HoldsPass,
    drain_after_batch,
    header_version,
    release_unheld,
)
from crm_backbone.metrics import DEAD_LETTERS, POLICY_EVENTS
from crm_backbone.parking import PARKING_COLLECTION, ParkedRecord, ParkingLot, StillHeld
from crm_backbone.records import Document, Record, prefetch_keys
from crm_backbone.retries import OUTAGES, DeadLetters, HandlerGaveUp, HandlerRetries

log = structlog.get_logger(__name__)

PolicyHandler = Callable[[Envelope[EventPayload]], Awaitable[None]]


class Rejected(Exception):
    """The event is well formed but this service cannot apply it: dead-letter it."""


_NOT_A_BUG: tuple[type[Exception], ...] = (Rejected, StillHeld, *OUTAGES)
"""What a handler raises that is not retried as a handler error."""


class NotYet(Exception):
    """The event cannot apply until its hold is released (the message says why): park it."""


class Policy:
    name: ClassVar[str]
    topics: ClassVar[tuple[str, ...]]
    parking_expiry_seconds: ClassVar[int | None] = None
    """Parked records older than this are dropped (None: kept until released)."""
    reads_personal_data: ClassVar[bool] = True
    """Whether its handlers need personal data in clear; False: it is given no sealer, and
    opens no key for the records it reads."""

    def handlers(self) -> Mapping[str, PolicyHandler]:
        raise NotImplementedError

    async def setup(self) -> None:
        """Create what the policy needs (indexes); idempotent."""

    def hold_of(self, envelope: Envelope[EventPayload]) -> str | None:
        """The hold key the event waits under if it cannot apply yet; None: it never waits."""
        return None

    def releases(self, envelope: Envelope[EventPayload]) -> str | None:
        """The hold key this event settles, released once its handler has returned."""
        return None

    async def ready(self, hold: str) -> bool:
        """Whether what ``hold`` waits for has happened (checked again after parking)."""
        return False


class PolicyConsumer:
    """Applies batches of records to one policy, in partition order, parking what must wait."""

    def __init__(
        self,
        policy: Policy,
        dead_letters: DeadLetters,
        consumer_group: str,
        database: AsyncDatabase[Document],
        retries: HandlerRetries | None = None,
        sealer: FieldSealer | None = None,
        parking_sealer: FieldSealer | None = None,
    ) -> None:
        self.policy = policy
        self.sealer = sealer
        """Opens the personal data of the records (none: their erased forms)."""
        self.name = policy.name
        self.topics = policy.topics
        self.dead_letters = dead_letters
        self.consumer_group = consumer_group
        self.parking = ParkingLot(
            database[PARKING_COLLECTION],
            consumer_group,
            expire_after_seconds=policy.parking_expiry_seconds,
            # the service's sealer: a policy reading no personal data may park some
            sealer=parking_sealer or sealer,
        )
        self.holds = DeadLetterHolds(database, consumer_group)
        self.retries = retries or HandlerRetries()
        self._handlers = policy.handlers()

    async def setup(self) -> None:
        await self.policy.setup()
        await self.parking.setup()
        await self.parking.observe()

    async def process(self, records: Sequence[Record]) -> Any:
        """Apply one batch, then what its settled dead letters no longer hold back."""
        applied, settled = await self._pass(records)
        if settled:
            await drain_after_batch(self, settled)
        await self.parking.observe()
        return applied

    async def drain_released(self, holds: Iterable[str] | None = None) -> int:
        """Apply the parked records of dead-letter ``holds`` (default: all) no unsettled
        letter holds back any more, in arrival order."""
        to_drain = await self.holds.all() if holds is None else holds
        return await release_unheld(self.holds, self.parking, to_drain, self._apply_released)

    async def _apply_released(self, parked: ParkedRecord, hold: str) -> None:
        await self._pass([parked], releasing=hold)

    async def _pass(
        self, records: Sequence[Record], releasing: str | None = None
    ) -> tuple[int, set[str]]:
        """Apply records in order; how many applied, and the holds whose letters settled.

        Dead letters are sent once every handler returned: a batch failing on a handler
        to be retried sends none twice.
        """
        applied = 0
        holds = HoldsPass(self.holds, self.parking)
        await holds.load(records, releasing)
        await prefetch_keys(self.sealer, records)
        letters: list[tuple[Record, str, str]] = []
        for record in records:
            holds.redriven(record)
            try:
                envelope = from_kafka(record.key, record.value or b"", record.headers, self.sealer)
            except ContractError as error:
                letters.append((record, error.code, error.reason))
                holds.dead_lettered(record, header_version(record.headers))
                continue
            if envelope.type not in self._handlers:
                continue
            if (held := holds.waits(record, envelope.aggregateversion)) is not None:
                await self._park(held, record, "behind a dead letter of its aggregate")
                continue
            hold = self.policy.hold_of(envelope)
            if hold is not None and await self.parking.held([hold]):
                await self._park(hold, record, "behind earlier events of the same hold")
                continue
            try:
                waiting = await self._handle(record, envelope)
            except (Rejected, HandlerGaveUp) as error:
                letters.append((record, *_dead_letter_reason(error)))
                holds.dead_lettered(record, envelope.aggregateversion)
                continue
            if waiting is not None:
                if hold is None:
                    raise TypeError(f"{self.name}: {envelope.type} cannot wait, it has no hold")
                await self._park(hold, record, waiting)
            else:
                applied += 1
        for record, code, reason in letters:
            await self._dead_letter(record, code, reason)
        await holds.write_letters()
        POLICY_EVENTS.labels(self.name).inc(applied)
        return applied, await holds.write_settled()

    async def _decode(self, record: Record) -> Envelope[EventPayload] | None:
        try:
            return from_kafka(record.key, record.value or b"", record.headers, self.sealer)
        except ContractError as error:
            await self._dead_letter(record, error.code, error.reason)
            return None

    async def _handle(self, record: Record, envelope: Envelope[EventPayload]) -> str | None:
        """:meth:`_apply`, retried while the handler raises a bug's exception; raises
        :class:`Rejected` or :class:`HandlerGaveUp` to dead-letter the event."""
        return await self.retries.run(
            self.consumer_group, partial(self._apply, record, envelope), passing=_NOT_A_BUG
        )

    async def _apply(self, record: Record, envelope: Envelope[EventPayload]) -> str | None:
        """Run the event's handler, then release what it settles; why it must wait, or None.

        :class:`Rejected` and unexpected exceptions propagate to the caller.
        """
        try:
            await self._handlers[envelope.type](envelope)
        except NotYet as waiting:
            return str(waiting)
        if (settled := self.policy.releases(envelope)) is not None:
            await self.parking.release(settled, self._reapply)
        return None

    async def _park(self, hold: str, record: Record, reason: str) -> None:
        await self.parking.park_until(
            hold, record, reason, ready=partial(self.policy.ready, hold), apply=self._reapply
        )
        log.info(
            "event parked",
            policy=self.name,
            reason=reason,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
        )

    async def _reapply(self, parked: ParkedRecord) -> None:
        """A parked record, through the same path; :class:`StillHeld` if it must wait on."""
        envelope = await self._decode(parked)
        if envelope is None or envelope.type not in self._handlers:
            return
        try:
            waiting = await self._handle(parked, envelope)
        except (Rejected, HandlerGaveUp) as error:
            await self._dead_letter(parked, *_dead_letter_reason(error))
            return
        if waiting is not None:
            raise StillHeld(parked.reason)
        POLICY_EVENTS.labels(self.name).inc()
        log.info(
            "parked event applied",
            policy=self.name,
            topic=parked.topic,
            partition=parked.partition,
            offset=parked.offset,
        )

    async def _dead_letter(self, record: Record, code: str, reason: str) -> None:
        await self.dead_letters(record, code, reason, self.consumer_group)
        DEAD_LETTERS.labels(self.name, code).inc()
        log.warning(
            "event dead-lettered",
            policy=self.name,
            code=code,
            reason=reason,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
        )


def _dead_letter_reason(error: Rejected | HandlerGaveUp) -> tuple[str, str]:
    """(code, reason) of an event its handler rejected, or kept failing on."""
    if isinstance(error, HandlerGaveUp):
        return "handler_error", error.reason
    return "rejected", str(error)
