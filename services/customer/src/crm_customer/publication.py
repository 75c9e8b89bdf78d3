"""What the customer service publishes: each domain event as its integration event.

Domain event attributes are named as the payload's fields, so the mapping is by name;
attributes the contract does not carry (the upstream version of core data, say) stay
private to the event store.
"""

from __future__ import annotations

from typing import Any

from crm_events.customer import (
    ConsentChanged,
    CoreDataApplied,
    CustomerMergedInto,
    CustomerProfileUpdated,
    CustomerRegistered,
    CustomerSegmentChanged,
    CustomersMerged,
    CustomerStatusChanged,
    GroupMembershipJoined,
    GroupMembershipLeft,
    RelationshipAdded,
    RelationshipManagerAssigned,
    RelationshipRemoved,
)
from crm_events.registry import EventPayload

PAYLOADS: dict[str, type[EventPayload]] = {
    "Customer.Registered": CustomerRegistered,
    "Customer.ProfileUpdated": CustomerProfileUpdated,
    "Customer.StatusChanged": CustomerStatusChanged,
    "Customer.SegmentChanged": CustomerSegmentChanged,
    "Customer.ManagerAssigned": RelationshipManagerAssigned,
    "Customer.GroupJoined": GroupMembershipJoined,
    "Customer.GroupLeft": GroupMembershipLeft,
    "Customer.RelationshipAdded": RelationshipAdded,
    "Customer.RelationshipRemoved": RelationshipRemoved,
    "Customer.ConsentChanged": ConsentChanged,
    "Customer.CoreDataApplied": CoreDataApplied,
    "Customer.Merged": CustomersMerged,
    "Customer.MergedInto": CustomerMergedInto,
}
"""Domain event class (qualified name) -> payload model of its integration event."""


def translate(domain_event: Any) -> EventPayload | None:
    """The integration payload of a stored customer event (None: not published)."""
    model = PAYLOADS.get(type(domain_event).__qualname__)
    if model is None:
        return None
    fields = {name: getattr(domain_event, name) for name in model.model_fields}
    return model.model_validate(fields)
