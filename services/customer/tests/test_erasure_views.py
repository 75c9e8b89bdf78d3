"""The single customer view forgets an erased person (name, phone, ID number, birth date,
the free texts about them) and keeps the non-personal facts; replaying the streams (a
rebuild) gives the erased view again. Handlers applied to in-memory documents."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from crm_backbone.keys import KeySealer
from crm_backbone.keys.memory import InMemoryKeys
from crm_backbone.testing_updates import apply_update
from crm_customer.views import CustomerViews
from crm_events import contact_log as cl
from crm_events import core_banking as cb
from crm_events import customer as cu
from crm_events import opportunity as op
from crm_events.common import (
    CustomerName,
    CustomerType,
    IdDocument,
    IdDocumentKind,
    Money,
    ValueBand,
)
from crm_events.envelope import Envelope
from crm_events.personal import JsonObject, open_payload, seal_payload, subject_of
from crm_events.registry import EventPayload
from crm_events.topics import Service
from hypothesis import given
from hypothesis import strategies as st

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
HANDLERS = CustomerViews().handlers()
Views = dict[str, dict[str, dict[str, Any]]]

names = st.from_regex(r"[A-Z][a-z]{3,8} [A-Z][a-z]{3,8}", fullmatch=True)
phones = st.from_regex(r"\+86 1[3-9][0-9] [0-9]{4} [0-9]{4}", fullmatch=True)
id_numbers = st.from_regex(r"[1-6][0-9]{16}[0-9X]", fullmatch=True)


def envelope(service: Service, aggregate: str, version: int, payload: EventPayload) -> Any:
    at = T0 + timedelta(minutes=version)
    return Envelope.new(payload, aggregate, version, actor="t", source=service.source, time=at)


def life_of(customer_id: str, name: str, phone: str, id_number: str) -> list[Any]:
    """A customer's day: registered, contacted, an account opened and closed."""
    customer = [
        cu.CustomerRegistered(
            customer_type=CustomerType.INDIVIDUAL,
            name=CustomerName(full_name=name, family_name=name.split()[0]),
            status=cu.CustomerStatus.ACTIVE,
            id_documents=[
                IdDocument(kind=IdDocumentKind.NATIONAL_ID, number=id_number, issuing_country="CN")
            ],
            birth_date=date(1980, 2, 3),
            phone=phone,
            branch_id="BR-001",
        ),
        cu.RelationshipManagerAssigned(manager_id="RM-0001", branch_id="BR-001"),
        cu.CustomerSegmentChanged(value_band=ValueBand.HIGH, reason="AUM"),
    ]
    account = f"ACC-{customer_id}"
    return [
        *(envelope(Service.CUSTOMER, customer_id, n, p) for n, p in enumerate(customer, 1)),
        envelope(
            Service.CORE_BANKING,
            account,
            1,
            cb.AccountOpened(
                customer_id=customer_id,
                product_code="SAV-1",
                product_name="Savings",
                product_type=cb.ProductType.SAVINGS,
                currency="CNY",
                branch_id="BR-001",
                opened_on=date(2020, 1, 1),
            ),
        ),
        envelope(
            Service.CORE_BANKING,
            account,
            2,
            cb.HoldingBalanceChanged(
                customer_id=customer_id,
                product_type=cb.ProductType.SAVINGS,
                previous_balance=Money(amount=Decimal(0), currency="CNY"),
                balance=Money(amount=Decimal("1200.50"), currency="CNY"),
                changed_at=T0,
            ),
        ),
        envelope(
            Service.CONTACT_LOG,
            f"CT-{customer_id}",
            1,
            cl.ContactLogged(
                customer_id=customer_id,
                category=cl.ContactCategory.PHONE,
                summary=f"called {name} about the savings plan",
                called=True,
                outcome=cl.ContactOutcome.REACHED,
                manager_id="RM-0001",
                started_at=T0,
            ),
        ),
    ]


def erasure(customer_id: str, version: int = 4) -> Any:
    payload = cu.CustomerErased(
        erased_at=T0 + timedelta(days=1),
        erased_by="dpo-subject",
        legal_basis=cu.ErasureBasis.PIPL_CONSENT_WITHDRAWN,
        reason="request DPR-9",
    )
    return envelope(Service.CUSTOMER, customer_id, version, payload)


def project(events: list[Any]) -> Views:
    views: Views = {}
    for event in events:
        for update in HANDLERS[event.type](event):
            collection = views.setdefault(update.collection, {})
            collection[update.document_id] = apply_update(
                collection.get(update.document_id), update.update
            )
    return views


@given(names, phones, id_numbers, names, phones, id_numbers)
def test_the_erased_person_is_gone_from_the_view_and_the_others_stay(
    name: str, phone: str, id_number: str, other_name: str, other_phone: str, other_id: str
) -> None:
    events = [
        *life_of("C1", name, phone, id_number),
        *life_of("C2", other_name, other_phone, other_id),
        erasure("C1"),
    ]
    erased, other = (project(events)["customers"][c] for c in ("C1", "C2"))
    text = str(erased)
    for trace in (name, *name.split(), phone, "".join(c for c in phone if c.isdigit()), id_number):
        assert trace not in text
        assert trace.lower() not in text
    assert "1980-02-03" not in text
    assert erased["erased"] == {
        "erased_at": T0 + timedelta(days=1),
        "erased_by": "dpo-subject",
        "legal_basis": "pipl_art47_3_consent_withdrawn",
    }
    assert "search" not in erased
    account = erased["accounts"]["ACC-C1"]
    assert (account["status"], account["balance"]["amount"]) == ("open", "1200.50")
    assert (erased["contact_count"], erased["segment"]["value_band"]) == (1, "high")
    assert erased["manager_id"] == "RM-0001"
    assert other["name"]["full_name"] == other_name
    assert other["search"]["phones"] == ["".join(c for c in other_phone if c.isdigit())]
    assert other_id.upper() in other["search"]["id_numbers"]


def sealed(event: Any, sealer: KeySealer) -> tuple[Any, JsonObject, str]:
    """The event as its topic keeps it: its personal fields sealed under its subject's key."""
    model = type(event.data)
    data = event.data.model_dump(mode="json")
    subject = subject_of(model, data, event.aggregateid)
    return event, seal_payload(data, model, subject, sealer), subject


def opened(kept: tuple[Any, JsonObject, str], sealer: KeySealer) -> Any:
    """The event as a consumer replaying the topic reads it."""
    event, data, subject = kept
    model = type(event.data)
    payload = model.model_validate(open_payload(data, model, subject, sealer))
    return event.model_copy(update={"data": payload})


@given(st.randoms(use_true_random=False))
def test_a_rebuild_in_any_order_of_the_streams_gives_the_erased_view_again(rng: Any) -> None:
    keys = InMemoryKeys()
    sealer = KeySealer(keys)
    person = ("Lu Mingxia", "+86 135 1111 2222", "11010119800203004X")
    customer_stream = [sealed(e, sealer) for e in [*life_of("C1", *person), erasure("C1")]]
    other_streams = [k for k in customer_stream if k[0].source != Service.CUSTOMER.source]
    customer_stream = [k for k in customer_stream if k[0].source == Service.CUSTOMER.source]
    live = project([opened(k, sealer) for k in customer_stream + other_streams])["customers"]
    keys.destroy("C1")
    sealer.forget("C1")
    replay: list[Any] = []
    while customer_stream or other_streams:  # the streams interleave, each in its order
        take_customer = customer_stream and (not other_streams or rng.random() < 0.5)
        replay.append(opened((customer_stream if take_customer else other_streams).pop(0), sealer))
    rebuilt = project(replay)["customers"]["C1"]
    for path in ("erased", "accounts", "segment", "manager_id", "contact_count"):
        assert rebuilt.get(path) == live["C1"].get(path), path
    text = str(rebuilt)
    for trace in (*person[0].split(), "1111", person[2], "1980-02-03"):
        assert trace not in text


def test_the_view_records_the_leads_naming_the_customer_whose_keys_erasure_destroys() -> None:
    captured = op.LeadCaptured(
        customer_id="C1",
        contact_name="Lu Mingxia",
        source=op.LeadSource.WALK_IN,
        branch_id="BR-001",
    )
    prospect = captured.model_copy(update={"customer_id": None})
    views = project(
        [
            envelope(Service.OPPORTUNITY, "LEAD-1", 1, captured),
            envelope(Service.OPPORTUNITY, "LEAD-2", 1, prospect),
            envelope(Service.OPPORTUNITY, "LEAD-2", 2, op.LeadQualified(customer_id="C1")),
        ]
    )
    assert views["customers"]["C1"]["lead_ids"] == ["LEAD-1", "LEAD-2"]
