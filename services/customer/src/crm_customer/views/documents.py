"""The documents of the customer service's read models and how a handler writes them.

Every stream's handlers (the other modules of this package) build their updates with
these helpers, so each document is shaped and keyed one way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import Any

from crm_backbone.projection import Document, ViewUpdate
from crm_backbone.readmodel import field_key
from crm_events.envelope import Envelope
from crm_events.registry import EventPayload

CUSTOMERS = "customers"
"""The single customer view: one document per customer id."""
GROUPS = "groups"
"""Households and corporate groups with their members over time."""
GROUP_NAMED_BY = "group_named_by"
"""In a group's document: the member whose event gave the group its name (the name is that
member's personal data, forgotten with them); never shown."""
LAST_CONTACTS = 10
"""Contacts a customer's document keeps, the latest first."""

Event = Envelope[EventPayload]


def plain(value: Any) -> Any:
    """JSON-like value for MongoDB: models dumped, dates as ISO text, datetimes kept."""
    if hasattr(value, "model_dump"):
        return plain(value.model_dump(mode="python"))
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return value.isoformat()
    if hasattr(value, "is_finite"):  # Decimal: exact, as text
        return format(value, "f")
    return value


def flat(prefix: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    """``$set`` paths ``prefix.field`` for each field (so no update replaces a sub-document)."""
    return {f"{prefix}.{name}": plain(value) for name, value in fields.items()}


def search_keys(
    name: Mapping[str, Any] | None = None,
    phone: str | None = None,
    id_documents: Iterable[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """``$addToSet`` operand adding a customer's searchable names, phones and ID numbers."""
    keys: dict[str, list[str]] = {}
    if name:
        names = [name.get("full_name"), name.get("family_name"), name.get("given_name")]
        keys["search.names"] = [n.strip().lower() for n in names if n]
    if phone:
        keys["search.phones"] = [normalise_phone(phone)]
    numbers = [d["number"].upper() for d in id_documents]
    if numbers:
        keys["search.id_numbers"] = numbers
    return {path: {"$each": values} for path, values in keys.items()}


def normalise_phone(phone: str) -> str:
    return "".join(ch for ch in phone if ch.isdigit())


def of_customer(customer_id: str, e: Event, update: Document) -> ViewUpdate:
    """``update`` of customer ``customer_id``'s document, stamped with the event's time."""
    update.setdefault("$set", {})["customer_id"] = customer_id
    update.setdefault("$max", {})["updated_at"] = e.time
    return ViewUpdate(CUSTOMERS, customer_id, update)


def of_subject(e: Event, update: Document) -> ViewUpdate:
    """``update`` of the document of the customer the event is about (its aggregate)."""
    return of_customer(e.aggregateid, e, update)


def entry(section: str, e: Event) -> str:
    """The path of the event's aggregate in a section of a customer's document
    (``accounts.<account id>``, ``tasks.<activity id>``, ...)."""
    return f"{section}.{field_key(e.aggregateid)}"
