"""What the routes are given: the service's application (commands), its queries, and the
records of the write model as a caller may reach them."""

from __future__ import annotations

from typing import Annotated

from crm_backbone.service_api import from_handle
from fastapi import Depends

from crm_opportunity.application import OpportunityApplication
from crm_opportunity.bootstrap import OpportunityService
from crm_opportunity.ownership import Gate
from crm_opportunity.queries import OpportunityQueries
from crm_opportunity.sales_book import SalesBook

Commands = Annotated[
    OpportunityApplication, Depends(from_handle(OpportunityService, lambda s: s.application))
]
Queries = Annotated[
    OpportunityQueries, Depends(from_handle(OpportunityService, lambda s: s.queries))
]
Records = Annotated[Gate, Depends(from_handle(OpportunityService, lambda s: s.gate))]
"""The write model's records as the caller may reach them (``crm_opportunity.ownership``)."""
SalesBookQueries = Annotated[
    SalesBook, Depends(from_handle(OpportunityService, lambda s: s.sales_book))
]
"""The manager's list, the forecast and the lead sources (``crm_opportunity.sales_book``)."""
