"""What the customer service publishes: each domain event as its integration event.

Domain event attributes are named as the payload's fields, so the mapping is by name;
attributes the contract does not carry (the upstream version of core data, say) stay
private to the event store.
"""

from __future__ import annotations

from crm_backbone.publication import translator
from crm_events.customer import (
    ConsentChanged,
    CoreDataApplied,
    CustomerErased,
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
    "Customer.Erased": CustomerErased,
}
"""Domain event class (qualified name) -> payload model of its integration event."""


translate = translator(PAYLOADS)
