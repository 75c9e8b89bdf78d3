"""Wires the campaign service: settings in, application, views, policies and runtime out.

The one place that knows the concrete dependencies; tests pass their own settings (or an
in-memory store) and get the same wiring.
"""

from __future__ import annotations

from dataclasses import dataclass

from crm_backbone.book import CustomerOwnersView
from crm_backbone.erasure import ForgetErasedCustomers
from crm_backbone.organisation import OrganisationView
from crm_backbone.runtime import Infrastructure, ServiceHandle
from crm_backbone.settings import ServiceSettings
from crm_events.topics import Service

from crm_campaign.access import CampaignAccess
from crm_campaign.application import CampaignApplication
from crm_campaign.audience import Audience, AudienceReader, AudienceView
from crm_campaign.policies import CampaignPolicies
from crm_campaign.publication import translate
from crm_campaign.queries import CampaignQueries
from crm_campaign.views import CampaignTracking

SERVICE = Service.CAMPAIGN


class CampaignSettings(ServiceSettings):
    daily_timezone: str = "Asia/Shanghai"
    """Time zone of the calendar days of the daily series, unless a request names one."""


@dataclass
class CampaignService(ServiceHandle):
    application: CampaignApplication
    settings: CampaignSettings
    audience: Audience
    queries: CampaignQueries
    access: CampaignAccess


def bootstrap(settings: CampaignSettings | None = None) -> CampaignService:
    settings = settings or CampaignSettings()
    infra = Infrastructure.connect(settings, SERVICE)
    application = CampaignApplication(env=infra.store.environment())
    runtime = infra.runtime(
        application,
        translate,
        projections=[AudienceView(), CampaignTracking(), OrganisationView(), CustomerOwnersView()],
        policies=[
            CampaignPolicies(application, infra.database),
            ForgetErasedCustomers(infra.database, (), infra.key_sealer()),
        ],
    )
    access = CampaignAccess(infra.database)
    return CampaignService(
        application,
        runtime,
        infra.mongo,
        settings,
        AudienceReader(infra.database),
        CampaignQueries(infra.database, settings.daily_timezone, access),
        access,
    )
