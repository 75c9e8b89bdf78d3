"""``/worklists/churn`` and ``/worklists/cross-sell``: the book's customers to act on."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from crm_backbone.callers import Reader
from crm_backbone.read_audit import PersonalReads
from crm_events.common import ValueBand
from crm_events.core_banking import ProductType
from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from crm_customer.churn import SignalKind
from crm_customer.routes.dependencies import Worklists
from crm_customer.worklists import BookFilter

router = APIRouter(tags=["worklists"])

_CUSTOMER_EXAMPLE: dict[str, Any] = {
    "customer_id": "C00012345",
    "name": {"full_name": "Wang Fang", "family_name": "Wang", "given_name": "Fang"},
    "status": "active",
    "segment": {"value_band": "high", "corporate_tier": None},
    "manager_id": "RM-0001",
    "branch_id": "BR-001",
}


class ChurnWorklist(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "as_of": "2026-11-24",
                    "items": [
                        _CUSTOMER_EXAMPLE
                        | {
                            "signals": [
                                {
                                    "kind": "balance_falling",
                                    "detail": "CNY assets fell 43.5% in 30 days "
                                    "(200000.00 to 113000.00)",
                                    "since": "2026-10-25",
                                },
                                {
                                    "kind": "no_contact",
                                    "detail": "no contact for more than 60 days",
                                    "since": "2026-08-30",
                                },
                            ]
                        }
                    ],
                    "next_cursor": "WyJpZCIsICJDMDAwMTIzNDUiXQ==",
                }
            ]
        }
    )

    as_of: date = Field(description="The book's time: the day the signals are judged as of")
    items: list[dict[str, Any]] = Field(
        description="Customers in the caller's reach showing a churn signal, by id; "
        "personal data as the caller may see it"
    )
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page")


class SegmentFigures(BaseModel):
    products_per_customer: str = Field(description="Mean distinct product types held")
    holding_rate_percent: dict[str, str] = Field(
        description="Share of the segment's active customers holding each product type"
    )
    usual: list[str] = Field(description="Product types the cross-sell rule counts as usual")


class CrossSellWorklist(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "segments": {
                        "high": {
                            "products_per_customer": "3.10",
                            "holding_rate_percent": {
                                "current": "96.0",
                                "time_deposit": "71.5",
                                "wealth_management": "58.0",
                                "loan": "12.5",
                            },
                            "usual": ["current", "time_deposit", "wealth_management"],
                        }
                    },
                    "items": [
                        _CUSTOMER_EXAMPLE
                        | {
                            "held": ["current", "savings"],
                            "gaps": [
                                {
                                    "product_type": "time_deposit",
                                    "segment_holding_rate_percent": "71.5",
                                },
                                {
                                    "product_type": "wealth_management",
                                    "segment_holding_rate_percent": "58.0",
                                },
                            ],
                        }
                    ],
                    "next_cursor": None,
                }
            ]
        }
    )

    segments: dict[str, SegmentFigures] = Field(
        description="Per value band, across the whole book: the figures the rule compares with"
    )
    items: list[dict[str, Any]] = Field(
        description="Active customers in the caller's reach with cross-sell gaps, by id"
    )
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page")


Limit = Annotated[int, Query(ge=1, le=200)]


def book_filter(
    name: Annotated[str | None, Query(description="Name prefix, any case")] = None,
    manager_id: str | None = None,
    branch_id: str | None = None,
    segment: ValueBand | None = None,
) -> BookFilter:
    """The worklists' filters beside the caller's reach, from the query."""
    return BookFilter(name, manager_id, branch_id, segment.value if segment else None)


Where = Annotated[BookFilter, Depends(book_filter)]


@router.get(
    "/worklists/churn",
    summary="Churn worklist: customers showing churn signals",
    description="Active and dormant customers in the caller's reach with at least one churn "
    "signal (balance falling, no contact, no transaction, open complaint, maturity not "
    "rolled over; parameters in `docs/analysis.md`), judged as of the book's time.",
)
async def churn_worklist(
    caller: Reader,
    reads: PersonalReads,
    worklists: Worklists,
    where: Where,
    signal: Annotated[SignalKind | None, Query(description="Only customers showing it")] = None,
    limit: Limit = 20,
    cursor: str | None = None,
) -> ChurnWorklist:
    page = await worklists.churn_page(caller.reach, where, signal, limit, cursor)
    await reads.record(item["customer_id"] for item in page.items)
    assert page.as_of is not None
    return ChurnWorklist(as_of=page.as_of, items=page.items, next_cursor=page.next_cursor)


@router.get(
    "/worklists/cross-sell",
    summary="Cross-sell worklist: product types a customer's segment usually holds",
    description="Active customers in the caller's reach lacking a product type that at "
    "least the rule's share of their segment's active customers hold (`docs/analysis.md`).",
)
async def cross_sell_worklist(
    caller: Reader,
    reads: PersonalReads,
    worklists: Worklists,
    where: Where,
    product_type: Annotated[
        ProductType | None, Query(description="Only customers lacking this type")
    ] = None,
    limit: Limit = 20,
    cursor: str | None = None,
) -> CrossSellWorklist:
    wanted = product_type.value if product_type else None
    page, segments = await worklists.cross_sell_page(caller.reach, where, wanted, limit, cursor)
    await reads.record(item["customer_id"] for item in page.items)
    rule = worklists.cross_sell
    figures = {
        band: SegmentFigures(
            products_per_customer=str(holdings.products_per_customer()),
            holding_rate_percent={t: str(holdings.rate(t)) for t in sorted(holdings.holders)},
            usual=sorted(holdings.usual(rule)),
        )
        for band, holdings in sorted(segments.items())
    }
    return CrossSellWorklist(segments=figures, items=page.items, next_cursor=page.next_cursor)
