"""``/customers/{id}/relationships``: relate two customers, or end it; both sides at once."""

from __future__ import annotations

from datetime import date

from crm_backbone.callers import Who
from crm_backbone.service_api import Command
from crm_events.common import Id
from crm_events.customer import RelationshipType
from fastapi import APIRouter
from pydantic import ConfigDict

from crm_customer.routes.dependencies import Commands
from crm_customer.routes.models import Accepted, CustomerId, answers

router = APIRouter(tags=["customers"])


class RelationshipLink(Command):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"related_customer_id": "C00012346", "relationship_type": "spouse"}]
        }
    )
    related_customer_id: Id
    relationship_type: RelationshipType
    since: date | None = None


class RelationshipEnd(Command):
    related_customer_id: Id
    relationship_type: RelationshipType
    ended_on: date
    reason: str | None = None


@router.post("/customers/{customer_id}/relationships", summary="Relate two customers (both sides)")
async def relate(
    customer_id: CustomerId, body: RelationshipLink, who: Who, commands: Commands
) -> Accepted:
    return await answers.run(
        who,
        commands.relate,
        customer_id,
        body.expected_version,
        body.related_customer_id,
        body.relationship_type,
        body.since.isoformat() if body.since else None,
        reach=who.reach,
    )


@router.post(
    "/customers/{customer_id}/relationships/end", summary="End a relationship (both sides)"
)
async def unrelate(
    customer_id: CustomerId, body: RelationshipEnd, who: Who, commands: Commands
) -> Accepted:
    return await answers.run(
        who,
        commands.unrelate,
        customer_id,
        body.expected_version,
        body.related_customer_id,
        body.relationship_type,
        body.ended_on.isoformat(),
        body.reason,
        reach=who.reach,
    )
