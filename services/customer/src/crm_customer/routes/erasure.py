"""``/customers/{id}/erasure``: erase a customer's personal data on request, the data
protection officer's alone (every other role: 403)."""

from __future__ import annotations

import dataclasses
from typing import Annotated

from crm_backbone.access import Surface, require_command
from crm_backbone.callers import Caller, Who
from crm_backbone.service_api import Command
from crm_events.common import Name
from crm_events.customer import ErasureBasis
from fastapi import APIRouter, Depends
from pydantic import ConfigDict, Field

from crm_customer.ownership import WHOLE_BOOK
from crm_customer.routes.dependencies import Commands, Queries
from crm_customer.routes.models import Accepted, CustomerId, answers

router = APIRouter(tags=["erasure"])


def erasing_caller(caller: Who) -> Caller:
    """The caller of an erasure (403 for every role but the data protection officer's):
    its commands are on the erasure surface."""
    require_command(caller.reach, Surface.ERASURE)
    return dataclasses.replace(caller, surface=Surface.ERASURE)


Eraser = Annotated[Caller, Depends(erasing_caller)]


class ErasureRequest(Command):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"legal_basis": "pipl_art47_3_consent_withdrawn", "reason": "request DPR-2026-0113"}
            ]
        }
    )
    legal_basis: ErasureBasis = Field(description="PIPL Art. 47 or GDPR Art. 17 ground")
    reason: Name = Field(
        description="The request's reference (a ticket number): recorded for ever, so "
        "nothing about the person"
    )


@router.post(
    "/customers/{customer_id}/erasure",
    summary="Erase the customer's personal data",
    description="Refused with 409 `legal-hold`, naming each hold, while the bank must keep "
    "the customer's records (open accounts, the anti-money-laundering retention period, "
    "open complaints); 410 `customer-erased` once erased. The customer's key is destroyed "
    "and every view forgets the person; accounts, balances and counts remain.",
)
async def erase(
    customer_id: CustomerId,
    body: ErasureRequest,
    who: Eraser,
    commands: Commands,
    queries: Queries,
) -> Accepted:
    facts = await queries.relationship_facts(customer_id)
    return await answers.run(
        who,
        commands.erase,
        customer_id,
        body.expected_version,
        legal_basis=body.legal_basis,
        reason=body.reason,
        facts=facts,
        reach=WHOLE_BOOK,  # the officer's reach holds no record of the book: this is theirs
    )
