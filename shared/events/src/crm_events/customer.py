"""Events of the customer service (aggregate: customer; subject = customer id).

The customer id is the bank-wide unified customer number that upstream systems use too.
"""

from datetime import date
from enum import StrEnum

from pydantic import AwareDatetime

from crm_events.common import (
    Assignment,
    BirthDate,
    Channel,
    CoreOwnedData,
    CorporateTier,
    CustomerType,
    Email,
    FullName,
    Id,
    IdDocuments,
    Name,
    Notes,
    PersonName,
    Phone,
    PostalAddress,
    ValueBand,
)
from crm_events.registry import EventPayload, JsonObject, event, upcaster


class CustomerStatus(StrEnum):
    """Lifecycle: prospect -> active -> dormant -> churned."""

    PROSPECT = "prospect"
    ACTIVE = "active"
    DORMANT = "dormant"
    CHURNED = "churned"


class GroupType(StrEnum):
    HOUSEHOLD = "household"
    CORPORATE_GROUP = "corporate_group"


class GroupRole(StrEnum):
    HEAD = "head"
    MEMBER = "member"
    PARENT_COMPANY = "parent_company"
    SUBSIDIARY = "subsidiary"


class RelationshipType(StrEnum):
    """What the related customer is to this customer; each type has an inverse."""

    SPOUSE = "spouse"
    PARENT = "parent"
    CHILD = "child"
    SIBLING = "sibling"
    GUARANTOR = "guarantor"
    GUARANTEED = "guaranteed"
    SHAREHOLDER = "shareholder"
    SHAREHOLDING = "shareholding"
    SUBSIDIARY = "subsidiary"
    PARENT_COMPANY = "parent_company"
    LEGAL_REPRESENTATIVE = "legal_representative"
    REPRESENTED_ENTITY = "represented_entity"
    EMPLOYER = "employer"
    EMPLOYEE = "employee"
    OTHER = "other"

    @property
    def inverse(self) -> "RelationshipType":
        """What this customer is to the related one (spouse -> spouse, parent -> child)."""
        return _INVERSE.get(self, self)


_PAIRS = [
    (RelationshipType.PARENT, RelationshipType.CHILD),
    (RelationshipType.GUARANTOR, RelationshipType.GUARANTEED),
    (RelationshipType.SHAREHOLDER, RelationshipType.SHAREHOLDING),
    (RelationshipType.SUBSIDIARY, RelationshipType.PARENT_COMPANY),
    (RelationshipType.LEGAL_REPRESENTATIVE, RelationshipType.REPRESENTED_ENTITY),
    (RelationshipType.EMPLOYER, RelationshipType.EMPLOYEE),
]
_INVERSE = {a: b for a, b in _PAIRS} | {b: a for a, b in _PAIRS}


def next_birthday(birth_date: date, today: date) -> date:
    """The first birthday on or after ``today`` (29 February: 1 March in common years)."""
    for year in (today.year, today.year + 1):
        try:
            candidate = birth_date.replace(year=year)
        except ValueError:  # 29 February in a common year
            candidate = date(year, 3, 1)
        if candidate >= today:
            return candidate
    raise AssertionError("a birthday falls within a year")


@event("crm.customer.registered", version=1)
class CustomerRegisteredV1(EventPayload):
    """Historical v1 (single ``name`` string, ``branch``): frozen, read by upcasting."""

    customer_type: CustomerType
    name: PersonName
    status: CustomerStatus
    id_documents: IdDocuments = []
    birth_date: BirthDate | None = None
    phone: Phone | None = None
    email: Email | None = None
    address: PostalAddress | None = None
    occupation: str | None = None
    industry: str | None = None
    branch: Id


@event("crm.customer.registered", version=2)
class CustomerRegistered(EventPayload):
    """A customer (or prospect) entered the CRM."""

    customer_type: CustomerType
    name: FullName
    status: CustomerStatus
    id_documents: IdDocuments = []
    birth_date: BirthDate | None = None
    phone: Phone | None = None
    email: Email | None = None
    address: PostalAddress | None = None
    occupation: str | None = None
    industry: str | None = None
    branch_id: Id
    preferred_channel: Channel | None = None


@upcaster("crm.customer.registered", from_version=1)
def _structured_name(body: JsonObject) -> JsonObject:
    """v1 -> v2: ``name`` becomes a structured name (split unknown), ``branch`` -> ``branch_id``."""
    upcast = {key: value for key, value in body.items() if key not in ("name", "branch")}
    return upcast | {"name": {"full_name": body["name"]}, "branch_id": body["branch"]}


@event("crm.customer.profile_updated")
class CustomerProfileUpdated(EventPayload):
    """CRM-owned profile fields changed; a null field is unchanged."""

    phone: Phone | None = None
    email: Email | None = None
    address: PostalAddress | None = None
    occupation: str | None = None
    industry: str | None = None
    preferred_channel: Channel | None = None


@event("crm.customer.status_changed")
class CustomerStatusChanged(EventPayload):
    previous_status: CustomerStatus
    status: CustomerStatus
    reason: Notes


@event("crm.customer.segment_changed")
class CustomerSegmentChanged(EventPayload):
    """New value band and, for corporates, tier; drives service level and targeting."""

    value_band: ValueBand
    corporate_tier: CorporateTier | None = None
    previous_value_band: ValueBand | None = None
    previous_corporate_tier: CorporateTier | None = None
    reason: Notes


@event("crm.customer.manager_assigned")
class RelationshipManagerAssigned(Assignment, EventPayload):
    """The customer got a relationship manager; a reassignment names the previous one."""

    branch_id: Id


@event("crm.customer.group_joined")
class GroupMembershipJoined(EventPayload):
    group_id: Id
    group_type: GroupType
    group_name: PersonName
    """A household is named after its family: personal data."""
    role: GroupRole
    joined_on: date


@event("crm.customer.group_left")
class GroupMembershipLeft(EventPayload):
    group_id: Id
    left_on: date
    reason: Notes | None = None


@event("crm.customer.relationship_added")
class RelationshipAdded(EventPayload):
    related_customer_id: Id
    relationship_type: RelationshipType
    since: date | None = None


@event("crm.customer.relationship_removed")
class RelationshipRemoved(EventPayload):
    related_customer_id: Id
    relationship_type: RelationshipType
    ended_on: date
    reason: Notes | None = None


@event("crm.customer.consent_changed")
class ConsentChanged(EventPayload):
    """Marketing opt-in or opt-out on one channel."""

    channel: Channel
    opted_in: bool
    reason: Notes | None = None
    campaign_id: Id | None = None


@event("crm.customer.merged")
class CustomersMerged(EventPayload):
    """A duplicate was merged into this (surviving) customer; the duplicate is retired.

    The duplicate's identifying data travels along so that searches by its name, phone or
    ID number find the survivor.
    """

    merged_customer_id: Id
    reason: Notes
    merged_name: FullName
    merged_id_documents: IdDocuments = []
    merged_phone: Phone | None = None
    merged_email: Email | None = None


@event("crm.customer.merged_into")
class CustomerMergedInto(EventPayload):
    """This customer was a duplicate and is now retired: its id resolves to the survivor."""

    survivor_customer_id: Id
    reason: Notes


@event("crm.customer.core_data_applied")
class CoreDataApplied(CoreOwnedData, EventPayload):
    """Core-banking-owned data was applied to the customer record."""

    source_event_id: Id


class ErasureBasis(StrEnum):
    """The legal ground a customer's personal data is erased on.

    PIPL Art. 47 para. 1 (items 1-4) and GDPR Art. 17(1)(a)-(e); the fixed list an
    erasure request must name one of.
    """

    PIPL_PURPOSE_ACHIEVED = "pipl_art47_1_purpose_achieved"
    """The purpose of processing is achieved, cannot be achieved or needs it no more."""
    PIPL_SERVICE_ENDED = "pipl_art47_2_service_ended"
    """The bank stopped providing the product or service, or the retention period ended."""
    PIPL_CONSENT_WITHDRAWN = "pipl_art47_3_consent_withdrawn"
    PIPL_UNLAWFUL_PROCESSING = "pipl_art47_4_unlawful_processing"
    GDPR_NO_LONGER_NECESSARY = "gdpr_art17_1a_no_longer_necessary"
    GDPR_CONSENT_WITHDRAWN = "gdpr_art17_1b_consent_withdrawn"
    GDPR_OBJECTION = "gdpr_art17_1c_objection"
    GDPR_UNLAWFUL_PROCESSING = "gdpr_art17_1d_unlawfully_processed"
    GDPR_LEGAL_OBLIGATION = "gdpr_art17_1e_legal_obligation"


@event("crm.customer.erased")
class CustomerErased(EventPayload):
    """The customer's personal data was erased on request: its data key is destroyed, so
    what the events stored of the person no longer opens, and every view forgets it.

    Carries no personal data: the subject is the customer id; ``reason`` is the request's
    reference (a ticket number, say), never a description of the person.
    """

    erased_at: AwareDatetime
    erased_by: Id
    """The actor who asked for it (the subject of the data protection officer's token)."""
    legal_basis: ErasureBasis
    reason: Name
