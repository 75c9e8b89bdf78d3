"""Reading the league table: aggregations in MongoDB over the ``manager_performance``
read model (``performance_view.py``), each answering one tally per manager and branch
for a period; the rules are ``performance.py``'s.

Each aggregation credits a customer's figures to the owner of the day: the customer's
``owners`` (``performance_books``) become spans ``[from, until)``, each until the next
owner's day. Positions become spans too: each day's closing holds until the account's
next change day (``$setWindowFields`` with ``$shift``), so the sum of the daily closings
over a period is the sum of closing times days of each span's overlap with the period and an
owner's span, never a day-by-day walk.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from bson.decimal128 import Decimal128
from crm_backbone.access import Reach
from crm_backbone.organisation import UNITS
from crm_backbone.projection import Document
from pymongo.asynchronous.database import AsyncDatabase

from crm_customer import performance_models as answer
from crm_customer.performance import (
    COUNTS,
    POSITION_CLASSES,
    Figures,
    GroupBy,
    Period,
    PeriodKind,
    RowKey,
    Tally,
    change,
    fold,
    ranks,
    visible,
)
from crm_customer.performance_view import BOOKS, FACTS, POSITIONS, FactKind


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)


def _rate(currency: str, rates: Mapping[str, Decimal]) -> Document:
    """The expression of the reference rate of ``currency`` (an expression); zero for a
    currency without one."""
    return {
        "$switch": {
            "branches": [
                {"case": {"$eq": [currency, code]}, "then": Decimal128(rate)}
                for code, rate in sorted(rates.items())
            ],
            "default": Decimal128("0"),
        }
    }


def _owner_spans(until: datetime) -> list[Document]:
    """Stages pairing each row with each owner span of its customer (``owner``: ``{from,
    until, manager, branch}``, the last one until ``until``), the customer's owners read
    once for all its rows."""
    owners = {
        "$sortArray": {
            "input": {
                "$map": {
                    "input": {"$objectToArray": {"$ifNull": ["$owners", {}]}},
                    "in": {
                        "from": {"$dateFromString": {"dateString": "$$this.k", "timezone": "UTC"}},
                        "manager": {"$arrayElemAt": [{"$split": ["$$this.v", "|"]}, 1]},
                        "branch": {"$arrayElemAt": [{"$split": ["$$this.v", "|"]}, 2]},
                    },
                }
            },
            "sortBy": {"from": 1},
        }
    }
    spans = {
        "$map": {
            "input": {"$range": [0, {"$size": "$$owners"}]},
            "as": "i",
            "in": {
                "$mergeObjects": [
                    {"$arrayElemAt": ["$$owners", "$$i"]},
                    {
                        "until": {
                            "$ifNull": [
                                {"$arrayElemAt": ["$$owners.from", {"$add": ["$$i", 1]}]},
                                until,
                            ]
                        }
                    },
                ]
            },
        }
    }
    return [
        {"$group": {"_id": "$customer_id", "rows": {"$push": "$$ROOT"}}},  # one join each
        {
            "$lookup": {
                "from": BOOKS,
                "localField": "_id",
                "foreignField": "_id",
                "as": "book",
                "pipeline": [
                    {"$project": {"spans": {"$let": {"vars": {"owners": owners}, "in": spans}}}}
                ],
            }
        },
        {"$unwind": "$book"},
        {"$unwind": "$book.spans"},
        {"$unwind": "$rows"},
        {"$replaceWith": {"$mergeObjects": ["$rows", {"owner": "$book.spans"}]}},
    ]


def _owner_holds(moment: Any) -> Document:
    """The condition that the row's owner span holds ``moment``."""
    return {"$and": [{"$lte": ["$owner.from", moment]}, {"$lt": [moment, "$owner.until"]}]}


def _by_owner(sums: Mapping[str, Any]) -> Document:
    return {
        "$group": {
            "_id": {"manager": "$owner.manager", "branch": "$owner.branch"},
            **{name: {"$sum": expression} for name, expression in sums.items()},
        }
    }


def positions_pipeline(period: Period, rates: Mapping[str, Decimal]) -> list[Document]:
    """Per owner: the sum of each position class's daily closings over ``period`` and its
    closings on the period's last day."""
    start, until = _midnight(period.start), _midnight(period.end + timedelta(days=1))
    last = _midnight(period.end)
    weighted: dict[str, Any] = {}
    for name, types in POSITION_CLASSES.items():
        of_class = {"$in": ["$product_type", sorted(types)]}
        weighted[f"{name}_day_sum"] = {"$cond": [of_class, {"$multiply": ["$value", "$days"]}, 0]}
        at_end = {"$and": [of_class, {"$eq": ["$to", until]}]}
        weighted[f"{name}_end"] = {"$cond": [at_end, "$value", 0]}
    return [
        {"$match": {"month": {"$lte": period.end.strftime("%Y-%m")}}},
        {"$project": {"customer_id": 1, "month": 1, "account": {"$objectToArray": "$accounts"}}},
        {"$unwind": "$account"},
        {
            "$project": {
                "customer_id": 1,
                "account": "$account.k",
                "product_type": "$account.v.product_type",
                "rate": _rate("$account.v.currency", rates),
                "day": {"$objectToArray": "$account.v.days"},
                "month": 1,
            }
        },
        {"$unwind": "$day"},
        {
            "$set": {
                "from": {
                    "$dateFromString": {
                        "dateString": {"$concat": ["$month", "-", "$day.k"]},
                        "timezone": "UTC",
                    }
                },
                "balance": {"$toDecimal": {"$arrayElemAt": [{"$split": ["$day.v", "|"]}, 1]}},
            }
        },
        {"$match": {"from": {"$lte": last}}},
        {
            "$setWindowFields": {
                "partitionBy": {"customer": "$customer_id", "account": "$account"},
                "sortBy": {"from": 1},
                "output": {"to": {"$shift": {"output": "$from", "by": 1, "default": until}}},
            }
        },
        {"$match": {"to": {"$gt": start}}},
        *_owner_spans(until),
        {
            "$set": {
                "from": {"$max": ["$from", start, "$owner.from"]},
                "to": {"$min": ["$to", "$owner.until"]},
                "value": {"$multiply": ["$balance", "$rate"]},
            }
        },
        {"$match": {"$expr": {"$lt": ["$from", "$to"]}}},
        {"$set": {"days": {"$dateDiff": {"startDate": "$from", "endDate": "$to", "unit": "day"}}}},
        _by_owner(weighted),
    ]


def facts_pipeline(period: Period, rates: Mapping[str, Decimal]) -> list[Document]:
    """Per owner: the counted facts of ``period`` and the value won."""
    start, until = _midnight(period.start), _midnight(period.end + timedelta(days=1))

    def count(kind: str, *conditions: Any) -> Document:
        return {"$cond": [{"$and": [{"$eq": ["$kind", kind]}, *conditions]}, 1, 0]}

    on_time = {"$lte": ["$on", {"$ifNull": ["$due_at", "$on"]}]}
    within_sla = {"$lte": ["$on", {"$ifNull": ["$sla_due_at", "$on"]}]}
    won_value = {"$toDecimal": {"$ifNull": ["$value", "0"]}}
    sums = {
        "new_customers": count(FactKind.NEW_CUSTOMER),
        "customers_lost": count(FactKind.CUSTOMER_LOST),
        "contacts": count(FactKind.CONTACT),
        "tasks_done": count(FactKind.TASK),
        "tasks_done_on_time": count(FactKind.TASK, on_time),
        "complaints_closed": count(FactKind.COMPLAINT),
        "complaints_closed_within_sla": count(FactKind.COMPLAINT, within_sla),
        "opportunities_won": count(FactKind.OPPORTUNITY),
        "won_value": {
            "$cond": [
                {"$eq": ["$kind", FactKind.OPPORTUNITY]},
                {"$multiply": [won_value, _rate("$currency", rates)]},
                0,
            ]
        },
    }
    credited_day = {"$dateFromString": {"dateString": "$day", "timezone": "UTC"}}
    return [
        {"$match": {"on": {"$gte": start, "$lt": until}, "kind": {"$ne": FactKind.NEED}}},
        *_owner_spans(until),
        {"$match": {"$expr": _owner_holds(credited_day)}},
        _by_owner(sums),
    ]


def holdings_pipeline(period: Period) -> list[Document]:
    """Per owner: the customers held on the period's last day and the products they hold
    then."""
    last = period.end.isoformat()
    held = {
        "$size": {
            "$filter": {
                "input": {"$objectToArray": {"$ifNull": ["$accounts", {}]}},
                "cond": {
                    "$and": [
                        {"$lte": [{"$ifNull": ["$$this.v.opened_on", "9999"]}, last]},
                        {"$gt": [{"$ifNull": ["$$this.v.closed_on", "9999"]}, last]},
                    ]
                },
            }
        }
    }
    last_day = _midnight(period.end)
    return [
        {"$match": {"owners": {"$exists": True}}},
        {"$project": {"customer_id": "$_id", "accounts": 1}},
        *_owner_spans(_midnight(period.end + timedelta(days=1))),
        {"$match": {"$expr": _owner_holds(last_day)}},
        _by_owner({"customers": 1, "products": held}),
    ]


def _number(value: Any) -> Decimal:
    return value.to_decimal() if isinstance(value, Decimal128) else Decimal(value)


class PerformanceQueries:
    """The managers' tallies of a period, and where branches stand."""

    def __init__(
        self, database: AsyncDatabase[Document], currency: str, rates: Mapping[str, Decimal]
    ) -> None:
        self.database = database
        self.currency = currency
        """The reporting currency; ``rates``: its units per unit of each currency."""
        self.rates = dict(rates)

    async def tallies(self, period: Period) -> dict[tuple[str, str], Tally]:
        """(manager, branch) → the tally of ``period``, for every manager with a figure."""
        found: dict[tuple[str, str], Tally] = {}
        for collection, pipeline in (
            (POSITIONS, positions_pipeline(period, self.rates)),
            (FACTS, facts_pipeline(period, self.rates)),
            (BOOKS, holdings_pipeline(period)),
        ):
            async for row in await self.database[collection].aggregate(pipeline):
                owner = (row["_id"]["manager"], row["_id"]["branch"])
                tally = found.setdefault(owner, Tally())
                for name, value in row.items():
                    if name in COUNTS:
                        tally.counts[name] += int(value)
                    elif name != "_id":
                        tally.amounts[name] += _number(value)
        return found

    async def regions(self) -> dict[str, str]:
        """Branch → region, as HR places branches now."""
        cursor = self.database[UNITS].find({"kind": "branch"}, {"region_id": 1})
        return {b["_id"]: b["region_id"] async for b in cursor if b.get("region_id")}

    async def league(
        self,
        kind: PeriodKind,
        at: date,
        group_by: GroupBy,
        rank_by: str,
        reach: Reach,
    ) -> answer.LeagueTable:
        """The league of the period holding ``at``: every row ranked, the rows the caller
        may see shown with their figures, the previous period's and the change."""
        period = Period.holding(kind, at)
        previous = period.previous()
        regions = await self.regions()
        now = await self._rows(period, group_by, regions)
        before = await self._rows(previous, group_by, regions)
        ranked_now = ranks({row.key: figures[rank_by] for row, figures in now.items()})
        ranked_before = ranks({row.key: figures[rank_by] for row, figures in before.items()})
        earlier = {row.key: figures for row, figures in before.items()}
        rows = [
            answer.LeagueRow(
                manager_id=row.manager_id,
                branch_id=row.branch_id,
                region_id=row.region_id,
                rank=ranked_now[row.key],
                previous_rank=ranked_before.get(row.key),
                figures=answer.Figures.model_validate(figures),
                previous=_figures_or_none(earlier.get(row.key)),
                change=_figures_or_none(change(figures, earlier.get(row.key))),
            )
            for row, figures in now.items()
            if visible(reach, row)
        ]
        rows.sort(key=lambda r: (r.rank, r.manager_id or r.branch_id or r.region_id or ""))
        return answer.LeagueTable(
            period=kind,
            start=period.start,
            end=period.end,
            previous_start=previous.start,
            previous_end=previous.end,
            group_by=group_by,
            rank_by=rank_by,
            currency=self.currency,
            ranked=len(now),
            rows=rows,
        )

    async def _rows(
        self, period: Period, group_by: GroupBy, regions: Mapping[str, str]
    ) -> dict[RowKey, Figures]:
        tallies = await self.tallies(period)
        managers = ((manager, branch, t) for (manager, branch), t in tallies.items())
        return {row: t.figures(period) for row, t in fold(managers, group_by, regions).items()}


def _figures_or_none(figures: Figures | None) -> answer.Figures | None:
    return None if figures is None else answer.Figures.model_validate(figures)
