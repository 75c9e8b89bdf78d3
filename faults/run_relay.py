"""The customer service's outbox relay, publishing to the suite's topics.

``python -m faults.run_relay CONFIG``; CONFIG is JSON with ``kafka``, ``postgres`` (the
event store's DSN), ``keys`` and ``secrets`` (``child.key_sealer``: personal data sealed as
the customer service seals it), ``topic_prefix`` (of the suite's topic names), optionally
``name`` (a relay of another name keeps its own position: ``"replay"`` republishes
everything from the start), ``die``: once armed (SIGUSR1), the relay kills itself after
Kafka acknowledged a batch and before it records its new position, and ``reject`` =
``{"event": NAME, "from": ISO TIME}``: a translator bug, it rejects the domain events of
class ``NAME`` (``Customer.StatusChanged``, say) stored from that time on.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime
from typing import Any

from crm_backbone.eventstore import EventStoreConfig
from crm_backbone.relay import OutboxRelay, Translate
from crm_backbone.sealing import EventSealing
from crm_backbone.topic_names import TopicNames
from crm_customer.application import CustomerApplication
from crm_customer.publication import PAYLOADS, translate
from crm_events.registry import EventPayload
from crm_events.topics import Service
from eventsourcing.domain import DomainEvent
from eventsourcing.persistence import Tracking

from faults.child import KillSwitch, configuration, kafka_login, key_sealer, run_until_stopped


class _DyingTracking:
    """The relay's tracking recorder; recording a position is a kill point."""

    def __init__(self, inner: Any, switch: KillSwitch) -> None:
        self._inner = inner
        self._switch = switch

    def insert_tracking(self, tracking: Tracking) -> None:
        self._switch.point(f"recording position {tracking.notification_id} (batch published)")
        self._inner.insert_tracking(tracking)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def _rejecting(translate: Translate, event: str, stored_from: datetime) -> Translate:
    """``translate`` with a bug: it raises for ``event``s stored from ``stored_from`` on."""

    def translate_with_bug(domain_event: DomainEvent) -> EventPayload | None:
        if type(domain_event).__qualname__ == event and domain_event.timestamp >= stored_from:
            raise ValueError(f"translator bug injected by the fault suite for {event}")
        return translate(domain_event)

    return translate_with_bug


async def main() -> None:
    config = configuration("fault-relay")
    switch = KillSwitch()
    store = EventStoreConfig(postgres_dsn=config["postgres"])
    sealer = key_sealer(config)
    app = CustomerApplication(env=store.environment(), sealing=EventSealing(sealer, PAYLOADS))
    reject: dict[str, str] | None = config.get("reject")
    relay = OutboxRelay(
        app,
        _rejecting(translate, reject["event"], datetime.fromisoformat(reject["from"]))
        if reject
        else translate,
        source=Service.CUSTOMER.source,
        bootstrap_servers=config["kafka"],
        kafka_login=kafka_login(config),
        postgres_dsn=store.postgres_dsn,
        route=TopicNames(config["topic_prefix"]).of_event,
        name=f"{app.name}->kafka-{config['name']}" if config.get("name") else None,
        sealer=sealer,
    )
    if config.get("die"):
        relay.tracking = _DyingTracking(relay.tracking, switch)  # type: ignore[assignment]
    running = asyncio.create_task(relay.run())
    try:
        await run_until_stopped()
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
        app.close()


if __name__ == "__main__":
    asyncio.run(main())
