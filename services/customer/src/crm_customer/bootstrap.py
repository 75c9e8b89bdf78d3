"""Wires the customer service: settings in, application, views, policies and runtime out.

The one place that knows the concrete dependencies; tests pass their own settings (or an
in-memory store) and get the same wiring.
"""

from __future__ import annotations

from dataclasses import dataclass

from crm_backbone.erasure import ForgetErasedCustomers
from crm_backbone.organisation import OrganisationView
from crm_backbone.runtime import Infrastructure, ServiceHandle
from crm_backbone.settings import ServiceSettings
from crm_events.topics import Service

from crm_customer.application import CustomerApplication
from crm_customer.audit_trail import AuditTrail
from crm_customer.policies import CustomerPolicies
from crm_customer.publication import PAYLOADS, translate
from crm_customer.queries import CustomerQueries
from crm_customer.views import CustomerViews
from crm_customer.views.customer_events import GROUP_PERSONAL_PATHS

SERVICE = Service.CUSTOMER


class CustomerSettings(ServiceSettings):
    dormancy_days: int = 90
    """Days without contact or transaction after which an active customer is a dormancy risk."""
    aml_retention_years: int = 5
    """Years the anti-money-laundering law keeps a customer's records after the business
    relationship ends: erasure is refused until then (``erasure.py``)."""


@dataclass
class CustomerService(ServiceHandle):
    application: CustomerApplication
    settings: CustomerSettings
    queries: CustomerQueries


def bootstrap(settings: CustomerSettings | None = None) -> CustomerService:
    settings = settings or CustomerSettings()
    infra = Infrastructure.connect(settings, SERVICE)
    application = CustomerApplication(
        env=infra.store.environment(),
        aml_retention_years=settings.aml_retention_years,
        sealing=infra.sealing(PAYLOADS),
        subject_keys=infra.key_sealer(),
    )
    runtime = infra.runtime(
        application,
        translate,
        projections=[CustomerViews(), OrganisationView(), AuditTrail()],
        policies=[
            CustomerPolicies(application),
            ForgetErasedCustomers(infra.database, GROUP_PERSONAL_PATHS, infra.key_sealer()),
        ],
    )
    queries = CustomerQueries(infra.database, dormancy_days=settings.dormancy_days)
    return CustomerService(application, runtime, infra.mongo, settings, queries)
