"""The customer service's HTTP API: commands on customers, the single customer view, search.

Every command names its actor (``X-Actor``), may carry ``expected_version`` (a stale one
is refused with 409 and nothing is written) and answers the customer's new version.
Errors are RFC 9457 problem documents.
"""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Annotated, Any

from crm_backbone.http import Problem, location
from crm_backbone.service_api import (
    VIEW_BEHIND,
    Command,
    MinVersion,
    RequestBody,
    WaitMs,
    Who,
    read_your_writes,
    service_api,
)
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
from crm_events.customer import CustomerStatus, GroupRole, GroupType, RelationshipType
from fastapi import FastAPI, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from crm_customer.application import CustomerNotFound
from crm_customer.bootstrap import SERVICE, CustomerService
from crm_customer.domain import (
    CORE_OWNED_FIELDS,
    Conflict,
    CoreOwnedField,
    Customer,
    CustomerRetired,
    RuleViolation,
)
from crm_customer.queries import CustomerView, SearchPage

CustomerId = Annotated[Id, Path(description="Unified customer number", examples=["C00012345"])]
GroupId = Annotated[Id, Path(description="Household or group", examples=["HH-0001"])]


class Accepted(BaseModel):
    customer_id: str
    version: int = Field(description="The customer's version after the command")


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


class GroupJoin(Command):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "group_id": "HH-0001",
                    "group_type": "household",
                    "group_name": "Wang household",
                    "role": "head",
                    "joined_on": "2026-01-01",
                }
            ]
        }
    )
    group_id: Id
    group_type: GroupType
    group_name: Name
    role: GroupRole
    joined_on: date


class GroupLeave(Command):
    left_on: date
    reason: str | None = None


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


class ConsentChange(Command):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"opted_in": False, "reason": "asked at the counter"}]}
    )
    opted_in: bool
    reason: str | None = None


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


DOMAIN_ERRORS = {
    CustomerNotFound: lambda e: Problem(404, "customer-not-found", "Not found", str(e)),
    CustomerRetired: lambda e: Problem(
        409, "customer-merged", "Conflict", str(e), survivor_customer_id=e.survivor_id
    ),
    Conflict: lambda e: Problem(409, "conflict", "Conflict", str(e)),
    CoreOwnedField: lambda e: Problem(
        403, "field-owned-upstream", "Forbidden", str(e), fields=e.fields, owner=e.owner
    ),
    RuleViolation: lambda e: Problem(422, "rule-violation", "Unprocessable request", str(e)),
}


def create_app(service: CustomerService, *, run_workers: bool = True) -> FastAPI:
    """The API; with ``run_workers`` its process also runs the relay and the consumers."""
    app = service_api(
        service,
        service=SERVICE,
        title="Customer service",
        summary="Customers, their single customer view, search, households and groups",
        domain_errors=DOMAIN_ERRORS,
        routers=[],
        run_workers=run_workers,
    )
    commands = service.application
    queries = service.queries

    def accepted(customer_id: str, version: int) -> Accepted:
        return Accepted(customer_id=customer_id, version=version)

    @app.post("/customers", status_code=201, tags=["customers"], summary="Register a customer")
    async def register(body: Registration, who: Who, response: Response) -> Accepted:
        fields = body.model_dump(mode="json", exclude={"customer_id"})
        version = await who.run(commands.register, body.customer_id, fields)
        response.headers["Location"] = location("customers", body.customer_id)
        return accepted(body.customer_id, version)

    @app.patch("/customers/{customer_id}/profile", tags=["customers"], summary="Update the profile")
    async def update_profile(customer_id: CustomerId, body: ProfileChange, who: Who) -> Accepted:
        extra = sorted(body.model_extra or {})
        core = [field for field in extra if field in CORE_OWNED_FIELDS]
        if core:
            raise CoreOwnedField(core)
        if extra:
            raise Problem(
                422, "invalid-request", "Unprocessable request",
                f"unknown fields: {', '.join(extra)}",
            )  # fmt: skip
        changes = body.model_dump(mode="json", exclude={"expected_version"}, exclude_none=True)
        changes = {k: v for k, v in changes.items() if k not in extra}
        version = await who.run(
            commands.update_profile, customer_id, body.expected_version, changes
        )
        return accepted(customer_id, version)

    @app.post(
        "/customers/{customer_id}/status", tags=["customers"], summary="Change the lifecycle status"
    )
    async def change_status(customer_id: CustomerId, body: StatusChange, who: Who) -> Accepted:
        version = await who.run(
            commands.change_status, customer_id, body.expected_version,
            status=body.status, reason=body.reason,
        )  # fmt: skip
        return accepted(customer_id, version)

    @app.post(
        "/customers/{customer_id}/segment", tags=["customers"], summary="Change segment or tier"
    )
    async def change_segment(customer_id: CustomerId, body: SegmentChange, who: Who) -> Accepted:
        version = await who.run(
            commands.change_segment, customer_id, body.expected_version,
            value_band=body.value_band.value,
            corporate_tier=body.corporate_tier.value if body.corporate_tier else None,
            reason=body.reason,
        )  # fmt: skip
        return accepted(customer_id, version)

    @app.put(
        "/customers/{customer_id}/manager",
        tags=["customers"],
        summary="Assign the relationship manager",
    )
    async def assign_manager(
        customer_id: CustomerId, body: ManagerAssignment, who: Who
    ) -> Accepted:
        version = await who.run(
            commands.assign_manager, customer_id, body.expected_version,
            manager_id=body.manager_id, branch_id=body.branch_id, reason=body.reason,
        )  # fmt: skip
        return accepted(customer_id, version)

    @app.put(
        "/customers/{customer_id}/consent/{channel}",
        tags=["customers"],
        summary="Set marketing consent on a channel",
    )
    async def set_consent(
        customer_id: CustomerId, channel: Channel, body: ConsentChange, who: Who
    ) -> Accepted:
        version = await who.run(
            commands.set_consent, customer_id, body.expected_version,
            channel=channel.value, opted_in=body.opted_in, reason=body.reason,
        )  # fmt: skip
        return accepted(customer_id, version)

    @app.post(
        "/customers/{customer_id}/groups", tags=["groups"], summary="Join a household or group"
    )
    async def join_group(customer_id: CustomerId, body: GroupJoin, who: Who) -> Accepted:
        version = await who.run(
            commands.join_group, customer_id, body.expected_version, body.group_id,
            body.group_type, body.group_name, body.role, body.joined_on.isoformat(),
        )  # fmt: skip
        return accepted(customer_id, version)

    @app.post(
        "/customers/{customer_id}/groups/{group_id}/leave", tags=["groups"], summary="Leave a group"
    )
    async def leave_group(
        customer_id: CustomerId, group_id: GroupId, body: GroupLeave, who: Who
    ) -> Accepted:
        version = await who.run(
            commands.leave_group, customer_id, body.expected_version,
            group_id=group_id, left_on=body.left_on.isoformat(), reason=body.reason,
        )  # fmt: skip
        return accepted(customer_id, version)

    @app.post(
        "/customers/{customer_id}/relationships",
        tags=["customers"],
        summary="Relate two customers (both sides)",
    )
    async def relate(customer_id: CustomerId, body: RelationshipLink, who: Who) -> Accepted:
        version = await who.run(
            commands.relate, customer_id, body.expected_version, body.related_customer_id,
            body.relationship_type, body.since.isoformat() if body.since else None,
        )  # fmt: skip
        return accepted(customer_id, version)

    @app.post(
        "/customers/{customer_id}/relationships/end",
        tags=["customers"],
        summary="End a relationship (both sides)",
    )
    async def unrelate(customer_id: CustomerId, body: RelationshipEnd, who: Who) -> Accepted:
        version = await who.run(
            commands.unrelate, customer_id, body.expected_version, body.related_customer_id,
            body.relationship_type, body.ended_on.isoformat(), body.reason,
        )  # fmt: skip
        return accepted(customer_id, version)

    @app.post(
        "/customers/{customer_id}/merge",
        tags=["customers"],
        summary="Merge a duplicate into this customer",
    )
    async def merge(customer_id: CustomerId, body: Merge, who: Who) -> Accepted:
        version = await who.run(
            commands.merge, customer_id, body.expected_version, body.duplicate_customer_id,
            body.reason, body.merged_on.isoformat(),
        )  # fmt: skip
        return accepted(customer_id, version)

    @app.get(
        "/customers/{customer_id}",
        tags=["customers"],
        summary="The customer as its events say now (write side)",
    )
    async def current(customer_id: CustomerId) -> dict[str, Any]:
        customer = await asyncio.to_thread(commands.get, customer_id)
        return {
            "customer_id": customer.customer_id,
            "version": customer.version,
            "customer_type": customer.customer_type,
            "name": customer.name,
            "status": customer.status.value,
            "branch_id": customer.branch_id,
            "manager_id": customer.manager_id,
            "segment": {
                "value_band": customer.value_band,
                "corporate_tier": customer.corporate_tier,
            },
            "profile": customer.profile,
            "consents": customer.consents,
            "merged_into": customer.merged_into,
        }

    @app.get(
        "/customers/{customer_id}/view",
        tags=["views"],
        summary="The single customer view",
        responses=VIEW_BEHIND,
    )
    async def view(
        customer_id: CustomerId,
        min_version: MinVersion = None,
        wait_ms: WaitMs = 2_000,
    ) -> CustomerView:
        await read_your_writes(
            queries.wait_for, commands, Customer, customer_id, min_version, wait_ms
        )
        found = await queries.view(customer_id)
        if found is None:
            raise CustomerNotFound(customer_id)
        return found

    @app.get("/customers", tags=["views"], summary="Search customers")
    async def search(
        name: Annotated[str | None, Query(description="Name prefix, any case")] = None,
        phone: str | None = None,
        id_number: str | None = None,
        manager_id: str | None = None,
        branch_id: str | None = None,
        segment: ValueBand | None = None,
        status: CustomerStatus | None = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 20,
        cursor: str | None = None,
    ) -> SearchPage:
        try:
            return await queries.search(
                name=name, phone=phone, id_number=id_number, manager_id=manager_id,
                branch_id=branch_id, segment=segment.value if segment else None,
                status=status.value if status else None, limit=limit, cursor=cursor,
            )  # fmt: skip
        except ValueError as error:
            raise Problem(400, "invalid-cursor", "Bad request", str(error)) from None

    @app.get("/groups/{group_id}", tags=["groups"], summary="A household or corporate group")
    async def group(group_id: GroupId) -> dict[str, Any]:
        found = await queries.group(group_id)
        if found is None:
            raise Problem(404, "group-not-found", "Not found", f"no group {group_id}")
        return found

    return app
