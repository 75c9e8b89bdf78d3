"""``/customers/{id}/merge``: merge a duplicate into its survivor (the golden record)."""

from __future__ import annotations

from datetime import date

from crm_backbone.callers import Who
from crm_backbone.service_api import Command
from crm_events.common import Id, Name
from fastapi import APIRouter
from pydantic import ConfigDict

from crm_customer.routes.dependencies import Commands
from crm_customer.routes.models import Accepted, CustomerId, answers

router = APIRouter(tags=["customers"])


class Merge(Command):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "duplicate_customer_id": "C00099999",
                    "reason": "same national id",
                    "merged_on": "2026-11-23",
                }
            ]
        }
    )
    duplicate_customer_id: Id
    reason: Name
    merged_on: date


@router.post("/customers/{customer_id}/merge", summary="Merge a duplicate into this customer")
async def merge(customer_id: CustomerId, body: Merge, who: Who, commands: Commands) -> Accepted:
    return await answers.run(
        who,
        commands.merge,
        customer_id,
        body.expected_version,
        body.duplicate_customer_id,
        body.reason,
        body.merged_on.isoformat(),
        reach=who.reach,
    )
