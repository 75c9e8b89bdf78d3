"""Reading the audit trail (``audit_trail.py``): entries by customer, actor, service, kind
and time, in time order, a page at a time."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from crm_backbone.cursor import decode_cursor, encode_cursor
from crm_backbone.projection import Document
from crm_backbone.readmodel import APPLIED
from pydantic import BaseModel, Field
from pymongo.asynchronous.database import AsyncDatabase

from crm_customer.audit_trail import AUDIT_TRAIL, IN_ORDER, AuditKind


class AuditEntry(BaseModel):
    """One change or one read of personal data, as its event's metadata tells it."""

    event_id: str
    kind: AuditKind = Field(description="`change`: an event of a service; `read`: a read")
    customer_ids: list[str] = Field(description="The customers it changed or showed")
    service: str = Field(description="The CRM service whose API or worker produced it")
    event_type: str
    actor: str = Field(description="Who: the subject of the caller's token")
    client: str | None = Field(description="Through which client (none: a service's worker)")
    time: datetime
    correlation_id: str = Field(description="The flow it belongs to")
    aggregate_id: str
    aggregate_version: int
    endpoint: str | None = Field(None, description="A read: the method and route read")
    staff_id: str | None = Field(None, description="A read: the reader's staff id")
    masked: bool | None = Field(None, description="A read: whether it was shown masked")


class AuditPage(BaseModel):
    items: list[AuditEntry]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page")


class AuditQueries:
    """Read side of the audit trail; every entry, whoever's book it is in (the audit
    surface is the auditor's alone, ``routes/audit.py``)."""

    def __init__(self, database: AsyncDatabase[Document]) -> None:
        self.trail = database[AUDIT_TRAIL]

    async def search(
        self,
        *,
        customer_id: str | None = None,
        actor: str | None = None,
        service: str | None = None,
        kind: AuditKind | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
        cursor: str | None = None,
        event_type: str | None = None,
    ) -> AuditPage:
        """The entries matching every filter given, from ``since`` (included) to ``until``
        (excluded), oldest first."""
        named = {
            "customer_ids": customer_id,
            "actor": actor,
            "service": service,
            "kind": kind,
            "event_type": event_type,
        }
        conditions: list[Document] = [{f: v for f, v in named.items() if v is not None}]
        if since is not None:
            conditions.append({"time": {"$gte": since}})
        if until is not None:
            conditions.append({"time": {"$lt": until}})
        if cursor:
            time, last_id = decode_cursor(cursor, datetime.fromisoformat)
            conditions.append(
                {"$or": [{"time": {"$gt": time}}, {"time": time, "_id": {"$gt": last_id}}]}
            )
        found = self.trail.find({"$and": conditions}, {APPLIED: 0}).sort(IN_ORDER)
        documents = [doc async for doc in found.limit(limit + 1)]
        last = documents[limit - 1] if len(documents) > limit else None
        return AuditPage(
            items=[_entry(doc) for doc in documents[:limit]],
            next_cursor=encode_cursor(last["time"], last["_id"]) if last else None,
        )


def _entry(document: Document) -> AuditEntry:
    fields: dict[str, Any] = dict(document)
    return AuditEntry(event_id=fields.pop("_id"), **fields)
