"""Wires the customer service: settings in, application, views, policies and runtime out.

The one place that knows the concrete dependencies; tests pass their own settings (or an
in-memory store) and get the same wiring.
"""

from __future__ import annotations

from dataclasses import dataclass

from crm_backbone.projection import Document
from crm_backbone.runtime import ServiceComponents, ServiceRuntime
from crm_backbone.settings import ServiceSettings
from crm_events.topics import Service
from pymongo import AsyncMongoClient

from crm_customer.application import CustomerApplication
from crm_customer.policies import CustomerPolicies
from crm_customer.publication import translate
from crm_customer.queries import CustomerQueries
from crm_customer.views import CustomerViews

SERVICE = Service.CUSTOMER


class CustomerSettings(ServiceSettings):
    dormancy_days: int = 90
    """Days without contact or transaction after which an active customer is a dormancy risk."""


@dataclass
class CustomerService:
    settings: CustomerSettings
    application: CustomerApplication
    queries: CustomerQueries
    runtime: ServiceRuntime
    mongo: AsyncMongoClient[Document]

    async def close(self) -> None:
        await self.runtime.stop()
        await self.mongo.close()
        self.application.close()


def bootstrap(settings: CustomerSettings | None = None) -> CustomerService:
    settings = settings or CustomerSettings()
    store = settings.event_store_config(SERVICE.value)
    application = CustomerApplication(env=store.environment())
    mongo: AsyncMongoClient[Document] = AsyncMongoClient(settings.mongo_uri, tz_aware=True)
    database = mongo[settings.mongo_database(SERVICE.value)]
    runtime = ServiceRuntime(
        ServiceComponents(
            service=SERVICE,
            application=application,
            translate=translate,
            database=database,
            projections=[CustomerViews()],
            policies=[CustomerPolicies(application, database)],
        ),
        kafka_bootstrap=settings.kafka_bootstrap,
        postgres_dsn=store.postgres_dsn,
        namespace=settings.namespace,
    )
    application.on_saved = runtime.relay.nudge
    queries = CustomerQueries(database, dormancy_days=settings.dormancy_days)
    return CustomerService(settings, application, queries, runtime, mongo)
