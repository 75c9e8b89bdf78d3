"""The answer of ``GET /performance``: the league table of a period (``performance.py``).

Amounts are exact decimals written as text, in the reporting currency. No personal data:
managers, branches and regions are named by id.
"""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, Field

from crm_customer.analysis_models import Amount, _examples
from crm_customer.performance import GroupBy, PeriodKind


class Figures(BaseModel):
    deposits_end: Amount = Field(description="Deposits on the period's last day")
    deposits_daily_average: Amount = Field(description="Sum of the daily closings / days")
    loans_end: Amount
    loans_daily_average: Amount
    aum_end: Amount = Field(description="Assets under management on the period's last day")
    aum_daily_average: Amount
    customers: int = Field(description="Customers held on the period's last day")
    new_customers: int
    customers_lost: int = Field(description="Customers whose status became churned")
    products: int = Field(description="Products the customers held hold on the last day")
    products_per_customer: Amount | None = Field(description="Null without customers")
    opportunities_won: int
    won_value: Amount = Field(description="Expected value of the opportunities won")
    contacts: int = Field(description="Contacts made with the customers held")
    tasks_done: int
    tasks_done_on_time: int = Field(description="Completed no later than due")
    complaints_closed: int
    complaints_closed_within_sla: int


class LeagueRow(BaseModel):
    manager_id: str | None = None
    branch_id: str | None = None
    region_id: str | None = None
    rank: int = Field(description="In the whole league, by `rank_by` (equal values share it)")
    previous_rank: int | None = Field(description="In the previous period's league")
    figures: Figures
    previous: Figures | None = Field(description="The previous period's; null if absent")
    change: Figures | None = Field(description="Figures minus the previous period's")


_FIGURES = {
    "deposits_end": "1250000.00",
    "deposits_daily_average": "1187500.00",
    "loans_end": "300000.00",
    "loans_daily_average": "300000.00",
    "aum_end": "1900000.00",
    "aum_daily_average": "1820000.00",
    "customers": 42,
    "new_customers": 3,
    "customers_lost": 1,
    "products": 97,
    "products_per_customer": "2.31",
    "opportunities_won": 2,
    "won_value": "150000.00",
    "contacts": 31,
    "tasks_done": 12,
    "tasks_done_on_time": 10,
    "complaints_closed": 2,
    "complaints_closed_within_sla": 2,
}


class LeagueTable(BaseModel):
    period: PeriodKind
    start: date
    end: date
    previous_start: date
    previous_end: date
    group_by: GroupBy
    rank_by: str
    currency: str = Field(description="The reporting currency of every amount")
    ranked: int = Field(description="Rows in the whole league (others' figures not shown)")
    rows: list[LeagueRow] = Field(description="The rows in the caller's reach, by rank")

    model_config = _examples(
        {
            "period": "month",
            "start": "2026-03-01",
            "end": "2026-03-31",
            "previous_start": "2026-02-01",
            "previous_end": "2026-02-28",
            "group_by": "manager",
            "rank_by": "aum_daily_average",
            "currency": "CNY",
            "ranked": 12,
            "rows": [
                {
                    "manager_id": "RM-0001",
                    "branch_id": "BR-001",
                    "region_id": None,
                    "rank": 3,
                    "previous_rank": 5,
                    "figures": _FIGURES,
                    "previous": _FIGURES | {"aum_daily_average": "1700000.00"},
                    "change": {k: "0.00" if isinstance(v, str) else 0 for k, v in _FIGURES.items()}
                    | {"aum_daily_average": "120000.00"},
                }
            ],
        }
    )
