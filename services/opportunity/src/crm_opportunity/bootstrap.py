"""Wires the opportunity service: settings in, application, views, policies and runtime out.

The one place that knows the concrete dependencies; tests pass their own settings (or an
in-memory store) and get the same wiring.
"""

from __future__ import annotations

from dataclasses import dataclass

from crm_backbone.book import CustomerBook, CustomerOwnersView
from crm_backbone.organisation import OrganisationView
from crm_backbone.runtime import Infrastructure, ServiceHandle
from crm_backbone.settings import ServiceSettings
from crm_events.topics import Service

from crm_opportunity.application import OpportunityApplication
from crm_opportunity.erasure import forget_erased
from crm_opportunity.ownership import Book, Gate
from crm_opportunity.policies import CampaignLeads
from crm_opportunity.publication import PAYLOADS, translate
from crm_opportunity.queries import OpportunityQueries
from crm_opportunity.sales_book import SalesBook
from crm_opportunity.views import OpportunityViews

SERVICE = Service.OPPORTUNITY


class OpportunitySettings(ServiceSettings):
    sla_due_soon_hours: int = 24
    """A complaint due within this many hours is "due soon" on the SLA board."""


@dataclass
class OpportunityService(ServiceHandle):
    application: OpportunityApplication
    settings: OpportunitySettings
    queries: OpportunityQueries
    gate: Gate
    sales_book: SalesBook


def bootstrap(settings: OpportunitySettings | None = None) -> OpportunityService:
    settings = settings or OpportunitySettings()
    infra = Infrastructure.connect(settings, SERVICE)
    application = OpportunityApplication(
        env=infra.store.environment(), sealing=infra.sealing(PAYLOADS)
    )
    runtime = infra.runtime(
        application,
        translate,
        projections=[OpportunityViews(), CustomerOwnersView(), OrganisationView()],
        policies=[
            CampaignLeads(application, infra.database),
            forget_erased(infra.database, infra.key_sealer()),
        ],
    )
    book = Book(CustomerBook(infra.database))
    queries = OpportunityQueries(infra.database, book, due_soon_hours=settings.sla_due_soon_hours)
    return OpportunityService(
        application,
        runtime,
        infra.mongo,
        settings,
        queries,
        Gate(application, book),
        SalesBook(infra.database, book),
    )
