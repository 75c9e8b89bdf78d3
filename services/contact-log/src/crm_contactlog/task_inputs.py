"""The derived-task inputs view: what other streams tell the task rules, as documents.

A projection (consumer ``derived_tasks``) of five topics into three collections:

- ``derived_tasks``: one document per derived task, holding the facts of its trigger
  (maturity date, opportunity stage and last touch, complaint SLA, call list, manager
  assignment) and what resolved or took it on (account closed, need resolved, contact
  logged, activity scheduled with the task as its ``origin_event_id``);
- ``customers``: each customer's name, birth date, merge and erasure (from
  ``crm.customer.*``), for birthdays and for the names on the lists (who manages a
  customer is the service's ``customer_owners``, :class:`~crm_backbone.book.CustomerOwnersView`:
  one record of it, which also scopes every read);
- ``campaigns``: each campaign's name and whether it ended.

Decision: derived tasks are **read-model documents**, not ``Activity`` aggregates created
by a ``crm_backbone.policy.Policy``. Each trigger upserts one document whose id is derived
from the trigger (:func:`~crm_contactlog.task_rules.derived_task_id`: uuid5 of kind and
the triggering aggregate), so a redelivered or repeated trigger updates the same document
and the task appears once. Which tasks are open at a moment is decided when the list is
read (``task_rules``). This module derives read-side documents and issues no command.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from crm_backbone.erasure import PersonalPaths
from crm_backbone.projection import Document, Handler, Projection, ViewUpdate
from crm_backbone.readmodel import field_key
from crm_events import campaign as cmp
from crm_events import contact_log as cl
from crm_events import core_banking as cb
from crm_events import customer as cu
from crm_events import opportunity as op
from crm_events.envelope import Envelope
from crm_events.personal import ERASED
from crm_events.registry import EventPayload
from crm_events.topics import (
    CAMPAIGN_EVENTS,
    CONTACTLOG_EVENTS,
    COREBANKING_ACCOUNTS,
    CUSTOMER_EVENTS,
    OPPORTUNITY_EVENTS,
)
from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from crm_contactlog.task_rules import TaskKind, derived_task_id
from crm_contactlog.views import money

DERIVED = "derived_tasks"
CUSTOMERS = "customers"
CAMPAIGNS = "campaigns"
PERSONAL_PATHS = (
    PersonalPaths(
        DERIVED, erased={"summary": ERASED}, where={"kind": TaskKind.COMPLAINT_SLA.value}
    ),
)
"""What a derived task's document says of its customer: a complaint's summary."""

_CLOSED_STAGES = (op.OpportunityStage.CLOSED_WON, op.OpportunityStage.CLOSED_LOST)
_ENDED_NEEDS = (op.NeedStatus.RESOLVED, op.NeedStatus.CONFIRMED)

Event = Envelope[EventPayload]


class TaskInputs(Projection):
    """Documents of the derived tasks' triggers, of customers' names and birthdays, of
    campaigns: the facts :class:`~crm_contactlog.task_rules.TaskRules` reads."""

    name: ClassVar[str] = "derived_tasks"
    topics: ClassVar[tuple[str, ...]] = (
        COREBANKING_ACCOUNTS.name,
        CUSTOMER_EVENTS.name,
        OPPORTUNITY_EVENTS.name,
        CAMPAIGN_EVENTS.name,
        CONTACTLOG_EVENTS.name,
    )

    def handlers(self) -> Mapping[str, Handler]:
        typed: dict[type[EventPayload], Any] = {
            cb.ProductMaturityScheduled: self.maturity_scheduled,
            cb.AccountClosed: self.account_closed,
            cu.CustomerRegistered: self.customer_registered,
            cu.CoreDataApplied: self.core_data_applied,
            cu.RelationshipManagerAssigned: self.manager_assigned,
            cu.CustomerMergedInto: self.merged_into,
            cu.CustomerErased: self.customer_erased,
            op.OpportunityCreated: self.opportunity_created,
            op.OpportunityStageChanged: self.opportunity_stage_changed,
            op.OpportunityProbabilityOverridden: self.opportunity_touched,
            op.OpportunityExpectedValueChanged: self.opportunity_touched,
            op.OpportunityReassigned: self.opportunity_touched,
            op.NeedLogged: self.need_logged,
            op.NeedAssigned: self.need_assigned,
            op.NeedStatusChanged: self.need_status_changed,
            op.NeedResolved: self.need_ended,
            op.NeedResolutionConfirmed: self.need_ended,
            cmp.CampaignCreated: self.campaign_created,
            cmp.CampaignCompleted: self.campaign_ended,
            cmp.CampaignCancelled: self.campaign_ended,
            cmp.CallListAssigned: self.call_list_assigned,
            cl.ContactLogged: self.contact_logged,
            cl.ActivityScheduled: self.activity_scheduled,
        }
        return {model.event_type: handler for model, handler in typed.items()}

    async def setup(self, database: AsyncDatabase[Document]) -> None:
        await database[DERIVED].create_indexes(
            [IndexModel([("manager_id", ASCENDING)]), IndexModel([("customer_id", ASCENDING)])]
        )

    # Core banking: maturities ----------------------------------------------------------

    def maturity_scheduled(self, e: Event) -> Iterator[ViewUpdate]:
        d = e.data
        assert isinstance(d, cb.ProductMaturityScheduled)
        yield _derived(
            TaskKind.MATURITY,
            (e.aggregateid,),
            {
                "customer_id": d.customer_id,
                "account_id": e.aggregateid,
                "product_code": d.product_code,
                "product_type": d.product_type.value,
                "maturity_date": d.maturity_date.isoformat(),
                "amount_at_maturity": money(d.amount_at_maturity),
                "since": e.time,
                "closed": False,
            },
        )

    def account_closed(self, e: Event) -> Iterator[ViewUpdate]:
        d = e.data
        assert isinstance(d, cb.AccountClosed)
        yield _derived(
            TaskKind.MATURITY,
            (e.aggregateid,),
            {"customer_id": d.customer_id, "account_id": e.aggregateid, "closed": True},
        )

    # Customers: managers, birthdays, introductions -------------------------------------

    def customer_registered(self, e: Event) -> Iterator[ViewUpdate]:
        d = e.data
        assert isinstance(d, cu.CustomerRegistered)
        birth_date = d.birth_date.isoformat() if d.birth_date else None
        yield ViewUpdate(
            CUSTOMERS,
            e.aggregateid,
            {"$set": {"full_name": d.name.full_name, "birth_date": birth_date}},
        )

    def core_data_applied(self, e: Event) -> Iterator[ViewUpdate]:
        d = e.data
        assert isinstance(d, cu.CoreDataApplied)
        changes: Document = {}
        if d.name is not None:
            changes["full_name"] = d.name.full_name
        if d.birth_date is not None:
            changes["birth_date"] = d.birth_date.isoformat()
        if changes:
            yield ViewUpdate(CUSTOMERS, e.aggregateid, {"$set": changes})

    def manager_assigned(self, e: Event) -> Iterator[ViewUpdate]:
        d = e.data
        assert isinstance(d, cu.RelationshipManagerAssigned)
        yield _derived(
            TaskKind.INTRODUCTION,
            (e.aggregateid,),
            {
                "customer_id": e.aggregateid,
                "manager_id": d.manager_id,
                "previous_manager_id": d.previous_manager_id,
                "assigned_at": e.time,
            },
        )

    def merged_into(self, e: Event) -> Iterator[ViewUpdate]:
        d = e.data
        assert isinstance(d, cu.CustomerMergedInto)
        yield ViewUpdate(
            CUSTOMERS, e.aggregateid, {"$set": {"merged_into": d.survivor_customer_id}}
        )

    def customer_erased(self, e: Event) -> Iterator[ViewUpdate]:
        """The customer's name and birth date are forgotten (no birthday task, no name on a
        list); the tasks of its accounts and opportunities stay, as facts of the book (a
        complaint's summary is forgotten with the other documents: :data:`PERSONAL_PATHS`)."""
        assert isinstance(e.data, cu.CustomerErased)
        yield ViewUpdate(
            CUSTOMERS,
            e.aggregateid,
            {"$set": {"erased": True}, "$unset": {"full_name": "", "birth_date": ""}},
        )

    # Opportunities and complaints -------------------------------------------------------

    def opportunity_created(self, e: Event) -> Iterator[ViewUpdate]:
        d = e.data
        assert isinstance(d, op.OpportunityCreated)
        yield self._opportunity(
            e,
            d.customer_id,
            {
                "title": d.title,
                "manager_id": d.manager_id,
                "stage": d.stage.value,
                "open": d.stage not in _CLOSED_STAGES,
            },
        )

    def opportunity_stage_changed(self, e: Event) -> Iterator[ViewUpdate]:
        d = e.data
        assert isinstance(d, op.OpportunityStageChanged)
        fields = {"stage": d.stage.value, "open": d.stage not in _CLOSED_STAGES}
        yield self._opportunity(e, d.customer_id, fields)

    def opportunity_touched(self, e: Event) -> Iterator[ViewUpdate]:
        d = e.data
        assert isinstance(
            d,
            op.OpportunityProbabilityOverridden
            | op.OpportunityExpectedValueChanged
            | op.OpportunityReassigned,
        )
        yield self._opportunity(e, d.customer_id, d.model_dump(include={"manager_id"}))

    def need_logged(self, e: Event) -> Iterator[ViewUpdate]:
        d = e.data
        assert isinstance(d, op.NeedLogged)
        if d.kind is not op.NeedKind.COMPLAINT:
            return
        yield _derived(
            TaskKind.COMPLAINT_SLA,
            (e.aggregateid,),
            {
                "customer_id": d.customer_id,
                "need_id": e.aggregateid,
                "summary": d.summary,
                "severity": d.severity.value,
                "urgency": d.urgency.value,
                "sla_due_at": d.sla_due_at,
                "since": e.time,
                "open": True,
            },
        )

    def need_assigned(self, e: Event) -> Iterator[ViewUpdate]:
        d = e.data
        assert isinstance(d, op.NeedAssigned)
        yield self._need(e, {"manager_id": d.manager_id})

    def need_status_changed(self, e: Event) -> Iterator[ViewUpdate]:
        d = e.data
        assert isinstance(d, op.NeedStatusChanged)
        yield self._need(e, {"open": d.status not in _ENDED_NEEDS})

    def need_ended(self, e: Event) -> Iterator[ViewUpdate]:
        yield self._need(e, {"open": False})

    # Campaigns --------------------------------------------------------------------------

    def campaign_created(self, e: Event) -> Iterator[ViewUpdate]:
        d = e.data
        assert isinstance(d, cmp.CampaignCreated)
        yield ViewUpdate(CAMPAIGNS, e.aggregateid, {"$set": {"name": d.name}})

    def campaign_ended(self, e: Event) -> Iterator[ViewUpdate]:
        yield ViewUpdate(CAMPAIGNS, e.aggregateid, {"$set": {"ended": True, "ended_by": e.type}})

    def call_list_assigned(self, e: Event) -> Iterator[ViewUpdate]:
        d = e.data
        assert isinstance(d, cmp.CallListAssigned)
        for customer_id in d.customer_ids:
            yield _derived(
                TaskKind.CALL_LIST,
                (e.aggregateid, customer_id),
                {
                    "campaign_id": e.aggregateid,
                    "customer_id": customer_id,
                    "manager_id": d.manager_id,
                    "due_on": d.due_on.isoformat(),
                    "since": e.time,
                },
            )

    # The service's own stream: what resolves or takes on derived tasks ---------------------

    def contact_logged(self, e: Event) -> Iterator[ViewUpdate]:
        """A contact introduces its manager, touches its opportunity, answers its campaign."""
        d = e.data
        assert isinstance(d, cl.ContactLogged)
        introduction = derived_task_id(TaskKind.INTRODUCTION, d.customer_id)
        contacted = {f"contacts_by.{field_key(d.manager_id)}": d.started_at}
        yield ViewUpdate(DERIVED, introduction, {"$max": contacted})
        if d.opportunity_id:
            opportunity = derived_task_id(TaskKind.IDLE_OPPORTUNITY, d.opportunity_id)
            yield ViewUpdate(DERIVED, opportunity, {"$max": {"last_touch_at": d.started_at}})
        if d.campaign_id:
            call = derived_task_id(TaskKind.CALL_LIST, d.campaign_id, d.customer_id)
            yield ViewUpdate(DERIVED, call, {"$max": {"contacted_at": d.started_at}})

    def activity_scheduled(self, e: Event) -> Iterator[ViewUpdate]:
        """An activity whose origin is a derived task takes that task on."""
        d = e.data
        assert isinstance(d, cl.ActivityScheduled)
        if d.origin_event_id:
            yield ViewUpdate(
                DERIVED,
                d.origin_event_id,
                {"$max": {"taken_at": e.time}, "$set": {"taken_by": e.aggregateid}},
            )

    # Helpers ----------------------------------------------------------------------------

    @staticmethod
    def _opportunity(e: Event, customer_id: str, fields: Document) -> ViewUpdate:
        """Any opportunity event is activity on it: it restarts the idle clock."""
        update = _derived(
            TaskKind.IDLE_OPPORTUNITY,
            (e.aggregateid,),
            fields | {"customer_id": customer_id, "opportunity_id": e.aggregateid},
        )
        update.update["$max"] = {"last_touch_at": e.time}
        return update

    @staticmethod
    def _need(e: Event, fields: Document) -> ViewUpdate:
        """A change of a need; only complaints (``kind`` set when logged) make tasks."""
        return ViewUpdate(
            DERIVED, derived_task_id(TaskKind.COMPLAINT_SLA, e.aggregateid), {"$set": fields}
        )


def _derived(kind: TaskKind, trigger: tuple[str, ...], fields: Document) -> ViewUpdate:
    return ViewUpdate(
        DERIVED, derived_task_id(kind, *trigger), {"$set": {"kind": kind.value, **fields}}
    )
