"""Wires the contact-log service: settings in, application, views, queries and runtime out.

The one place that knows the concrete dependencies; tests pass their own settings (or a
clock of their own) and get the same wiring.
"""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo

from crm_backbone.application import Clock, utc_now
from crm_backbone.book import CustomerOwnersView
from crm_backbone.erasure import ForgetErasedCustomers
from crm_backbone.organisation import OrganisationView
from crm_backbone.runtime import Infrastructure, ServiceHandle
from crm_backbone.settings import ServiceSettings
from crm_events.topics import Service

from crm_contactlog.application import ContactLogApplication
from crm_contactlog.busy_times import BusyTimeReader, BusyTimes, BusyTimesView
from crm_contactlog.publication import PAYLOADS, translate
from crm_contactlog.queries import ContactLogQueries
from crm_contactlog.task_inputs import PERSONAL_PATHS as TASK_PATHS
from crm_contactlog.task_inputs import TaskInputs
from crm_contactlog.task_rules import TaskRules
from crm_contactlog.views import PERSONAL_PATHS, ContactLogViews

SERVICE = Service.CONTACT_LOG


class ContactLogSettings(ServiceSettings):
    timezone: str = "Asia/Shanghai"
    """Time zone of the bank's days: what "today" and "this week" mean on task lists."""
    maturity_notice_days: int = 30
    """A maturing product is on the list from this many days before it matures."""
    birthday_notice_days: int = 7
    """A birthday is on the list from this many days before it."""
    opportunity_idle_days: int = 14
    """An open opportunity with no activity for this many days is on the list."""
    complaint_warning_hours: int = 48
    """A complaint is on the list from this many hours before its SLA falls due."""
    introduction_days: int = 3
    """A newly assigned customer is to be called within this many days."""
    introduction_lapse_days: int = 30
    """After this many days an assigned customer is no longer new: no introduction task."""
    upcoming_days: int = 30
    """How far ahead a task list reaches (its ``upcoming`` group)."""

    def task_rules(self) -> TaskRules:
        return TaskRules(
            timezone=ZoneInfo(self.timezone),
            maturity_notice_days=self.maturity_notice_days,
            birthday_notice_days=self.birthday_notice_days,
            opportunity_idle_days=self.opportunity_idle_days,
            complaint_warning_hours=self.complaint_warning_hours,
            introduction_days=self.introduction_days,
            introduction_lapse_days=self.introduction_lapse_days,
        )


@dataclass
class ContactLogService(ServiceHandle):
    application: ContactLogApplication
    settings: ContactLogSettings
    queries: ContactLogQueries
    busy_times: BusyTimeReader
    """What the overlap check of scheduling reads (a test may give its own)."""


def bootstrap(
    settings: ContactLogSettings | None = None, *, clock: Clock = utc_now
) -> ContactLogService:
    settings = settings or ContactLogSettings()
    infra = Infrastructure.connect(settings, SERVICE)
    application = ContactLogApplication(
        env=infra.store.environment(), clock=clock, sealing=infra.sealing(PAYLOADS)
    )
    runtime = infra.runtime(
        application,
        translate,
        projections=[
            ContactLogViews(),
            TaskInputs(),
            BusyTimesView(),
            CustomerOwnersView(),
            OrganisationView(),
        ],
        policies=[
            ForgetErasedCustomers(
                infra.database, (*PERSONAL_PATHS, *TASK_PATHS), infra.key_sealer()
            )
        ],
    )
    queries = ContactLogQueries(
        infra.database, settings.task_rules(), clock=clock, upcoming_days=settings.upcoming_days
    )
    return ContactLogService(
        application, runtime, infra.mongo, settings, queries, BusyTimes(infra.database)
    )
