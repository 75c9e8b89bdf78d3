"""The customer's own events: its registration, profile, lifecycle, groups, merges.

Only these write a customer's identity and CRM-owned fields, and the ``groups`` view.
"""

from __future__ import annotations

from collections.abc import Iterator

from crm_backbone.erasure import PersonalPaths
from crm_backbone.projection import Document, Handler, ViewUpdate
from crm_backbone.readmodel import field_key
from crm_events import customer as cu
from crm_events.personal import ERASED
from crm_events.registry import EventPayload
from crm_events.topics import CUSTOMER_EVENTS

from crm_customer.views.documents import (
    GROUP_NAMED_BY,
    GROUPS,
    Event,
    flat,
    of_subject,
    plain,
    search_keys,
)

TOPIC = CUSTOMER_EVENTS
REACTIVATED_FROM = frozenset({cu.CustomerStatus.DORMANT, cu.CustomerStatus.CHURNED})
"""A move from these to active is a reactivation (the dormancy rule counts from it)."""


def registered(e: Event) -> Iterator[ViewUpdate]:
    d = e.data
    assert isinstance(d, cu.CustomerRegistered)
    profile = d.model_dump(include={"phone", "email", "address", "occupation", "industry"})
    yield of_subject(
        e,
        {
            "$set": {
                "registered": True,
                "customer_type": d.customer_type.value,
                "status": d.status.value,
                "branch_id": d.branch_id,
                "registered_at": e.time,
                "search.name_key": d.name.full_name.lower(),
                **flat("name", d.name.model_dump()),
                **flat("profile", profile | {"preferred_channel": d.preferred_channel}),
                "profile.birth_date": plain(d.birth_date),
                "profile.id_documents": plain(d.id_documents),
            },
            "$addToSet": search_keys(d.name.model_dump(), d.phone, plain(d.id_documents)),
        },
    )


def profile_updated(e: Event) -> Iterator[ViewUpdate]:
    d = e.data
    assert isinstance(d, cu.CustomerProfileUpdated)
    changes = d.model_dump(exclude_none=True)
    update: Document = {"$set": flat("profile", changes)}
    if d.phone:
        update["$addToSet"] = search_keys(phone=d.phone)
    yield of_subject(e, update)


def status_changed(e: Event) -> Iterator[ViewUpdate]:
    d = e.data
    assert isinstance(d, cu.CustomerStatusChanged)
    changed: Document = {
        "status": d.status.value,
        "status_reason": d.reason,
        "status_since": e.time,
    }
    if d.status is cu.CustomerStatus.ACTIVE and d.previous_status in REACTIVATED_FROM:
        changed["reactivated_at"] = e.time
    yield of_subject(e, {"$set": changed})


def segment_changed(e: Event) -> Iterator[ViewUpdate]:
    d = e.data
    assert isinstance(d, cu.CustomerSegmentChanged)
    yield of_subject(
        e,
        {
            "$set": {
                "segment.value_band": d.value_band.value,
                "segment.corporate_tier": plain(d.corporate_tier),
                "segment.reason": d.reason,
                "segment.since": e.time,
            }
        },
    )


def manager_assigned(e: Event) -> Iterator[ViewUpdate]:
    d = e.data
    assert isinstance(d, cu.RelationshipManagerAssigned)
    yield of_subject(
        e,
        {
            "$set": {
                "manager_id": d.manager_id,
                "branch_id": d.branch_id,
                "manager_since": e.time,
            }
        },
    )


def group_joined(e: Event) -> Iterator[ViewUpdate]:
    d = e.data
    assert isinstance(d, cu.GroupMembershipJoined)
    member = {"role": d.role.value, "joined_on": d.joined_on.isoformat(), "left_on": None}
    key = field_key(d.group_id)
    yield of_subject(
        e,
        {
            "$set": flat(
                f"groups.{key}",
                {"group_id": d.group_id, "group_type": d.group_type, "group_name": d.group_name}
                | member,
            )
        },
    )
    yield ViewUpdate(
        GROUPS,
        d.group_id,
        {
            "$set": {
                "group_type": d.group_type.value,
                "group_name": d.group_name,
                GROUP_NAMED_BY: e.aggregateid,
                **flat(f"members.{field_key(e.aggregateid)}", member),
            },
            "$push": {"history": {"customer_id": e.aggregateid, "event": "joined", **member}},
        },
    )


def group_left(e: Event) -> Iterator[ViewUpdate]:
    d = e.data
    assert isinstance(d, cu.GroupMembershipLeft)
    left_on = d.left_on.isoformat()
    yield of_subject(e, {"$unset": {f"groups.{field_key(d.group_id)}": ""}})
    yield ViewUpdate(
        GROUPS,
        d.group_id,
        {
            "$set": {f"members.{field_key(e.aggregateid)}.left_on": left_on},
            "$push": {
                "history": {
                    "customer_id": e.aggregateid,
                    "event": "left",
                    "left_on": left_on,
                    "reason": d.reason,
                }
            },
        },
    )


def relationship_added(e: Event) -> Iterator[ViewUpdate]:
    d = e.data
    assert isinstance(d, cu.RelationshipAdded)
    key = field_key(f"{d.related_customer_id}|{d.relationship_type.value}")
    yield of_subject(e, {"$set": flat(f"relationships.{key}", d.model_dump())})


def relationship_removed(e: Event) -> Iterator[ViewUpdate]:
    d = e.data
    assert isinstance(d, cu.RelationshipRemoved)
    key = field_key(f"{d.related_customer_id}|{d.relationship_type.value}")
    yield of_subject(e, {"$unset": {f"relationships.{key}": ""}})


def consent_changed(e: Event) -> Iterator[ViewUpdate]:
    d = e.data
    assert isinstance(d, cu.ConsentChanged)
    yield of_subject(
        e,
        {
            "$set": flat(
                f"consent.{d.channel.value}",
                d.model_dump(exclude={"channel"}) | {"since": e.time},
            )
        },
    )


def core_data_applied(e: Event) -> Iterator[ViewUpdate]:
    d = e.data
    assert isinstance(d, cu.CoreDataApplied)
    changes: Document = {}
    if d.name is not None:
        changes |= flat("name", d.name.model_dump())
        changes["search.name_key"] = d.name.full_name.lower()
    for field in ("id_documents", "birth_date", "phone", "email", "address"):
        value = getattr(d, field)
        if value is not None:
            changes[f"profile.{field}"] = plain(value)
    changes["core_data_at"] = e.time
    yield of_subject(
        e,
        {
            "$set": changes,
            "$addToSet": search_keys(
                d.name.model_dump() if d.name else None, d.phone, plain(d.id_documents or [])
            ),
        },
    )


def merged(e: Event) -> Iterator[ViewUpdate]:
    d = e.data
    assert isinstance(d, cu.CustomersMerged)
    keys = search_keys(d.merged_name.model_dump(), d.merged_phone, plain(d.merged_id_documents))
    keys["merged_ids"] = d.merged_customer_id
    keys["profile.id_documents"] = {"$each": plain(d.merged_id_documents)}
    yield of_subject(e, {"$addToSet": keys})


ERASED_PATHS = (
    "name",
    "search",
    "profile.phone",
    "profile.email",
    "profile.address",
    "profile.birth_date",
    "profile.id_documents",
    "status_reason",
    "segment.reason",
    "consent",
    "groups",
    "relationships",
    "contacts",
    "tasks",
    "needs",
)
"""What an erasure removes from a customer's document: the person's identity, contact
details and search keys; the free texts about them (reasons given, last contacts'
summaries, tasks' descriptions, needs' summaries); whom they are related to and which
household they are in. Accounts, balances, KYC, segment, opportunities' figures and
counts remain (the view keeps no opportunity's free text: ``opportunity_events``).
"""

GROUP_PERSONAL_PATHS = (
    PersonalPaths(GROUPS, erased={"group_name": ERASED}, customer_field=GROUP_NAMED_BY),
    PersonalPaths(GROUPS, removed=("reason",), within="history"),
)
"""What a group's document says of an erased member, forgotten by the customer service's
``ForgetErasedCustomers`` (the erased event does not name the groups): the group's name
when that member's event gave it (its erased form, as a rebuild reads it), and the reason
they gave for leaving. The group's ids, type and other members remain."""


def erased(e: Event) -> Iterator[ViewUpdate]:
    d = e.data
    assert isinstance(d, cu.CustomerErased)
    erasure = {"erased_at": d.erased_at, "erased_by": d.erased_by, "legal_basis": d.legal_basis}
    yield of_subject(
        e, {"$set": flat("erased", erasure), "$unset": dict.fromkeys(ERASED_PATHS, "")}
    )


def merged_into(e: Event) -> Iterator[ViewUpdate]:
    d = e.data
    assert isinstance(d, cu.CustomerMergedInto)
    yield of_subject(e, {"$set": {"merged_into": d.survivor_customer_id}})


HANDLERS: dict[type[EventPayload], Handler] = {
    cu.CustomerRegistered: registered,
    cu.CustomerProfileUpdated: profile_updated,
    cu.CustomerStatusChanged: status_changed,
    cu.CustomerSegmentChanged: segment_changed,
    cu.RelationshipManagerAssigned: manager_assigned,
    cu.GroupMembershipJoined: group_joined,
    cu.GroupMembershipLeft: group_left,
    cu.RelationshipAdded: relationship_added,
    cu.RelationshipRemoved: relationship_removed,
    cu.ConsentChanged: consent_changed,
    cu.CoreDataApplied: core_data_applied,
    cu.CustomersMerged: merged,
    cu.CustomerMergedInto: merged_into,
    cu.CustomerErased: erased,
}
