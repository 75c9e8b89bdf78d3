"""Reads of personal data recorded before they are answered: no audit, no personal data.

A read route of the book that shows customers' personal data takes :data:`PersonalReads`
and, once it knows which customers its answer shows, awaits
``reads.record(customer_ids)``: one ``crm.audit.personal_data_read`` event
(``crm_events.audit``) naming them, the endpoint and the reader (actor, client, staff id),
published to the personal-data reads topic and acknowledged by every in-sync replica
(``acks=all``) before the route answers. When it cannot be recorded (Kafka down, the
topic refused, no acknowledgement in time), the read fails closed: a 503 problem
``audit-unavailable``, and the caller sees nothing.

Each API process has one :class:`ReadAudit` (``app.state.read_audit``, made by
``service_api`` from the service's runtime), whose producer connects on the first read
and again after a failure. A unit test's ``TestIdentity`` brings its own recorder
(:class:`RecordedReads`, through its ``Authentication``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Protocol
from uuid import uuid4

import structlog
from aiokafka import AIOKafkaProducer
from crm_events.audit import MAX_CUSTOMERS_PER_READ, PersonalDataRead
from crm_events.envelope import Envelope, to_kafka
from crm_events.topics import PERSONAL_DATA_READS
from fastapi import APIRouter, Depends, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from crm_backbone.callers import Caller, Reader
from crm_backbone.http import PROBLEM_JSON, Problem, problem_responses
from crm_backbone.kafka import ensure_topics, reliable_producer
from crm_backbone.runtime import ServiceHandle, ServiceRuntime
from crm_backbone.topic_names import TopicNames

log = structlog.get_logger(__name__)

RECORD_WITHIN_S = 5.0
"""How long a read waits for its audit event to be acknowledged before it fails closed."""


AUDIT_UNAVAILABLE = (
    503,
    "audit-unavailable",
    "Service unavailable",
    "this read of personal data could not be recorded in the audit trail; retry",
)


def audit_unavailable() -> Problem:
    """503: the read could not be recorded, so it is not answered."""
    return Problem(*AUDIT_UNAVAILABLE)


class ReadRecorder(Protocol):
    """Where an API records who read whose personal data."""

    async def record(self, read: Envelope[PersonalDataRead]) -> None:
        """Record ``read`` durably, or raise the 503 problem of :func:`audit_unavailable`."""
        ...


@dataclass
class ReadAudit:
    """Publishes reads to the personal-data reads topic of a deployment (``topics``) on a
    producer of the service's principal (``login``), connected on first use, when it also
    creates the topic if missing; dropped and reconnected after a failure."""

    bootstrap_servers: str
    topics: TopicNames = field(default_factory=TopicNames)
    login: Mapping[str, Any] = field(default_factory=dict)
    within_s: float = RECORD_WITHIN_S
    _producer: AIOKafkaProducer | None = field(init=False, default=None)
    _lock: asyncio.Lock = field(init=False, default_factory=asyncio.Lock)

    @classmethod
    def of(cls, runtime: ServiceRuntime) -> ReadAudit:
        """The read audit of a service: its deployment's topics, its principal's login."""
        return cls(runtime.kafka_bootstrap, runtime.topics, runtime.kafka_login)

    @property
    def topic(self) -> str:
        return self.topics(PERSONAL_DATA_READS.name)

    async def record(self, read: Envelope[PersonalDataRead]) -> None:
        record = to_kafka(read)
        try:
            async with asyncio.timeout(self.within_s):
                producer = await self._connected()
                await producer.send_and_wait(
                    self.topic, value=record.value, key=record.key, headers=record.headers
                )
        except Exception as error:  # whatever Kafka says, the read is not answered
            log.error("personal data read not recorded", error=type(error).__name__)
            await self._drop()
            raise audit_unavailable() from None

    async def close(self) -> None:
        await self._drop()

    async def _connected(self) -> AIOKafkaProducer:
        async with self._lock:
            if self._producer is None:
                specs = self.topics.specs([PERSONAL_DATA_READS.name])
                await ensure_topics(self.bootstrap_servers, specs, login=self.login)
                producer = reliable_producer(self.bootstrap_servers, **self.login)
                try:
                    await producer.start()
                except BaseException:
                    await producer.stop()
                    raise
                self._producer = producer
            return self._producer

    async def _drop(self) -> None:
        async with self._lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()


@dataclass
class RecordedReads:
    """A recorder that keeps the reads in memory (unit tests)."""

    reads: list[Envelope[PersonalDataRead]] = field(default_factory=list)

    async def record(self, read: Envelope[PersonalDataRead]) -> None:
        self.reads.append(read)


def read_audit(request: Request) -> ReadRecorder:
    """FastAPI dependency: the app's recorder of personal-data reads."""
    recorder: ReadRecorder = request.app.state.read_audit
    return recorder


@dataclass(frozen=True)
class PersonalDataReads:
    """What one request records: its reader, its endpoint, the service answering."""

    recorder: ReadRecorder
    caller: Caller
    endpoint: str
    source: str
    new_id: Callable[[], str] = field(default=lambda: str(uuid4()))
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    async def record(self, customer_ids: Iterable[str]) -> None:
        """Record that the answer shows these customers' personal data (nothing when it
        shows none; an event per thousand customers when it shows more); a 503 problem
        when that cannot be recorded."""
        shown = list(dict.fromkeys(customer_ids))
        for first in range(0, len(shown), MAX_CUSTOMERS_PER_READ):
            await self._record(shown[first : first + MAX_CUSTOMERS_PER_READ])

    async def _record(self, customer_ids: list[str]) -> None:
        principal = self.caller.principal
        payload = PersonalDataRead(
            customer_ids=customer_ids,
            endpoint=self.endpoint,
            staff_id=principal.staff_id if principal else None,
            masked=self.caller.reach.masked,
        )
        read_id = self.new_id()
        await self.recorder.record(
            Envelope.new(
                payload,
                aggregate_id=read_id,
                aggregate_version=1,
                actor=self.caller.actor,
                source=self.source,
                client=self.caller.client,
                correlation_id=self.caller.correlation_id,
                event_id=read_id,
                time=self.clock(),
            )
        )


def endpoint_of(request: Request) -> str:
    """The method and route template of ``request`` (``GET /customers/{customer_id}``):
    what was read, without the ids in the path."""
    route = request.scope.get("route")
    path = getattr(route, "path", None) or request.url.path
    return f"{request.method} {path}"


def personal_data_reads(
    request: Request,
    caller: Reader,
    recorder: Annotated[ReadRecorder, Depends(read_audit)],
) -> PersonalDataReads:
    """FastAPI dependency: the recorder of this request's reads of personal data."""
    handle: ServiceHandle = request.app.state.service
    source = handle.runtime.components.service.source
    return PersonalDataReads(recorder, caller, endpoint_of(request), source)


PersonalReads = Annotated[PersonalDataReads, Depends(personal_data_reads)]
"""A read route's recorder of the personal data it shows (its caller a :data:`Reader`)."""


def _records_reads(dependant: Dependant) -> bool:
    return any(
        sub.call is personal_data_reads or _records_reads(sub) for sub in dependant.dependencies
    )


def document_audited_reads(routers: Iterable[APIRouter]) -> None:
    """Give every route of ``routers`` that records its reads its 503 ``audit-unavailable``
    in the OpenAPI document, beside a 503 it documents already (``view-behind``)."""
    for router in routers:
        for route in router.routes:
            if isinstance(route, APIRoute) and _records_reads(route.dependant):
                route.responses = {**route.responses, 503: _with_audit_unavailable(route)}


def _with_audit_unavailable(route: APIRoute) -> dict[str, Any]:
    ((_, audit),) = problem_responses(AUDIT_UNAVAILABLE).items()
    documented = route.responses.get(503) or route.responses.get("503")
    if documented is None:
        return audit
    content = documented["content"][PROBLEM_JSON]
    examples = content.get("examples") or {
        str(content["example"]["type"]).rsplit("/", 1)[-1]: {"value": content["example"]}
    }
    examples["audit-unavailable"] = {"value": audit["content"][PROBLEM_JSON]["example"]}
    return {
        "description": documented["description"],
        "content": {PROBLEM_JSON: {"examples": examples}},
    }
