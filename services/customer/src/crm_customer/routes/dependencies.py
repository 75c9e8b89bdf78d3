"""What the routes are given: the service's application (commands), its queries, and the
organisation's positions (the lookup that places callers places the managers they name)."""

from __future__ import annotations

from typing import Annotated

from crm_backbone.callers import PositionLookup
from crm_backbone.service_api import from_handle
from fastapi import Depends, Request

from crm_customer.analysis_queries import AnalysisQueries
from crm_customer.application import CustomerApplication
from crm_customer.bootstrap import CustomerService
from crm_customer.performance_queries import PerformanceQueries
from crm_customer.queries import CustomerQueries
from crm_customer.worklists import BookWorklists

Commands = Annotated[
    CustomerApplication, Depends(from_handle(CustomerService, lambda s: s.application))
]
Queries = Annotated[CustomerQueries, Depends(from_handle(CustomerService, lambda s: s.queries))]
Worklists = Annotated[BookWorklists, Depends(from_handle(CustomerService, lambda s: s.worklists))]
Analyses = Annotated[AnalysisQueries, Depends(from_handle(CustomerService, lambda s: s.analyses))]
Performance = Annotated[
    PerformanceQueries, Depends(from_handle(CustomerService, lambda s: s.performance))
]


def _positions(request: Request) -> PositionLookup:
    positions: PositionLookup = request.app.state.positions
    return positions


Positions = Annotated[PositionLookup, Depends(_positions)]
