"""On ``crm.customer.erased`` the campaign audience forgets which contact details the
person has and marks them erased (never targeted again); accounts stay."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from crm_backbone.testing_updates import apply_update
from crm_campaign.audience import AUDIENCE, AudienceView
from crm_events import core_banking as cb
from crm_events import customer as cu
from crm_events.common import CustomerName, CustomerType
from crm_events.envelope import Envelope
from crm_events.registry import EventPayload
from crm_events.topics import Service

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def deliver(docs: dict[str, Any], service: Service, aggregate: str, payload: EventPayload) -> None:
    event = Envelope.new(payload, aggregate, 1, actor="t", source=service.source, time=T0)
    for update in AudienceView().handlers()[event.type](event):
        assert update.collection == AUDIENCE
        docs[update.document_id] = apply_update(docs.get(update.document_id), update.update)


def test_an_erased_customer_leaves_the_audience_with_its_accounts_kept() -> None:
    docs: dict[str, Any] = {}
    deliver(
        docs,
        Service.CUSTOMER,
        "C1",
        cu.CustomerRegistered(
            customer_type=CustomerType.INDIVIDUAL,
            name=CustomerName(full_name="Tang Yilin"),
            status=cu.CustomerStatus.ACTIVE,
            phone="+86 136 0000 9999",
            email="tang@example.com",
            branch_id="BR-001",
        ),
    )
    deliver(
        docs,
        Service.CORE_BANKING,
        "ACC-1",
        cb.AccountOpened(
            customer_id="C1",
            product_code="SAV-1",
            product_name="Savings",
            product_type=cb.ProductType.SAVINGS,
            currency="CNY",
            branch_id="BR-001",
            opened_on=date(2020, 1, 1),
        ),
    )
    assert docs["C1"]["contacts"] == {"phone": True, "email": True}
    deliver(
        docs,
        Service.CUSTOMER,
        "C1",
        cu.CustomerErased(
            erased_at=T0,
            erased_by="dpo-subject",
            legal_basis=cu.ErasureBasis.PIPL_SERVICE_ENDED,
            reason="request DPR-4",
        ),
    )
    assert docs["C1"]["erased"] is True
    assert "contacts" not in docs["C1"]
    assert docs["C1"]["accounts"]["ACC-1"]["product_type"] == "savings"
