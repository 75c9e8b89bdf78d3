"""The customer aggregate: the rules of ``rules.py`` applied to one customer's state.

Command methods check the rules and then trigger one event each (the ``@event``-decorated
private methods, whose bodies are how the event changes the state). Event attributes are
plain JSON values named as in the published contract (``crm_events.customer``), so
``publication.py`` can map each event to its payload field by field.
"""

from __future__ import annotations

from crm_backbone.aggregate import TracedAggregate
from crm_events.customer import CustomerStatus, GroupRole, GroupType, RelationshipType
from eventsourcing.domain import event

from crm_customer.erasure import ERASED_NAME, CustomerErasedError, LegalHold, LegalHoldApplies
from crm_customer.rules import (
    GROUP_ROLES,
    PROFILE_FIELDS,
    STATUS_TRANSITIONS,
    Conflict,
    CustomerRetired,
    InvalidTransition,
    JsonDict,
    RuleViolation,
    check_type_fields,
)


class Customer(TracedAggregate):
    """One bank customer (or prospect), known everywhere by its unified customer number."""

    natural_key = "customer_id"
    erasure: JsonDict | None = None
    """When, by whom and on which basis the customer's personal data was erased (a class
    default, so snapshots taken before erasure existed load)."""

    @event("Registered")
    def __init__(
        self,
        customer_id: str,
        customer_type: str,
        name: JsonDict,
        status: str,
        id_documents: list[JsonDict],
        birth_date: str | None,
        phone: str | None,
        email: str | None,
        address: JsonDict | None,
        occupation: str | None,
        industry: str | None,
        branch_id: str,
        preferred_channel: str | None,
    ) -> None:
        self.customer_id = customer_id
        self.customer_type = customer_type
        self.name = name
        self.status = CustomerStatus(status)
        self.id_documents = id_documents
        self.birth_date: str | None = birth_date
        self.profile: JsonDict = {
            "phone": phone,
            "email": email,
            "address": address,
            "occupation": occupation,
            "industry": industry,
            "preferred_channel": preferred_channel,
        }
        self.branch_id = branch_id
        self.manager_id: str | None = None
        self.value_band: str | None = None
        self.corporate_tier: str | None = None
        self.groups: dict[str, JsonDict] = {}
        self.relationships: dict[str, JsonDict] = {}
        self.consents: dict[str, bool] = {}
        self.merged_ids: list[str] = []
        self.merged_into: str | None = None
        self.core_versions: dict[str, int] = {}

    @classmethod
    def register(cls, customer_id: str, fields: JsonDict) -> Customer:
        """A new customer; only prospects and active customers can be registered."""
        status = CustomerStatus(fields["status"])
        if status not in (CustomerStatus.PROSPECT, CustomerStatus.ACTIVE):
            raise RuleViolation(f"a customer is registered as prospect or active, not {status}")
        check_type_fields(fields["customer_type"], fields.get("industry"), fields.get("birth_date"))
        return cls(customer_id=customer_id, **fields)

    # Commands ---------------------------------------------------------------------------

    def update_profile(self, changes: JsonDict) -> None:
        """Change CRM-owned profile fields (``rules.check_profile_change`` refuses any
        other); values that are None or unchanged trigger nothing."""
        self._ensure_not_retired()
        changed = {k: v for k, v in changes.items() if v is not None and self.profile.get(k) != v}
        if "industry" in changed:
            check_type_fields(self.customer_type, changed["industry"], None)
        if changed:
            self._profile_updated(**{field: changed.get(field) for field in PROFILE_FIELDS})

    def change_status(self, status: CustomerStatus, reason: str) -> None:
        self._ensure_not_retired()
        if status == self.status:
            return
        if status not in STATUS_TRANSITIONS[self.status]:
            raise InvalidTransition(self.status, status)
        self._status_changed(previous_status=self.status.value, status=status.value, reason=reason)

    def flag_dormant(self, reason: str) -> None:
        """The dormancy rule's move: an active customer becomes dormant with the rule's
        reason; any other status is left as it is (a manager's decision stands)."""
        self._ensure_not_retired()
        if self.status is CustomerStatus.ACTIVE:
            self._status_changed(
                previous_status=self.status.value,
                status=CustomerStatus.DORMANT.value,
                reason=reason,
            )

    def change_segment(self, value_band: str, corporate_tier: str | None, reason: str) -> None:
        self._ensure_not_retired()
        if corporate_tier is not None and self.customer_type == "individual":
            raise RuleViolation("corporate tiers apply to corporate and institution customers")
        if (value_band, corporate_tier) == (self.value_band, self.corporate_tier):
            return
        self._segment_changed(
            value_band=value_band,
            corporate_tier=corporate_tier,
            previous_value_band=self.value_band,
            previous_corporate_tier=self.corporate_tier,
            reason=reason,
        )

    def assign_manager(self, manager_id: str, branch_id: str, reason: str | None) -> None:
        """Assign (or reassign) the relationship manager; the same assignment is a no-op."""
        self._ensure_not_retired()
        if (manager_id, branch_id) == (self.manager_id, self.branch_id):
            return
        self._manager_assigned(
            manager_id=manager_id,
            previous_manager_id=self.manager_id,
            reason=reason,
            branch_id=branch_id,
        )

    def join_group(
        self, group_id: str, group_type: GroupType, group_name: str, role: GroupRole, joined_on: str
    ) -> None:
        self._ensure_not_retired()
        if group_id in self.groups:
            raise Conflict(f"customer {self.customer_id} is already in group {group_id}")
        if role not in GROUP_ROLES[group_type]:
            raise RuleViolation(f"a {group_type} has no role {role}")
        is_person = self.customer_type == "individual"
        if is_person != (group_type is GroupType.HOUSEHOLD):
            raise RuleViolation(f"a {self.customer_type} customer cannot join a {group_type}")
        if group_type is GroupType.HOUSEHOLD and any(
            g["group_type"] == GroupType.HOUSEHOLD for g in self.groups.values()
        ):
            raise Conflict("a customer belongs to one household at a time: leave it first")
        self._group_joined(
            group_id=group_id,
            group_type=group_type.value,
            group_name=group_name,
            role=role.value,
            joined_on=joined_on,
        )

    def leave_group(self, group_id: str, left_on: str, reason: str | None) -> None:
        self._ensure_not_retired()
        membership = self.groups.get(group_id)
        if membership is None:
            raise Conflict(f"customer {self.customer_id} is not in group {group_id}")
        if left_on < membership["joined_on"]:
            raise RuleViolation("left_on is before the day the customer joined")
        self._group_left(group_id=group_id, left_on=left_on, reason=reason)

    def relate(self, related_id: str, kind: RelationshipType, since: str | None) -> None:
        """One side of a relationship; the application relates both sides together."""
        self._ensure_not_retired()
        if related_id == self.customer_id:
            raise RuleViolation("a customer cannot be related to itself")
        if _relationship_key(related_id, kind) in self.relationships:
            raise Conflict(f"{related_id} is already {kind} of {self.customer_id}")
        self._relationship_added(
            related_customer_id=related_id, relationship_type=kind.value, since=since
        )

    def unrelate(
        self, related_id: str, kind: RelationshipType, ended_on: str, reason: str | None
    ) -> None:
        self._ensure_not_retired()
        if _relationship_key(related_id, kind) not in self.relationships:
            raise Conflict(f"{related_id} is not {kind} of {self.customer_id}")
        self._relationship_removed(
            related_customer_id=related_id,
            relationship_type=kind.value,
            ended_on=ended_on,
            reason=reason,
        )

    def set_consent(
        self, channel: str, opted_in: bool, reason: str | None, campaign_id: str | None = None
    ) -> None:
        """Marketing opt-in or opt-out on one channel; the same answer again is a no-op."""
        self._ensure_not_retired()
        if self.consents.get(channel) is opted_in:
            return
        self._consent_changed(
            channel=channel, opted_in=opted_in, reason=reason, campaign_id=campaign_id
        )

    def apply_core_data(
        self, source_customer_id: str, source_version: int, source_event_id: str, data: JsonDict
    ) -> bool:
        """Apply core banking's master data; False if that upstream version was applied.

        Refused (``CustomerErasedError``) once erased: the person's data is not stored again.
        """
        self._ensure_not_erased()
        if source_version <= self.core_versions.get(source_customer_id, 0):
            return False
        self._core_data_applied(
            source_customer_id=source_customer_id,
            source_version=source_version,
            source_event_id=source_event_id,
            **{field: data.get(field) for field in _CORE_DATA_FIELDS},
        )
        return True

    def absorb(self, duplicate: Customer, reason: str) -> None:
        """Merge ``duplicate`` into this customer: its identity, missing profile, consents.

        Relationships and groups move through the application, which touches the other
        customers involved in the same atomic save.
        """
        self._ensure_not_retired()
        duplicate._ensure_not_retired()
        if duplicate.customer_id == self.customer_id:
            raise RuleViolation("a customer cannot be merged into itself")
        if duplicate.customer_type != self.customer_type:
            raise RuleViolation(
                f"cannot merge a {duplicate.customer_type} customer into a {self.customer_type}"
            )
        self._merged(
            merged_customer_id=duplicate.customer_id,
            reason=reason,
            merged_name=duplicate.name,
            merged_id_documents=duplicate.id_documents,
            merged_phone=duplicate.profile.get("phone"),
            merged_email=duplicate.profile.get("email"),
        )
        missing = {
            field: value
            for field, value in duplicate.profile.items()
            if value is not None and self.profile.get(field) is None
        }
        if missing:
            self.update_profile(missing)
        for channel, opted_in in duplicate.consents.items():
            mine = self.consents.get(channel)
            if mine is None or (mine and not opted_in):  # an opt-out always wins
                self.set_consent(channel, opted_in, f"merged from {duplicate.customer_id}")

    def erase(
        self, holds: list[LegalHold], erased_at: str, erased_by: str, legal_basis: str, reason: str
    ) -> None:
        """Forget the person, keeping only non-personal facts; refused while ``holds``
        (``erasure.legal_holds``) apply. A duplicate merged away is erased with its
        survivor (the application erases both)."""
        self._ensure_not_erased()
        if holds:
            raise LegalHoldApplies(self.customer_id, holds)
        self._erased(
            erased_at=erased_at, erased_by=erased_by, legal_basis=legal_basis, reason=reason
        )

    def retire_into(self, survivor_id: str, reason: str) -> None:
        self._ensure_not_retired()
        self._merged_into(survivor_customer_id=survivor_id, reason=reason)

    # Events: how each changes the state -------------------------------------------------

    @event("ProfileUpdated")
    def _profile_updated(
        self,
        phone: str | None,
        email: str | None,
        address: JsonDict | None,
        occupation: str | None,
        industry: str | None,
        preferred_channel: str | None,
    ) -> None:
        changes = {
            "phone": phone,
            "email": email,
            "address": address,
            "occupation": occupation,
            "industry": industry,
            "preferred_channel": preferred_channel,
        }
        self.profile.update({k: v for k, v in changes.items() if v is not None})

    @event("StatusChanged")
    def _status_changed(self, previous_status: str, status: str, reason: str) -> None:
        self.status = CustomerStatus(status)

    @event("SegmentChanged")
    def _segment_changed(
        self,
        value_band: str,
        corporate_tier: str | None,
        previous_value_band: str | None,
        previous_corporate_tier: str | None,
        reason: str,
    ) -> None:
        self.value_band = value_band
        self.corporate_tier = corporate_tier

    @event("ManagerAssigned")
    def _manager_assigned(
        self, manager_id: str, previous_manager_id: str | None, reason: str | None, branch_id: str
    ) -> None:
        self.manager_id = manager_id
        self.branch_id = branch_id

    @event("GroupJoined")
    def _group_joined(
        self, group_id: str, group_type: str, group_name: str, role: str, joined_on: str
    ) -> None:
        self.groups[group_id] = {
            "group_type": group_type,
            "group_name": group_name,
            "role": role,
            "joined_on": joined_on,
        }

    @event("GroupLeft")
    def _group_left(self, group_id: str, left_on: str, reason: str | None) -> None:
        del self.groups[group_id]

    @event("RelationshipAdded")
    def _relationship_added(
        self, related_customer_id: str, relationship_type: str, since: str | None
    ) -> None:
        key = _relationship_key(related_customer_id, RelationshipType(relationship_type))
        self.relationships[key] = {
            "related_customer_id": related_customer_id,
            "relationship_type": relationship_type,
            "since": since,
        }

    @event("RelationshipRemoved")
    def _relationship_removed(
        self, related_customer_id: str, relationship_type: str, ended_on: str, reason: str | None
    ) -> None:
        del self.relationships[
            _relationship_key(related_customer_id, RelationshipType(relationship_type))
        ]

    @event("ConsentChanged")
    def _consent_changed(
        self, channel: str, opted_in: bool, reason: str | None, campaign_id: str | None
    ) -> None:
        self.consents[channel] = opted_in

    @event("CoreDataApplied")
    def _core_data_applied(
        self,
        source_customer_id: str,
        source_version: int,
        source_event_id: str,
        name: JsonDict | None,
        id_documents: list[JsonDict] | None,
        birth_date: str | None,
        phone: str | None,
        email: str | None,
        address: JsonDict | None,
    ) -> None:
        self.core_versions[source_customer_id] = source_version
        if name is not None:
            self.name = name
        if id_documents is not None:
            self.id_documents = id_documents
        if birth_date is not None:
            self.birth_date = birth_date
        self.profile.update(
            {k: v for k, v in {"phone": phone, "email": email, "address": address}.items() if v}
        )

    @event("Merged")
    def _merged(
        self,
        merged_customer_id: str,
        reason: str,
        merged_name: JsonDict,
        merged_id_documents: list[JsonDict],
        merged_phone: str | None,
        merged_email: str | None,
    ) -> None:
        self.merged_ids.append(merged_customer_id)
        known = {(d["kind"], d["number"]) for d in self.id_documents}
        self.id_documents = self.id_documents + [
            d for d in merged_id_documents if (d["kind"], d["number"]) not in known
        ]

    @event("Erased")
    def _erased(self, erased_at: str, erased_by: str, legal_basis: str, reason: str) -> None:
        self.erasure = {"erased_at": erased_at, "erased_by": erased_by, "legal_basis": legal_basis}
        self.name = dict(ERASED_NAME)
        self.id_documents = []
        self.birth_date = None
        self.profile.update({"phone": None, "email": None, "address": None})

    @event("MergedInto")
    def _merged_into(self, survivor_customer_id: str, reason: str) -> None:
        self.merged_into = survivor_customer_id

    def _ensure_not_erased(self) -> None:
        if self.erasure is not None:
            raise CustomerErasedError(self.customer_id, self.erasure["erased_at"])

    def _ensure_not_retired(self) -> None:
        """Refuse a command on a customer erased or merged away."""
        self._ensure_not_erased()
        if self.merged_into is not None:
            raise CustomerRetired(self.customer_id, self.merged_into)


_CORE_DATA_FIELDS = ("name", "id_documents", "birth_date", "phone", "email", "address")


def _relationship_key(related_id: str, kind: RelationshipType) -> str:
    return f"{related_id}|{kind.value}"
