"""``/customers``: register a customer, change it, read it as its events say now."""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Any

from crm_backbone.access import as_shown
from crm_backbone.callers import Reader, Who
from crm_backbone.read_audit import PersonalReads
from crm_backbone.service_api import Command, RequestBody
from crm_events.common import (
    Address,
    Channel,
    CorporateTier,
    CustomerName,
    CustomerType,
    Email,
    Id,
    IdDocument,
    Name,
    Phone,
    ValueBand,
)
from crm_events.customer import CustomerStatus
from fastapi import APIRouter, Response
from pydantic import ConfigDict, Field

from crm_customer.ownership import PERSONAL, placement_of, registering_manager
from crm_customer.routes.dependencies import Commands, Positions
from crm_customer.routes.models import Accepted, CustomerId, answers

router = APIRouter(tags=["customers"])


class Registration(RequestBody):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "customer_id": "C00012345",
                    "customer_type": "individual",
                    "name": {"full_name": "Wang Fang", "family_name": "Wang", "given_name": "Fang"},
                    "status": "prospect",
                    "id_documents": [
                        {
                            "kind": "national_id",
                            "number": "110101199003074514",
                            "issuing_country": "CN",
                        }
                    ],
                    "birth_date": "1990-03-07",
                    "phone": "+86 139 1234 5678",
                    "email": "wang.fang@example.com",
                    "branch_id": "BR-001",
                    "preferred_channel": "phone",
                }
            ]
        },
    )

    customer_id: Id
    customer_type: CustomerType
    name: CustomerName
    status: CustomerStatus = CustomerStatus.PROSPECT
    id_documents: list[IdDocument] = []
    birth_date: date | None = None
    phone: Phone | None = None
    email: Email | None = None
    address: Address | None = None
    occupation: str | None = None
    industry: str | None = None
    branch_id: Id
    manager_id: Id | None = Field(
        None,
        description="The relationship manager, assigned at once; a relationship manager who "
        "names none registers the customer into their own book",
    )
    preferred_channel: Channel | None = None


class ProfileChange(Command):
    """CRM-owned profile fields; core-banking-owned ones are refused (403), naming their
    owner, any other field as invalid (422): the schema allows no other field."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [{"expected_version": 3, "email": "fang@example.com"}],
            "additionalProperties": False,
        },
    )
    phone: Phone | None = None
    email: Email | None = None
    address: Address | None = None
    occupation: str | None = None
    industry: str | None = None
    preferred_channel: Channel | None = None


class StatusChange(Command):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"status": "active", "reason": "first account opened"}]}
    )
    status: CustomerStatus
    reason: Name


class SegmentChange(Command):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"value_band": "high", "reason": "AUM above 5M CNY"}]}
    )
    value_band: ValueBand
    corporate_tier: CorporateTier | None = None
    reason: Name


class ManagerAssignment(Command):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"manager_id": "RM-0042", "branch_id": "BR-001"}]}
    )
    manager_id: Id
    branch_id: Id
    reason: str | None = None


class ConsentChange(Command):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"opted_in": False, "reason": "asked at the counter"}]}
    )
    opted_in: bool
    reason: str | None = None


@router.post("/customers", status_code=201, summary="Register a customer")
async def register(
    body: Registration, who: Who, commands: Commands, positions: Positions, response: Response
) -> Accepted:
    fields = body.model_dump(mode="json", exclude={"customer_id", "manager_id"})
    manager_id = registering_manager(who.reach, body.manager_id)
    return await answers.create(
        who,
        response,
        "customers",
        commands.register,
        body.customer_id,
        fields,
        manager_id=manager_id,
        placement=await placement_of(positions, who, manager_id),
        reach=who.reach,
    )


@router.patch("/customers/{customer_id}/profile", summary="Update the profile")
async def update_profile(
    customer_id: CustomerId, body: ProfileChange, who: Who, commands: Commands
) -> Accepted:
    changes = body.model_dump(mode="json", exclude={"expected_version"}, exclude_unset=True)
    return await answers.run(
        who, commands.update_profile, customer_id, body.expected_version, changes, reach=who.reach
    )


@router.post("/customers/{customer_id}/status", summary="Change the lifecycle status")
async def change_status(
    customer_id: CustomerId, body: StatusChange, who: Who, commands: Commands
) -> Accepted:
    return await answers.run(
        who,
        commands.change_status,
        customer_id,
        body.expected_version,
        status=body.status,
        reason=body.reason,
        reach=who.reach,
    )


@router.post("/customers/{customer_id}/segment", summary="Change segment or tier")
async def change_segment(
    customer_id: CustomerId, body: SegmentChange, who: Who, commands: Commands
) -> Accepted:
    return await answers.run(
        who,
        commands.change_segment,
        customer_id,
        body.expected_version,
        value_band=body.value_band.value,
        corporate_tier=body.corporate_tier.value if body.corporate_tier else None,
        reason=body.reason,
        reach=who.reach,
    )


@router.put(
    "/customers/{customer_id}/manager",
    summary="Assign the relationship manager",
    description="The old manager loses the customer at once; the new owners must be in the "
    "caller's reach (403), and a staff member names a relationship manager of that branch (422).",
)
async def assign_manager(
    customer_id: CustomerId,
    body: ManagerAssignment,
    who: Who,
    commands: Commands,
    positions: Positions,
) -> Accepted:
    return await answers.run(
        who,
        commands.assign_manager,
        customer_id,
        body.expected_version,
        manager_id=body.manager_id,
        branch_id=body.branch_id,
        reason=body.reason,
        placement=await placement_of(positions, who, body.manager_id),
        reach=who.reach,
    )


@router.put(
    "/customers/{customer_id}/consent/{channel}", summary="Set marketing consent on a channel"
)
async def set_consent(
    customer_id: CustomerId, channel: Channel, body: ConsentChange, who: Who, commands: Commands
) -> Accepted:
    return await answers.run(
        who,
        commands.set_consent,
        customer_id,
        body.expected_version,
        channel=channel.value,
        opted_in=body.opted_in,
        reason=body.reason,
        reach=who.reach,
    )


@router.get("/customers/{customer_id}", summary="The customer as its events say now (write side)")
async def current(
    customer_id: CustomerId, caller: Reader, reads: PersonalReads, commands: Commands
) -> dict[str, Any]:
    customer = await asyncio.to_thread(commands.get_in_reach, customer_id, caller.reach)
    answer = {
        "customer_id": customer.customer_id,
        "version": customer.version,
        "customer_type": customer.customer_type,
        "name": customer.name,
        "status": customer.status.value,
        "branch_id": customer.branch_id,
        "manager_id": customer.manager_id,
        "segment": {"value_band": customer.value_band, "corporate_tier": customer.corporate_tier},
        "profile": customer.profile,
        "consents": customer.consents,
        "merged_into": customer.merged_into,
        "erased": customer.erasure,
    }
    await reads.record([customer.customer_id])
    return as_shown(caller.reach, answer, PERSONAL)
