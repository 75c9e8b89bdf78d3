"""The customer's personal data in the event store: sealed in the file's bytes, events and
snapshots alike; clear to the application; erased forms once the key is destroyed, and the
aggregate still loads and still publishes."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from crm_backbone.keys import KeySealer
from crm_backbone.keys.memory import InMemoryKeys
from crm_backbone.relay import OutboxRelay, integration_envelope
from crm_backbone.sealing import EventSealing
from crm_customer.application import CustomerApplication
from crm_customer.domain import Customer
from crm_customer.publication import PAYLOADS, translate
from crm_events.customer import CustomerStatus
from crm_events.envelope import from_kafka, to_kafka
from crm_events.personal import ERASED, is_token
from eventsourcing.domain import DomainEvent

SOURCE = "/crm/customer"
DISTINCTIVE = {
    "name": "Lou Wenjing",
    "id": "330106199102029876",
    "phone": "+86 137 2468 1357",
    "email": "lou.wenjing@example.cn",
    "street": "17 Baochu Lu",
    "reason": "moved to Hangzhou with her family",
}


def person() -> dict[str, Any]:
    return {
        "customer_type": "individual",
        "name": {"full_name": DISTINCTIVE["name"], "family_name": "Lou", "given_name": "Wenjing"},
        "status": "prospect",
        "id_documents": [
            {"kind": "national_id", "number": DISTINCTIVE["id"], "issuing_country": "CN"}
        ],
        "birth_date": "1991-02-02",
        "phone": DISTINCTIVE["phone"],
        "email": None,
        "address": {"line1": DISTINCTIVE["street"], "city": "Hangzhou", "country": "CN"},
        "occupation": None,
        "industry": None,
        "branch_id": "BR-001",
        "preferred_channel": None,
    }


def application(store: Path, keys: InMemoryKeys) -> CustomerApplication:
    return CustomerApplication(
        env={"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(store)},
        sealing=EventSealing(KeySealer(keys), PAYLOADS),
    )


def stored_bytes(store: Path) -> bytes:
    return b"".join(path.read_bytes() for path in store.parent.glob(f"{store.name}*"))


def work(app: CustomerApplication) -> None:
    app.register("C1", person())
    app.update_profile("C1", None, {"email": DISTINCTIVE["email"]})
    app.change_status("C1", None, status=CustomerStatus.ACTIVE, reason=DISTINCTIVE["reason"])
    app.take_snapshot(app.get("C1").id)


def test_the_store_holds_no_clear_personal_value(tmp_path: Path) -> None:
    store = tmp_path / "events.sqlite"
    app = application(store, InMemoryKeys())
    work(app)

    customer = app.get("C1")

    assert app.snapshots is not None
    (snapshot,) = app.snapshots.get(customer.id)  # taken, sealed, and it opens
    assert snapshot.state["name"]["full_name"] == DISTINCTIVE["name"]  # type: ignore[attr-defined]
    assert customer.name["full_name"] == DISTINCTIVE["name"]
    assert customer.profile["email"] == DISTINCTIVE["email"]
    assert customer.id_documents[0]["number"] == DISTINCTIVE["id"]
    assert [text for text in DISTINCTIVE.values() if text.encode() in stored_bytes(store)] == []


def test_an_erased_customer_loads_with_erased_forms_and_still_publishes(tmp_path: Path) -> None:
    store = tmp_path / "events.sqlite"
    keys = InMemoryKeys()
    work(application(store, keys))
    keys.destroy("C1")

    app = application(store, keys)  # a fresh process: no key remembered
    customer: Customer = app.get("C1")

    assert customer.name == {"full_name": ERASED}
    assert customer.id_documents == []
    assert customer.birth_date is None
    assert customer.profile["phone"] is None
    assert customer.profile["email"] is None
    assert customer.status is CustomerStatus.ACTIVE
    assert customer.version == 3
    assert app.snapshots is not None
    assert app.snapshots.recorder.select_events(customer.id)  # one is stored ...
    assert list(app.snapshots.get(customer.id)) == []  # ... and passed over
    events = [e for e in app.repository.event_store.get(customer.id) if isinstance(e, DomainEvent)]
    envelopes = [integration_envelope(e, p, SOURCE) for e in events if (p := translate(e))]
    assert [e.type for e in envelopes] == [
        "crm.customer.registered",
        "crm.customer.profile_updated",
        "crm.customer.status_changed",
    ]
    # The relay republishes them (the key is gone: the erased forms, nothing sealed).
    values = b"".join(to_kafka(envelope, KeySealer(keys)).value for envelope in envelopes)
    assert [text for text in DISTINCTIVE.values() if text.encode() in values] == []
    assert b"pd1:" not in values


class SealsOnly(KeySealer):
    """A sealer that refuses to open: what the relay must never need."""

    def open(self, subject: str, token: str) -> bytes | None:
        raise AssertionError("the relay opened a token")


def test_the_relay_publishes_the_stored_tokens_without_opening_them(tmp_path: Path) -> None:
    store = tmp_path / "events.sqlite"
    keys = InMemoryKeys()
    work(application(store, keys))
    app = application(store, keys)
    relay = OutboxRelay(app, translate, source=SOURCE, bootstrap_servers="127.0.0.1:1")
    relay.sealer = SealsOnly(keys)
    notifications = app.recorder.select_notifications(start=None, limit=100)

    batch = relay._translate(notifications)

    assert batch.failure is None
    stored_tokens = set(re.findall(rb"pd1:[A-Za-z0-9_=-]+", stored_bytes(store)))
    published = [json.loads(record.value or b"") for record in batch.records]
    published_tokens = {
        value.encode() for body in published for value in body.values() if is_token(value)
    }
    assert published_tokens
    assert published_tokens <= stored_tokens
    opened = [from_kafka(r.key, r.value or b"", r.headers, KeySealer(keys)) for r in batch.records]
    assert opened[0].data.model_dump(mode="json", include={"name", "phone"}) == {
        "name": person()["name"],
        "phone": person()["phone"],
    }
    keys.destroy("C1")
    after = [from_kafka(r.key, r.value or b"", r.headers, KeySealer(keys)) for r in batch.records]
    assert after == [from_kafka(r.key, r.value or b"", r.headers) for r in batch.records]
