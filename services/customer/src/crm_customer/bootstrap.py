"""Wires the customer service: settings in, application, views, policies and runtime out.

The one place that knows the concrete dependencies; tests pass their own settings (or an
in-memory store) and get the same wiring.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from decimal import Decimal

from crm_backbone.erasure import ForgetErasedCustomers
from crm_backbone.organisation import OrganisationView
from crm_backbone.runtime import Infrastructure, ServiceHandle
from crm_backbone.settings import ServiceSettings
from crm_events.topics import Service

from crm_customer.analysis_queries import AnalysisQueries
from crm_customer.application import CustomerApplication
from crm_customer.audit_trail import AuditTrail
from crm_customer.balance_history import BalanceHistory
from crm_customer.churn import ChurnParameters
from crm_customer.contributions import ContributionsView
from crm_customer.credit_facilities import CreditFacilitiesView
from crm_customer.cross_sell import CrossSellRule
from crm_customer.customer_value import REFERENCE_RATES, ValueRule
from crm_customer.dormancy import DormancySweep
from crm_customer.performance_queries import PerformanceQueries
from crm_customer.performance_view import ManagerPerformanceView
from crm_customer.policies import CustomerPolicies
from crm_customer.publication import PAYLOADS, translate
from crm_customer.queries import CustomerQueries
from crm_customer.views import CustomerViews
from crm_customer.views.customer_events import GROUP_PERSONAL_PATHS
from crm_customer.worklists import BookWorklists

SERVICE = Service.CUSTOMER


class CustomerSettings(ServiceSettings):
    dormancy_days: int = 90
    """Days without contact and transaction after which the dormancy rule makes an active
    customer dormant (``dormancy.py``; ``docs/analysis.md``)."""
    dormancy_sweep_s: float = 300
    """Seconds between two sweeps of the dormancy rule in the worker."""
    churn_fall_percent: Decimal = Decimal(20)
    """Churn signal: assets in a currency fell by more than this percentage ..."""
    churn_fall_days: int = 30
    """... over this many days (at most 91)."""
    churn_no_contact_days: int = 60
    """Churn signal: no contact for more than this many days."""
    churn_no_transaction_days: int = 60
    """Churn signal: no transaction for more than this many days."""
    churn_maturity_grace_days: int = 7
    """Churn signal: a product matured this many days ago or more, not rolled over ..."""
    churn_maturity_lookback_days: int = 90
    """... and no longer ago than this."""
    cross_sell_min_rate_percent: Decimal = Decimal(50)
    """Cross-sell: a product type is usual in a segment held by at least this share of it ..."""
    cross_sell_min_segment_customers: int = 10
    """... when the segment has at least this many active customers."""

    def churn_parameters(self) -> ChurnParameters:
        """The ``churn_*`` settings, as the churn rules take them."""
        return ChurnParameters(
            **{f.name: getattr(self, f"churn_{f.name}") for f in fields(ChurnParameters)}
        )

    def cross_sell_rule(self) -> CrossSellRule:
        return CrossSellRule(
            min_rate_percent=self.cross_sell_min_rate_percent,
            min_segment_customers=self.cross_sell_min_segment_customers,
        )

    value_aum_weight: Decimal = Decimal("0.01")
    """Customer value: weight of assets under management (a yearly margin on them) ..."""
    value_loan_weight: Decimal = Decimal("0.015")
    """... of loans and drawn facilities ..."""
    value_contribution_weight: Decimal = Decimal(1)
    """... and of the contribution over the window (``customer_value.py``)."""
    value_contribution_months: int = 12
    """Months of contribution counted, up to the latest month reported."""
    value_high_from: Decimal = Decimal(30_000)
    """Value (reporting currency, a year) from which a customer is in the high band ..."""
    value_medium_from: Decimal = Decimal(3_000)
    """... and in the medium band; below it, the low band."""
    value_reporting_currency: str = "CNY"
    value_reference_rates: dict[str, Decimal] = dict(REFERENCE_RATES)
    """Units of the reporting currency per unit of each currency."""

    def value_rule(self) -> ValueRule:
        return ValueRule(
            aum_weight=self.value_aum_weight,
            loan_weight=self.value_loan_weight,
            contribution_weight=self.value_contribution_weight,
            contribution_months=self.value_contribution_months,
            high_from=self.value_high_from,
            medium_from=self.value_medium_from,
            reporting_currency=self.value_reporting_currency,
            reference_rates=self.value_reference_rates,
        )

    aml_retention_years: int = 5
    """Years the anti-money-laundering law keeps a customer's records after the business
    relationship ends: erasure is refused until then (``erasure.py``)."""


@dataclass
class CustomerService(ServiceHandle):
    application: CustomerApplication
    settings: CustomerSettings
    queries: CustomerQueries
    worklists: BookWorklists
    analyses: AnalysisQueries
    performance: PerformanceQueries


def bootstrap(settings: CustomerSettings | None = None) -> CustomerService:
    settings = settings or CustomerSettings()
    infra = Infrastructure.connect(settings, SERVICE)
    application = CustomerApplication(
        env=infra.store.environment(),
        aml_retention_years=settings.aml_retention_years,
        sealing=infra.sealing(PAYLOADS),
        subject_keys=infra.key_sealer(),
    )
    worklists = BookWorklists(
        infra.database, churn=settings.churn_parameters(), cross_sell=settings.cross_sell_rule()
    )
    dormancy = DormancySweep(
        application,
        worklists,
        dormancy_days=settings.dormancy_days,
        interval_s=settings.dormancy_sweep_s,
    )
    runtime = infra.runtime(
        application,
        translate,
        projections=[
            CustomerViews(),
            OrganisationView(),
            AuditTrail(),
            BalanceHistory(),
            CreditFacilitiesView(),
            ContributionsView(),
            ManagerPerformanceView(),
        ],
        policies=[
            CustomerPolicies(application),
            ForgetErasedCustomers(infra.database, GROUP_PERSONAL_PATHS, infra.key_sealer()),
        ],
        jobs=[dormancy.run],
    )
    queries = CustomerQueries(infra.database, dormancy_days=settings.dormancy_days)
    analyses = AnalysisQueries(infra.database, settings.value_rule())
    performance = PerformanceQueries(
        infra.database, settings.value_reporting_currency, settings.value_reference_rates
    )
    return CustomerService(
        application, runtime, infra.mongo, settings, queries, worklists, analyses, performance
    )
