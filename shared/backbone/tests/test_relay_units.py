"""The relay's rules without servers: where it stops on an untranslatable event, what its
errors say (never the values), how its restarts back off and when it reports unready."""

from __future__ import annotations

from typing import Any

from crm_backbone.context import command_context
from crm_backbone.relay import OutboxRelay, UntranslatableEvent
from crm_backbone.testing import SOURCE, Customer, Customers, translate
from crm_events.customer import CustomerProfileUpdated
from crm_events.registry import EventPayload
from hypothesis import given
from hypothesis import strategies as st

MARKER = "王"
"""In the rejected value: an error that repeats the value shows it."""
PHONES = st.from_regex(r"\+86 1[0-9]{2} [0-9]{4}", fullmatch=True)


def relay_over(app: Customers, translator: Any = translate) -> OutboxRelay:
    """A relay of an in-memory store; these tests never start its producer."""
    return OutboxRelay(app, translator, source=SOURCE, bootstrap_servers="127.0.0.1:1")


@given(
    phones=st.lists(PHONES, max_size=20),
    rejected=st.text(max_size=20).map(lambda text: MARKER + text),
    poison_at=st.integers(min_value=0, max_value=20),
)
def test_translation_stops_at_the_first_untranslatable_event_without_its_values(
    phones: list[str], rejected: str, poison_at: int
) -> None:
    poison_at = min(poison_at, len(phones))
    phones.insert(poison_at, rejected)

    def strict(domain_event: Any) -> EventPayload | None:
        # A translator whose contract refuses one value: pydantic's error carries it.
        phone_changed = Customer.PhoneChanged  # type: ignore[attr-defined]
        if isinstance(domain_event, phone_changed) and domain_event.phone == rejected:
            return CustomerProfileUpdated.model_validate({"phone": rejected})
        return translate(domain_event)

    app = Customers()
    with command_context(actor="rm-1"):
        customer = app.register("Customer 1")
        for phone in phones:
            app.change_phone(customer, phone)
    notifications = app.recorder.select_notifications(start=None, limit=100)
    relay = relay_over(app, strict)
    batch = relay._translate(notifications)
    poison = notifications[1 + poison_at]  # after the registration
    assert isinstance(batch.failure, UntranslatableEvent)
    assert batch.failure.notification_id == poison.id
    assert batch.failure.event_type == poison.topic
    assert f"stored event {poison.id} ({poison.topic})" in str(batch.failure)
    assert MARKER not in str(batch.failure)
    assert batch.through == poison.id - 1
    assert len(batch.records) == poison.id - 1  # every event before it, none after
    assert relay._translate(notifications[: poison.id - 1]).failure is None


def test_restarts_back_off_and_readiness_turns_red_on_the_second_failure_in_a_row() -> None:
    relay = relay_over(Customers())
    relay.backoff = (0.5, 4.0)
    delays = [relay._failed(ConnectionError("broker down")) for _ in range(6)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    relay.failures_in_row = 1
    assert relay.unready_reason() is None
    relay.failures_in_row = 2
    assert "ConnectionError: broker down" in (relay.unready_reason() or "")
    relay._succeeded(position=0)
    assert relay.unready_reason() is None
    assert relay.last_success_at is not None


def test_events_pending_with_no_progress_for_long_is_unready() -> None:
    relay = relay_over(Customers())
    relay._succeeded(position=10)
    relay.store_head = 12
    assert relay.unready_reason(stale_after=60) is None
    assert relay.last_success_at is not None
    relay.last_success_at -= 61
    assert relay.unready_reason(stale_after=60) == (
        "2 events pending and nothing published for 61 s"
    )
    relay.store_head = 10  # nothing pending: idle, not stuck
    assert relay.unready_reason(stale_after=60) is None
