"""Reading the book's analyses: credit exposure (``exposure.py``) and customer value
(``customer_value.py``), from the ``credit_facilities``, ``contributions``, ``customers``
and ``groups`` views.

Every read is narrowed to the caller's reach in MongoDB, as the other queries are: a
customer is read only when in reach, a group counts only its current members in reach, a
borrower out of reach is not named, and the value figures cover the customers in reach.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from decimal import Decimal

from bson.decimal128 import Decimal128
from crm_backbone.access import Reach, scoped
from crm_backbone.projection import Document
from crm_backbone.readmodel import field_key
from crm_events.common import ValueBand
from crm_events.core_banking import ASSET_TYPES, ProductType
from pymongo.asynchronous.database import AsyncDatabase

from crm_customer import analysis_models as answer
from crm_customer import customer_value as cv
from crm_customer.contributions import CONTRIBUTIONS
from crm_customer.credit_facilities import BORROWER, FACILITIES, GUARANTORS, facility_of
from crm_customer.exposure import Exposure, exposure
from crm_customer.ownership import OWNERSHIP
from crm_customer.views.documents import CUSTOMERS, GROUPS

IN_BOOK: Document = {
    "registered": True,
    "merged_into": {"$exists": False},
    "erased": {"$exists": False},
}
"""The customers the value analysis counts: registered, neither merged away nor erased."""
FIGURES = ("revenue", "cost", "contribution")


class AnalysisQueries:
    """Read side of the book's analyses."""

    def __init__(self, database: AsyncDatabase[Document], rule: cv.ValueRule) -> None:
        self.customers = database[CUSTOMERS]
        self.groups = database[GROUPS]
        self.facilities = database[FACILITIES]
        self.contributions = database[CONTRIBUTIONS]
        self.rule = rule

    # Credit exposure ----------------------------------------------------------------------

    async def customer_exposure(
        self, customer_id: str, reach: Reach
    ) -> answer.CustomerExposure | None:
        """The customer's exposure; ``None`` when not in reach (or unknown)."""
        if not await self._in_reach([customer_id], reach):
            return None
        figures = await self._exposure_of([customer_id], reach)
        return answer.CustomerExposure(customer_id=customer_id, **figures.model_dump())

    async def group_exposure(self, group_id: str, reach: Reach) -> answer.GroupExposure | None:
        """The exposure of the group's current members in reach; ``None`` without any."""
        group = await self.groups.find_one({"_id": group_id}, {"members": 1, "history": 1})
        if group is None:
            return None
        ids = {h["customer_id"] for h in group.get("history", [])}
        members = group.get("members", {})
        current = [i for i in ids if members.get(field_key(i), {}).get("left_on", "") is None]
        counted = sorted(await self._in_reach(current, reach))
        if not counted:
            return None
        figures = await self._exposure_of(counted, reach)
        return answer.GroupExposure(group_id=group_id, members=counted, **figures.model_dump())

    async def _exposure_of(self, customer_ids: list[str], reach: Reach) -> answer.ExposureFigures:
        query = {"$or": [{BORROWER: {"$in": customer_ids}}, {GUARANTORS: {"$in": customer_ids}}]}
        facilities = [facility_of(d) async for d in self.facilities.find(query)]
        figures = exposure(set(customer_ids), facilities)
        borrowers = await self._in_reach({f.borrower_id for f in facilities}, reach)
        return exposure_answer(figures, borrowers)

    async def _in_reach(self, customer_ids: Iterable[str], reach: Reach) -> set[str]:
        query = scoped({"_id": {"$in": list(customer_ids)}, "registered": True}, reach, OWNERSHIP)
        return {d["_id"] async for d in self.customers.find(query, {"_id": 1})}

    # Customer value -----------------------------------------------------------------------

    async def customer_value(self, customer_id: str, reach: Reach) -> answer.CustomerValue | None:
        """The customer's value figures; ``None`` when not in reach (or unknown)."""
        window = await self._window()
        found = await self._figures(
            scoped({"_id": customer_id, **IN_BOOK}, reach, OWNERSHIP), window
        )
        return self._customer_answer(found[0], window) if found else None

    async def segment_reviews(
        self, reach: Reach, *, manager_id: str | None = None, limit: int = 50
    ) -> answer.SegmentReviews:
        """Customers in reach whose segment disagrees with their value band, the highest
        value first."""
        query = IN_BOOK | {"segment.value_band": {"$exists": True}}
        if manager_id is not None:
            query["manager_id"] = manager_id
        window = await self._window()
        figures = [
            f for f in await self._figures(scoped(query, reach, OWNERSHIP), window) if f.disagrees
        ]
        figures.sort(key=lambda f: (-f.value, f.customer_id))
        return answer.SegmentReviews(
            items=[self._review(f, window) for f in figures[:limit]], total=len(figures)
        )

    async def value_analysis(self, reach: Reach) -> answer.ValueAnalysis:
        """Value figures, their distribution and the Pareto curve of the book in reach."""
        window = await self._window()
        unconverted: set[str] = set()
        figures = await self._figures(scoped(IN_BOOK, reach, OWNERSHIP), window, unconverted)
        total = cv.totals(figures)
        bottom = cv.totals(cv.bottom_fifth(figures))
        return answer.ValueAnalysis(
            currency=self.rule.reporting_currency,
            contribution_months=list(window) if window else None,
            **total.amounts(),
            customers=total.customers,
            pareto_aum=_pareto([f.aum for f in figures]),
            pareto_contribution=_pareto([f.contribution for f in figures]),
            bottom_fifth=answer.BottomFifth(
                customers=bottom.customers,
                revenue=bottom.revenue,
                cost=bottom.cost,
                contribution=bottom.contribution,
                cost_to_revenue=cv.cents(bottom.cost / bottom.revenue) if bottom.revenue else None,
            ),
            by_band=_distribution(cv.grouped(figures, lambda f: f.band.value)),
            by_segment=_distribution(
                cv.grouped(figures, lambda f: f.segment.value if f.segment else "none")
            ),
            segment_reviews=sum(f.disagrees for f in figures),
            unconverted_currencies=sorted(unconverted),
        )

    async def _window(self) -> tuple[str, str] | None:
        """The contribution window: ``contribution_months`` months up to the latest month
        reported for the bank (first and last month), or ``None`` before any report."""
        latest = await self.contributions.find_one({}, {"month": 1}, sort=[("month", -1)])
        if latest is None:
            return None
        year, month = map(int, latest["month"].split("-"))
        first = year * 12 + month - 1 - (self.rule.contribution_months - 1)
        return f"{first // 12:04d}-{first % 12 + 1:02d}", latest["month"]

    async def _figures(
        self,
        query: Document,
        window: tuple[str, str] | None,
        unconverted: set[str] | None = None,
    ) -> list[cv.CustomerFigures]:
        """The figures of the customers ``query`` selects (already scoped)."""
        unconverted = set() if unconverted is None else unconverted
        fields = {"accounts": 1, "segment.value_band": 1, "manager_id": 1, "branch_id": 1}
        documents = [d async for d in self.customers.find(query, fields)]
        ids = [d["_id"] for d in documents]
        statements = await self._contributions(ids, window)
        drawn = await self._drawn(ids)
        rule = self.rule
        figures = []
        for document in documents:
            holdings = _holdings(document)
            aum = rule.converted(holdings[True], unconverted)
            loans = rule.converted([*holdings[False], *drawn[document["_id"]]], unconverted)
            own = statements[document["_id"]]
            revenue, cost, contribution = (
                rule.converted(own[name], unconverted) for name in FIGURES
            )
            value = rule.value(aum, loans, contribution)
            segment = document.get("segment", {}).get("value_band")
            figures.append(
                cv.CustomerFigures(
                    customer_id=document["_id"],
                    manager_id=document.get("manager_id"),
                    branch_id=document.get("branch_id"),
                    segment=ValueBand(segment) if segment else None,
                    aum=cv.cents(aum),
                    loans=cv.cents(loans),
                    revenue=cv.cents(revenue),
                    cost=cv.cents(cost),
                    contribution=cv.cents(contribution),
                    value=value,
                    band=rule.band(value),
                )
            )
        return figures

    async def _contributions(
        self, ids: list[str], window: tuple[str, str] | None
    ) -> dict[str, dict[str, list[tuple[str, Decimal]]]]:
        """Per customer, per figure: its ``(currency, sum)`` over the window."""
        found: dict[str, dict[str, list[tuple[str, Decimal]]]] = defaultdict(
            lambda: {name: [] for name in FIGURES}
        )
        if window is None or not ids:
            return found
        month = {"$gte": window[0], "$lte": window[1]}
        pipeline: list[Document] = [
            {"$match": {"customer_id": {"$in": ids}, "month": month}},
            {
                "$group": {
                    "_id": {"customer": "$customer_id", "currency": "$currency"},
                    **{name: {"$sum": {"$toDecimal": f"${name}"}} for name in FIGURES},
                }
            },
        ]
        async for row in await self.contributions.aggregate(pipeline):
            for name in FIGURES:
                found[row["_id"]["customer"]][name].append(
                    (row["_id"]["currency"], _dec(row[name]))
                )
        return found

    async def _drawn(self, ids: list[str]) -> dict[str, list[tuple[str, Decimal]]]:
        """Per borrower: the drawn amounts of their facilities, ``(currency, sum)``."""
        found: dict[str, list[tuple[str, Decimal]]] = defaultdict(list)
        if not ids:
            return found
        pipeline: list[Document] = [
            {"$match": {BORROWER: {"$in": ids}}},
            {
                "$group": {
                    "_id": {"customer": f"${BORROWER}", "currency": "$currency"},
                    "drawn": {"$sum": {"$toDecimal": "$drawn"}},
                }
            },
        ]
        async for row in await self.facilities.aggregate(pipeline):
            found[row["_id"]["customer"]].append((row["_id"]["currency"], _dec(row["drawn"])))
        return found

    def _customer_answer(
        self, figures: cv.CustomerFigures, window: tuple[str, str] | None
    ) -> answer.CustomerValue:
        return answer.CustomerValue(
            customer_id=figures.customer_id,
            manager_id=figures.manager_id,
            segment=figures.segment,
            band=figures.band,
            currency=self.rule.reporting_currency,
            contribution_months=list(window) if window else None,
            **figures.amounts(),
        )

    def _review(
        self, figures: cv.CustomerFigures, window: tuple[str, str] | None
    ) -> answer.SegmentReview:
        rule, band = self.rule, figures.band
        bounds = {
            ValueBand.HIGH: f"from {rule.high_from}",
            ValueBand.MEDIUM: f"{rule.medium_from} to {rule.high_from}",
            ValueBand.LOW: f"below {rule.medium_from}",
        }[band]
        segment = figures.segment.value if figures.segment else "none"
        reason = (
            f"value {figures.value} {rule.reporting_currency} is in the {band.value} band "
            f"({bounds}); segment is {segment}"
        )
        return answer.SegmentReview(
            **self._customer_answer(figures, window).model_dump(),
            branch_id=figures.branch_id,
            reason=reason,
        )


def _dec(value: Decimal128 | Decimal | int) -> Decimal:
    return value.to_decimal() if isinstance(value, Decimal128) else Decimal(value)


def _holdings(document: Document) -> dict[bool, list[tuple[str, Decimal]]]:
    """The balances of the customer's open accounts: assets (``True``) and loans (``False``);
    cards and other liabilities are neither."""
    held: dict[bool, list[tuple[str, Decimal]]] = {True: [], False: []}
    for account in document.get("accounts", {}).values():
        balance = account.get("balance")
        if account.get("status", "open") != "open" or not balance:
            continue
        kind = account.get("product_type")
        if kind in ASSET_TYPES or kind == ProductType.LOAN:
            held[kind in ASSET_TYPES].append((balance["currency"], Decimal(balance["amount"])))
    return held


def _pareto(amounts: Sequence[Decimal]) -> list[answer.ParetoShare]:
    return [
        answer.ParetoShare(
            top_percent=p.top_percent, customers=p.customers, share_percent=p.share_percent
        )
        for p in cv.pareto(amounts)
    ]


def _distribution(groups: dict[str, list[cv.CustomerFigures]]) -> list[answer.Distribution]:
    distribution = []
    for key, members in groups.items():
        total = cv.totals(members)
        distribution.append(
            answer.Distribution(
                key=key,
                customers=total.customers,
                median_value=total.median_value,
                **total.amounts(),
            )
        )
    return distribution


def exposure_answer(figures: Exposure, borrowers_in_reach: set[str]) -> answer.ExposureFigures:
    """The answer for ``figures``, naming only the borrowers in ``borrowers_in_reach``."""
    nxt = figures.next_maturity
    return answer.ExposureFigures(
        by_currency=[
            answer.CurrencyFigures(
                currency=c.currency,
                limit=c.limit,
                drawn=c.drawn,
                utilisation_percent=c.utilisation_percent,
                direct_exposure=c.direct_exposure,
                guaranteed_exposure=c.guaranteed_exposure,
                guaranteed_drawn=c.guaranteed_drawn,
                total_exposure=c.total_exposure,
            )
            for c in figures.by_currency
        ],
        next_maturity=None
        if nxt is None
        else answer.NextMaturity(
            facility_id=nxt.facility_id,
            maturity_date=nxt.maturity_date,
            currency=nxt.currency,
            limit=nxt.limit,
            drawn=nxt.drawn,
        ),
        facilities=[
            answer.CountedFacility(
                facility_id=c.facility.facility_id,
                relation=c.relation,
                borrower_customer_id=c.facility.borrower_id
                if c.facility.borrower_id in borrowers_in_reach
                else None,
                facility_type=c.facility.facility_type,
                currency=c.facility.currency,
                status="open" if c.facility.open else "matured",
                limit=c.facility.limit,
                drawn=c.facility.drawn,
                maturity_date=c.facility.maturity_date,
                exposure=c.exposure,
                exposure_drawn=c.drawn,
            )
            for c in figures.counted
        ],
    )
