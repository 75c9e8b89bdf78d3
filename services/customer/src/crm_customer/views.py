"""The customer service's read models in MongoDB, built from every stream.

``customers``: the single customer view, one document per customer id, composed from the
customer's own events, core banking's accounts and KYC, opportunities and needs,
contacts and tasks, and campaign targeting and responses. Each handler touches only paths
owned by its source (an account's fields, an opportunity's, ...), so the document comes
out the same whatever order the streams arrive in relative to each other; within one
aggregate the engine applies events in version order.

``groups``: households and corporate groups with their members over time.

A merged duplicate keeps its own document, marked ``merged_into``; the read side folds
it into the survivor (``queries.py``), so events still naming the duplicate are not lost.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import date, datetime
from typing import Any, ClassVar

from crm_backbone.projection import Document, Handler, Projection, ViewUpdate
from crm_backbone.readmodel import field_key
from crm_events import campaign as cmp
from crm_events import contact_log as cl
from crm_events import core_banking as cb
from crm_events import customer as cu
from crm_events import opportunity as op
from crm_events.envelope import Envelope
from crm_events.registry import EventPayload
from crm_events.topics import (
    CAMPAIGN_EVENTS,
    CONTACTLOG_EVENTS,
    COREBANKING_ACCOUNTS,
    COREBANKING_CUSTOMERS,
    CUSTOMER_EVENTS,
    OPPORTUNITY_EVENTS,
)
from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

CUSTOMERS = "customers"
GROUPS = "groups"
LAST_CONTACTS = 10
CLOSED_STAGES = (op.OpportunityStage.CLOSED_WON, op.OpportunityStage.CLOSED_LOST)

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


class CustomerViews(Projection):
    """Single customer view and household/group view."""

    name: ClassVar[str] = "customer_view"
    topics: ClassVar[tuple[str, ...]] = (
        CUSTOMER_EVENTS.name,
        COREBANKING_ACCOUNTS.name,
        COREBANKING_CUSTOMERS.name,
        OPPORTUNITY_EVENTS.name,
        CONTACTLOG_EVENTS.name,
        CAMPAIGN_EVENTS.name,
    )

    def handlers(self) -> Mapping[str, Handler]:
        typed: dict[type[EventPayload], Any] = {
            cu.CustomerRegistered: self.registered,
            cu.CustomerProfileUpdated: self.profile_updated,
            cu.CustomerStatusChanged: self.status_changed,
            cu.CustomerSegmentChanged: self.segment_changed,
            cu.RelationshipManagerAssigned: self.manager_assigned,
            cu.GroupMembershipJoined: self.group_joined,
            cu.GroupMembershipLeft: self.group_left,
            cu.RelationshipAdded: self.relationship_added,
            cu.RelationshipRemoved: self.relationship_removed,
            cu.ConsentChanged: self.consent_changed,
            cu.CoreDataApplied: self.core_data_applied,
            cu.CustomersMerged: self.merged,
            cu.CustomerMergedInto: self.merged_into,
            cb.AccountOpened: self.account_opened,
            cb.AccountClosed: self.account_closed,
            cb.HoldingBalanceChanged: self.balance_changed,
            cb.ProductMaturityScheduled: self.maturity_scheduled,
            cb.KycUpdated: self.kyc_updated,
            op.OpportunityCreated: self.opportunity_created,
            op.OpportunityStageChanged: self.opportunity_stage_changed,
            op.OpportunityProbabilityOverridden: self.opportunity_changed,
            op.OpportunityExpectedValueChanged: self.opportunity_changed,
            op.OpportunityReassigned: self.opportunity_changed,
            op.NeedLogged: self.need_logged,
            op.NeedAssigned: self.need_changed,
            op.NeedStatusChanged: self.need_changed,
            op.NeedResolved: self.need_changed,
            op.NeedResolutionConfirmed: self.need_ended,
            cl.ContactLogged: self.contact_logged,
            cl.ActivityScheduled: self.activity_scheduled,
            cl.ActivityRescheduled: self.activity_rescheduled,
            cl.ActivityCompleted: self.activity_ended,
            cl.ActivityCancelled: self.activity_ended,
            cmp.CampaignStarted: self.campaign_started,
            cmp.CampaignResponseRecorded: self.campaign_response,
        }
        return {model.event_type: handler for model, handler in typed.items()}

    async def setup(self, database: AsyncDatabase[Document]) -> None:
        by_name = [("search.name_key", ASCENDING), ("_id", ASCENDING)]
        await database[CUSTOMERS].create_indexes(
            [
                IndexModel(by_name),
                IndexModel([("search.names", ASCENDING)]),
                IndexModel([("search.phones", ASCENDING)]),
                IndexModel([("search.id_numbers", ASCENDING)]),
                *(IndexModel([(field, ASCENDING), *by_name]) for field in _FILTERS),
                IndexModel([("merged_into", ASCENDING)], sparse=True),
                IndexModel([("merged_ids", ASCENDING)], sparse=True),
            ]
        )

    # The customer's own events ----------------------------------------------------------

    def registered(self, e: Event) -> Iterator[ViewUpdate]:
        d = e.data
        assert isinstance(d, cu.CustomerRegistered)
        profile = d.model_dump(include={"phone", "email", "address", "occupation", "industry"})
        yield self._customer(
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

    def profile_updated(self, e: Event) -> Iterator[ViewUpdate]:
        d = e.data
        assert isinstance(d, cu.CustomerProfileUpdated)
        changes = d.model_dump(exclude_none=True)
        update: Document = {"$set": flat("profile", changes)}
        if d.phone:
            update["$addToSet"] = search_keys(phone=d.phone)
        yield self._customer(e, update)

    def status_changed(self, e: Event) -> Iterator[ViewUpdate]:
        d = e.data
        assert isinstance(d, cu.CustomerStatusChanged)
        yield self._customer(
            e,
            {"$set": {"status": d.status.value, "status_reason": d.reason, "status_since": e.time}},
        )

    def segment_changed(self, e: Event) -> Iterator[ViewUpdate]:
        d = e.data
        assert isinstance(d, cu.CustomerSegmentChanged)
        yield self._customer(
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

    def manager_assigned(self, e: Event) -> Iterator[ViewUpdate]:
        d = e.data
        assert isinstance(d, cu.RelationshipManagerAssigned)
        yield self._customer(
            e,
            {
                "$set": {
                    "manager_id": d.manager_id,
                    "branch_id": d.branch_id,
                    "manager_since": e.time,
                }
            },
        )

    def group_joined(self, e: Event) -> Iterator[ViewUpdate]:
        d = e.data
        assert isinstance(d, cu.GroupMembershipJoined)
        member = {"role": d.role.value, "joined_on": d.joined_on.isoformat(), "left_on": None}
        key = field_key(d.group_id)
        yield self._customer(
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
                    **flat(f"members.{field_key(e.aggregateid)}", member),
                },
                "$push": {"history": {"customer_id": e.aggregateid, "event": "joined", **member}},
            },
        )

    def group_left(self, e: Event) -> Iterator[ViewUpdate]:
        d = e.data
        assert isinstance(d, cu.GroupMembershipLeft)
        left_on = d.left_on.isoformat()
        yield self._customer(e, {"$unset": {f"groups.{field_key(d.group_id)}": ""}})
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

    def relationship_added(self, e: Event) -> Iterator[ViewUpdate]:
        d = e.data
        assert isinstance(d, cu.RelationshipAdded)
        key = field_key(f"{d.related_customer_id}|{d.relationship_type.value}")
        yield self._customer(e, {"$set": flat(f"relationships.{key}", d.model_dump())})

    def relationship_removed(self, e: Event) -> Iterator[ViewUpdate]:
        d = e.data
        assert isinstance(d, cu.RelationshipRemoved)
        key = field_key(f"{d.related_customer_id}|{d.relationship_type.value}")
        yield self._customer(e, {"$unset": {f"relationships.{key}": ""}})

    def consent_changed(self, e: Event) -> Iterator[ViewUpdate]:
        d = e.data
        assert isinstance(d, cu.ConsentChanged)
        yield self._customer(
            e,
            {
                "$set": flat(
                    f"consent.{d.channel.value}",
                    d.model_dump(exclude={"channel"}) | {"since": e.time},
                )
            },
        )

    def core_data_applied(self, e: Event) -> Iterator[ViewUpdate]:
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
        yield self._customer(
            e,
            {
                "$set": changes,
                "$addToSet": search_keys(
                    d.name.model_dump() if d.name else None, d.phone, plain(d.id_documents or [])
                ),
            },
        )

    def merged(self, e: Event) -> Iterator[ViewUpdate]:
        d = e.data
        assert isinstance(d, cu.CustomersMerged)
        keys = search_keys(d.merged_name.model_dump(), d.merged_phone, plain(d.merged_id_documents))
        keys["merged_ids"] = d.merged_customer_id
        keys["profile.id_documents"] = {"$each": plain(d.merged_id_documents)}
        yield self._customer(e, {"$addToSet": keys})

    def merged_into(self, e: Event) -> Iterator[ViewUpdate]:
        d = e.data
        assert isinstance(d, cu.CustomerMergedInto)
        yield self._customer(e, {"$set": {"merged_into": d.survivor_customer_id}})

    # Core banking ------------------------------------------------------------------------

    def account_opened(self, e: Event) -> Iterator[ViewUpdate]:
        d = e.data
        assert isinstance(d, cb.AccountOpened)
        account = d.model_dump(exclude={"customer_id"}) | {"account_id": e.aggregateid}
        yield self._of(
            d.customer_id, e, {"$set": flat(self._account(e), account | {"status": "open"})}
        )

    def account_closed(self, e: Event) -> Iterator[ViewUpdate]:
        d = e.data
        assert isinstance(d, cb.AccountClosed)
        closed = {"status": "closed", "closed_on": d.closed_on, "account_id": e.aggregateid}
        yield self._of(d.customer_id, e, {"$set": flat(self._account(e), closed)})

    def balance_changed(self, e: Event) -> Iterator[ViewUpdate]:
        d = e.data
        assert isinstance(d, cb.HoldingBalanceChanged)
        fields = {
            "account_id": e.aggregateid,
            "product_type": d.product_type,
            "balance": d.balance,
            "balance_changed_at": d.changed_at,
        }
        yield self._of(
            d.customer_id,
            e,
            {"$set": flat(self._account(e), fields), "$max": {"last_transaction_at": d.changed_at}},
        )

    def maturity_scheduled(self, e: Event) -> Iterator[ViewUpdate]:
        d = e.data
        assert isinstance(d, cb.ProductMaturityScheduled)
        maturity = d.model_dump(exclude={"customer_id"}) | {"account_id": e.aggregateid}
        yield self._of(
            d.customer_id, e, {"$set": flat(f"maturities.{field_key(e.aggregateid)}", maturity)}
        )

    def kyc_updated(self, e: Event) -> Iterator[ViewUpdate]:
        d = e.data
        assert isinstance(d, cb.KycUpdated)
        yield self._customer(e, {"$set": flat("kyc", d.model_dump())})

    # Opportunities and needs -----------------------------------------------------------

    def opportunity_created(self, e: Event) -> Iterator[ViewUpdate]:
        d = e.data
        assert isinstance(d, op.OpportunityCreated)
        fields = d.model_dump(
            include={
                "title",
                "stage",
                "probability",
                "expected_value",
                "expected_close_date",
                "manager_id",
                "products",
                "branch_id",
            }
        )
        opportunity = fields | {
            "opportunity_id": e.aggregateid,
            "open": d.stage not in CLOSED_STAGES,
        }
        yield self._of(d.customer_id, e, {"$set": flat(self._opportunity(e), opportunity)})

    def opportunity_stage_changed(self, e: Event) -> Iterator[ViewUpdate]:
        d = e.data
        assert isinstance(d, op.OpportunityStageChanged)
        fields = {
            "opportunity_id": e.aggregateid,
            "stage": d.stage,
            "probability": d.probability,
            "open": d.stage not in CLOSED_STAGES,
            "lost_reason": d.lost_reason,
            "stage_since": e.time,
        }
        yield self._of(d.customer_id, e, {"$set": flat(self._opportunity(e), fields)})

    def opportunity_changed(self, e: Event) -> Iterator[ViewUpdate]:
        d = e.data
        assert isinstance(
            d,
            op.OpportunityProbabilityOverridden
            | op.OpportunityExpectedValueChanged
            | op.OpportunityReassigned,
        )
        fields = d.model_dump(include={"probability", "expected_value", "manager_id"})
        yield self._of(d.customer_id, e, {"$set": flat(self._opportunity(e), fields)})

    def need_logged(self, e: Event) -> Iterator[ViewUpdate]:
        d = e.data
        assert isinstance(d, op.NeedLogged)
        need = d.model_dump(exclude={"customer_id", "content"}) | {
            "need_id": e.aggregateid,
            "status": op.NeedStatus.OPEN,
        }
        yield self._of(d.customer_id, e, {"$set": flat(self._need(e), need)})

    def need_changed(self, e: Event) -> Iterator[ViewUpdate]:
        d = e.data
        assert isinstance(d, op.NeedAssigned | op.NeedStatusChanged | op.NeedResolved)
        if isinstance(d, op.NeedAssigned):
            fields: dict[str, Any] = {"owner_id": d.manager_id}
        elif isinstance(d, op.NeedStatusChanged):
            fields = {"status": d.status, "sub_status": d.sub_status}
        else:
            fields = {"status": op.NeedStatus.RESOLVED, "resolved_at": d.resolved_at}
        yield self._of(d.customer_id, e, {"$set": flat(self._need(e), fields)})

    def need_ended(self, e: Event) -> Iterator[ViewUpdate]:
        d = e.data
        assert isinstance(d, op.NeedResolutionConfirmed)
        yield self._of(d.customer_id, e, {"$unset": {self._need(e): ""}})

    # Contacts and tasks -----------------------------------------------------------------

    def contact_logged(self, e: Event) -> Iterator[ViewUpdate]:
        d = e.data
        assert isinstance(d, cl.ContactLogged)
        contact = plain(d.model_dump(exclude={"customer_id", "content"})) | {
            "contact_id": e.aggregateid
        }
        yield self._of(
            d.customer_id,
            e,
            {
                "$push": {
                    "contacts": {
                        "$each": [contact],
                        "$sort": {"started_at": -1, "contact_id": 1},
                        "$slice": LAST_CONTACTS,
                    }
                },
                "$max": {"last_contact_at": d.started_at},
                "$inc": {"contact_count": 1},
            },
        )

    def activity_scheduled(self, e: Event) -> Iterator[ViewUpdate]:
        d = e.data
        assert isinstance(d, cl.ActivityScheduled)
        if d.customer_id is None:
            return
        task = d.model_dump(
            include={"category", "description", "priority", "due_at", "assignee_id"}
        ) | {"activity_id": e.aggregateid}
        yield self._of(d.customer_id, e, {"$set": flat(self._task(e), task)})

    def activity_rescheduled(self, e: Event) -> Iterator[ViewUpdate]:
        d = e.data
        assert isinstance(d, cl.ActivityRescheduled)
        if d.customer_id is not None:
            yield self._of(d.customer_id, e, {"$set": {f"{self._task(e)}.due_at": d.due_at}})

    def activity_ended(self, e: Event) -> Iterator[ViewUpdate]:
        d = e.data
        assert isinstance(d, cl.ActivityCompleted | cl.ActivityCancelled)
        if d.customer_id is not None:
            yield self._of(d.customer_id, e, {"$unset": {self._task(e): ""}})

    # Campaigns ---------------------------------------------------------------------------

    def campaign_started(self, e: Event) -> Iterator[ViewUpdate]:
        d = e.data
        assert isinstance(d, cmp.CampaignStarted)
        for target in d.targets:
            membership = {
                "campaign_id": e.aggregateid,
                "channel": target.channel,
                "segment": target.segment,
                "targeted_at": e.time,
            }
            yield self._of(target.customer_id, e, {"$set": flat(self._campaign(e), membership)})

    def campaign_response(self, e: Event) -> Iterator[ViewUpdate]:
        d = e.data
        assert isinstance(d, cmp.CampaignResponseRecorded)
        path = self._campaign(e)
        yield self._of(
            d.customer_id,
            e,
            {
                "$set": {
                    f"{path}.campaign_id": e.aggregateid,
                    f"{path}.stages.{d.stage.value}": d.occurred_at,
                    f"{path}.last_stage": d.stage.value,
                }
            },
        )

    # Helpers ------------------------------------------------------------------------------

    def _customer(self, e: Event, update: Document) -> ViewUpdate:
        """An update of the document of the customer the event is about (its subject)."""
        return self._of(e.aggregateid, e, update)

    @staticmethod
    def _of(customer_id: str, e: Event, update: Document) -> ViewUpdate:
        update.setdefault("$set", {})["customer_id"] = customer_id
        update.setdefault("$max", {})["updated_at"] = e.time
        return ViewUpdate(CUSTOMERS, customer_id, update)

    @staticmethod
    def _account(e: Event) -> str:
        return f"accounts.{field_key(e.aggregateid)}"

    @staticmethod
    def _opportunity(e: Event) -> str:
        return f"opportunities.{field_key(e.aggregateid)}"

    @staticmethod
    def _need(e: Event) -> str:
        return f"needs.{field_key(e.aggregateid)}"

    @staticmethod
    def _task(e: Event) -> str:
        return f"tasks.{field_key(e.aggregateid)}"

    @staticmethod
    def _campaign(e: Event) -> str:
        return f"campaigns.{field_key(e.aggregateid)}"


_FILTERS = ("manager_id", "branch_id", "segment.value_band", "status")
"""Fields a search filters on; each has an index with the stable sort after it."""
