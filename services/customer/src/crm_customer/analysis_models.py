"""The answers of the book's analyses: credit exposure and customer value.

Amounts are exact decimals written as text, as in the contracts. No answer holds personal
data: customers are named by id only.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Any

from crm_events.common import ValueBand
from pydantic import BaseModel, ConfigDict, Field, PlainSerializer

from crm_customer.exposure import Relation

Amount = Annotated[Decimal, PlainSerializer(lambda v: format(v, "f"), return_type=str)]


def _examples(*examples: dict[str, Any]) -> ConfigDict:
    return ConfigDict(json_schema_extra={"examples": list(examples)})


class CountedFacility(BaseModel):
    facility_id: str
    relation: Relation = Field(description="How it counts: borrowed, or guaranteed")
    borrower_customer_id: str | None = Field(
        description="The borrower; null when the caller's reach does not cover them"
    )
    facility_type: str
    currency: str
    status: str
    limit: Amount
    drawn: Amount
    maturity_date: date
    exposure: Amount = Field(description="What it counts for (a guarantee: capped at it)")
    exposure_drawn: Amount


class CurrencyFigures(BaseModel):
    currency: str
    limit: Amount = Field(description="Facilities borrowed directly")
    drawn: Amount = Field(description="Facilities borrowed directly")
    utilisation_percent: Amount | None = Field(
        description="Drawn share of the open direct limit; null without one"
    )
    direct_exposure: Amount
    guaranteed_exposure: Amount = Field(description="Through guarantees of others' facilities")
    guaranteed_drawn: Amount
    total_exposure: Amount


class NextMaturity(BaseModel):
    facility_id: str
    maturity_date: date
    currency: str
    limit: Amount
    drawn: Amount


_EXPOSURE = {
    "by_currency": [
        {
            "currency": "CNY",
            "limit": "50000000.00",
            "drawn": "32000000.00",
            "utilisation_percent": "64.00",
            "direct_exposure": "50000000.00",
            "guaranteed_exposure": "10000000.00",
            "guaranteed_drawn": "4000000.00",
            "total_exposure": "60000000.00",
        }
    ],
    "next_maturity": {
        "facility_id": "CF-0001",
        "maturity_date": "2027-06-30",
        "currency": "CNY",
        "limit": "50000000.00",
        "drawn": "32000000.00",
    },
    "facilities": [
        {
            "facility_id": "CF-0001",
            "relation": "borrower",
            "borrower_customer_id": "C00012345",
            "facility_type": "revolving",
            "currency": "CNY",
            "status": "open",
            "limit": "50000000.00",
            "drawn": "32000000.00",
            "maturity_date": "2027-06-30",
            "exposure": "50000000.00",
            "exposure_drawn": "32000000.00",
        },
        {
            "facility_id": "CF-0002",
            "relation": "guarantor",
            "borrower_customer_id": None,
            "facility_type": "term_loan",
            "currency": "CNY",
            "status": "open",
            "limit": "20000000.00",
            "drawn": "4000000.00",
            "maturity_date": "2028-01-31",
            "exposure": "10000000.00",
            "exposure_drawn": "4000000.00",
        },
    ],
}


class ExposureFigures(BaseModel):
    by_currency: list[CurrencyFigures] = Field(description="No exchange rate is applied")
    next_maturity: NextMaturity | None = Field(description="Earliest of the open facilities")
    facilities: list[CountedFacility]


class CustomerExposure(ExposureFigures):
    model_config = _examples({"customer_id": "C00012345", **_EXPOSURE})
    customer_id: str


class GroupExposure(ExposureFigures):
    model_config = _examples(
        {"group_id": "GRP-0001", "members": ["C00012345", "C00012346"], **_EXPOSURE}
    )
    group_id: str
    members: list[str] = Field(description="Its current members in the caller's reach, counted")


class ValueFigures(BaseModel):
    aum: Amount
    loans: Amount
    revenue: Amount
    cost: Amount
    contribution: Amount
    value: Amount


_FIGURES = {
    "aum": "1250000.00",
    "loans": "0.00",
    "revenue": "21000.00",
    "cost": "6000.00",
    "contribution": "15000.00",
    "value": "27500.00",
}


class CustomerValue(ValueFigures):
    model_config = _examples(
        {
            "customer_id": "C00012345",
            "manager_id": "RM-0001",
            "segment": "high",
            "band": "medium",
            "currency": "CNY",
            "contribution_months": ["2025-12", "2026-11"],
            **_FIGURES,
        }
    )
    customer_id: str
    manager_id: str | None
    segment: ValueBand | None = Field(description="The segment the customer is in")
    band: ValueBand = Field(description="The band the value rule puts them in")
    currency: str = Field(description="The reporting currency of every amount")
    contribution_months: list[str] | None = Field(
        description="First and last month of the contribution window; null before any"
    )


class SegmentReview(CustomerValue):
    """A customer whose segment disagrees with their value band: a review proposed."""

    branch_id: str | None
    reason: str


class SegmentReviews(BaseModel):
    model_config = _examples(
        {
            "items": [
                {
                    "customer_id": "C00012345",
                    "manager_id": "RM-0001",
                    "branch_id": "BR-001",
                    "segment": "high",
                    "band": "medium",
                    "currency": "CNY",
                    "contribution_months": ["2025-12", "2026-11"],
                    **_FIGURES,
                    "reason": "value 27500.00 CNY is in the medium band (3000 to 30000); "
                    "segment is high",
                }
            ],
            "total": 1,
        }
    )
    items: list[SegmentReview] = Field(description="By value, highest first")
    total: int = Field(description="Proposals in the caller's reach (the items may be fewer)")


class ParetoShare(BaseModel):
    top_percent: int
    customers: int
    share_percent: Amount | None = Field(
        description="Share of the total held by them; null when the total is 0; above 100 "
        "when the rest adds up to less than nothing"
    )


class Distribution(ValueFigures):
    key: str = Field(description="The band or segment (`none`: no segment yet)")
    customers: int
    median_value: Amount | None


class BottomFifth(BaseModel):
    customers: int
    revenue: Amount
    cost: Amount
    contribution: Amount
    cost_to_revenue: Amount | None = Field(description="Cost per unit of revenue")


class ValueAnalysis(ValueFigures):
    model_config = _examples(
        {
            "currency": "CNY",
            "contribution_months": ["2025-12", "2026-11"],
            "customers": 50,
            **_FIGURES,
            "pareto_aum": [
                {"top_percent": 1, "customers": 1, "share_percent": "18.20"},
                {"top_percent": 20, "customers": 10, "share_percent": "71.05"},
            ],
            "pareto_contribution": [
                {"top_percent": 1, "customers": 1, "share_percent": "22.00"},
                {"top_percent": 20, "customers": 10, "share_percent": "104.30"},
            ],
            "bottom_fifth": {
                "customers": 10,
                "revenue": "3000.00",
                "cost": "11000.00",
                "contribution": "-8000.00",
                "cost_to_revenue": "3.67",
            },
            "by_band": [{"key": "high", "customers": 5, "median_value": "41000.00", **_FIGURES}],
            "by_segment": [{"key": "none", "customers": 2, "median_value": "120.00", **_FIGURES}],
            "segment_reviews": 4,
            "unconverted_currencies": [],
        }
    )
    currency: str
    contribution_months: list[str] | None
    customers: int
    pareto_aum: list[ParetoShare]
    pareto_contribution: list[ParetoShare]
    bottom_fifth: BottomFifth = Field(description="The fifth of customers contributing least")
    by_band: list[Distribution] = Field(description="By the value band the rule gives")
    by_segment: list[Distribution] = Field(description="By the segment customers are in")
    segment_reviews: int = Field(description="Customers whose segment disagrees with their band")
    unconverted_currencies: list[str] = Field(
        description="Currencies without a reference rate, left out of the figures"
    )
