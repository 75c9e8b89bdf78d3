"""Erasing a customer in the application (in-memory store and key store): the holds
refuse it, the erased event carries no personal data, the keys are destroyed, the
aggregate keeps only non-personal facts, and every later command is refused."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

import pytest
from crm_backbone.application import StaleVersion
from crm_backbone.context import command_context
from crm_backbone.keys.memory import InMemoryKeys
from crm_customer.application import CustomerApplication, ErasureUnavailable
from crm_customer.erasure import (
    ERASED_NAME,
    AccountState,
    CustomerErasedError,
    HoldKind,
    LegalHoldApplies,
    RelationshipFacts,
)
from crm_customer.policies import CustomerPolicies
from crm_customer.publication import translate
from crm_events.core_banking import CustomerDataChanged
from crm_events.customer import CustomerErased, CustomerStatus, ErasureBasis
from crm_events.envelope import Envelope
from crm_events.personal import personal_fields
from crm_events.registry import EventPayload
from crm_events.topics import Service
from prometheus_client import REGISTRY

NOW = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)
NO_RELATIONSHIP = RelationshipFacts()
BASIS = ErasureBasis.PIPL_CONSENT_WITHDRAWN
DROPPED = "crm_erased_subject_records_dropped"


def person(full_name: str, phone: str, id_number: str) -> dict[str, Any]:
    return {
        "customer_type": "individual",
        "name": {"full_name": full_name},
        "status": "active",
        "id_documents": [{"kind": "national_id", "number": id_number, "issuing_country": "CN"}],
        "birth_date": "1985-06-01",
        "phone": phone,
        "email": "someone@example.com",
        "address": None,
        "occupation": "teacher",
        "industry": None,
        "branch_id": "BR-001",
        "preferred_channel": "phone",
    }


@pytest.fixture
def keys() -> InMemoryKeys:
    return InMemoryKeys()


@pytest.fixture
def app(keys: InMemoryKeys) -> CustomerApplication:
    app = CustomerApplication(
        env={"PERSISTENCE_MODULE": "eventsourcing.popo"}, subject_keys=keys, clock=lambda: NOW
    )
    app.register("C1", person("Qiu Lanying", "+86 138 0000 1111", "110101198506010021"))
    app.register("C2", person("Ren Haoyu", "+86 138 0000 2222", "110101198506010048"))
    for subject in ("C1", "C2"):
        keys.key_for_writing(subject)
    return app


def erase(app: CustomerApplication, customer_id: str = "C1", **facts: Any) -> int:
    with command_context("dpo-subject"):
        return app.erase(
            customer_id,
            None,
            legal_basis=BASIS,
            reason="request DPR-1",
            facts=RelationshipFacts(**facts),
        )


def test_the_erased_customer_keeps_only_non_personal_facts_and_its_key_is_destroyed(
    app: CustomerApplication, keys: InMemoryKeys
) -> None:
    app.change_segment("C1", None, value_band="high", corporate_tier=None, reason="AUM")
    version = erase(app)
    customer = app.get("C1")
    assert customer.version == version
    assert customer.erasure == {
        "erased_at": NOW.isoformat(),
        "erased_by": "dpo-subject",
        "legal_basis": BASIS.value,
    }
    assert (customer.name, customer.id_documents, customer.birth_date) == (ERASED_NAME, [], None)
    assert (customer.profile["phone"], customer.profile["email"]) == (None, None)
    assert (customer.value_band, customer.profile["occupation"]) == ("high", "teacher")
    assert keys.key_for_reading("C1") is None
    assert keys.key_for_reading("C2") is not None
    assert app.get("C2").name == {"full_name": "Ren Haoyu"}


def test_the_erased_event_names_who_when_and_why_and_nothing_personal(
    app: CustomerApplication,
) -> None:
    erase(app)
    stored = list(app.events.get(app.get("C1").id))[-1]
    payload = translate(stored)
    assert isinstance(payload, CustomerErased)
    assert (payload.erased_at, payload.erased_by) == (NOW, "dpo-subject")
    assert (payload.legal_basis, payload.reason) == (BASIS, "request DPR-1")
    assert personal_fields(CustomerErased) == {}


def test_a_hold_refuses_erasure_with_its_reason_and_changes_nothing(
    app: CustomerApplication, keys: InMemoryKeys
) -> None:
    before = app.get("C1").version
    with pytest.raises(LegalHoldApplies) as refused:
        erase(app, accounts=(AccountState("ACC-1", None),), open_complaints=1)
    assert [h.kind for h in refused.value.holds] == [
        HoldKind.OPEN_ACCOUNTS,
        HoldKind.OPEN_COMPLAINTS,
    ]
    assert "Qiu" not in str(refused.value)
    assert app.get("C1").version == before
    assert keys.key_for_reading("C1") is not None


def test_the_retention_period_is_the_configured_one(keys: InMemoryKeys) -> None:
    app = CustomerApplication(
        env={"PERSISTENCE_MODULE": "eventsourcing.popo"},
        subject_keys=keys,
        clock=lambda: NOW,
        aml_retention_years=1,
    )
    app.register("C1", person("Qiu Lanying", "+86 138 0000 1111", "X1"))
    closed = (AccountState("ACC-1", date(2025, 11, 25)),)
    with pytest.raises(LegalHoldApplies):
        erase(app, accounts=closed)
    erase(app, accounts=(AccountState("ACC-1", date(2025, 11, 24)),))


def test_every_command_on_an_erased_customer_is_refused(app: CustomerApplication) -> None:
    erase(app)
    refused: list[Callable[[], object]] = [
        lambda: app.update_profile("C1", None, {"phone": "+86 139 0000 0000"}),
        lambda: app.change_status("C1", None, status=CustomerStatus.DORMANT, reason="quiet"),
        lambda: app.set_consent("C1", None, channel="sms", opted_in=True, reason=None),
        lambda: app.merge("C2", None, "C1", "duplicate", "2026-11-24"),
        lambda: app.apply_core_data("C1", 7, "EV-1", {"phone": "+86 139 0000 0000"}),
        lambda: app.record_opt_out("C1", "sms", "CMP-1"),
    ]
    for command in refused:
        with pytest.raises(CustomerErasedError):
            command()


def test_erasing_again_destroys_the_keys_again_and_is_refused(
    app: CustomerApplication, keys: InMemoryKeys
) -> None:
    version = erase(app)
    keys.keys["C1"] = b"\x00" * 32  # as if the first destruction had failed
    with pytest.raises(CustomerErasedError):
        erase(app)
    assert keys.key_for_reading("C1") is None
    assert app.get("C1").version == version


def test_the_duplicates_merged_into_the_customer_are_erased_with_it(
    app: CustomerApplication, keys: InMemoryKeys
) -> None:
    app.merge("C1", None, "C2", "the same person", "2026-11-01")
    erase(app)
    assert app.get("C2").erasure is not None
    assert app.get("C2").name == ERASED_NAME
    assert keys.key_for_reading("C2") is None


def test_the_keys_of_the_leads_captured_for_the_customer_are_destroyed_too(
    app: CustomerApplication, keys: InMemoryKeys
) -> None:
    for lead in ("LEAD-1", "LEAD-2"):
        keys.key_for_writing(lead)
    erase(app, lead_ids=("LEAD-1",))
    assert keys.key_for_reading("LEAD-1") is None
    assert keys.key_for_reading("LEAD-2") is not None


def test_without_a_key_store_nothing_is_erased() -> None:
    app = CustomerApplication(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    app.register("C1", person("Qiu Lanying", "+86 138 0000 1111", "X1"))
    with pytest.raises(ErasureUnavailable):
        erase(app)
    assert app.get("C1").erasure is None


def test_a_stale_version_is_refused(app: CustomerApplication) -> None:
    with pytest.raises(StaleVersion):
        app.erase("C1", 9, legal_basis=BASIS, reason="r", facts=NO_RELATIONSHIP)


async def test_core_banking_data_about_an_erased_customer_is_dropped_and_counted(
    app: CustomerApplication, capsys: pytest.CaptureFixture[str]
) -> None:
    erase(app)
    before = app.get("C1").version
    change: Envelope[EventPayload] = Envelope.new(
        CustomerDataChanged(phone="+86 139 4444 5555"),
        "C1",
        3,
        actor="core-banking",
        source=Service.CORE_BANKING.source,
    )

    def dropped() -> float:
        labels = {"event_type": change.type}
        return REGISTRY.get_sample_value(f"{DROPPED}_total", labels) or 0.0

    count = dropped()
    await CustomerPolicies(app).apply(change)
    assert dropped() == count + 1
    assert app.get("C1").version == before
    assert app.get("C1").profile["phone"] is None
    assert "4444" not in capsys.readouterr().out
