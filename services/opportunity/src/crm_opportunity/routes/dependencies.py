"""What the routes are given: the service's application (commands) and its queries."""

from __future__ import annotations

from typing import Annotated

from crm_backbone.service_api import handle_of
from fastapi import Depends, Request

from crm_opportunity.application import OpportunityApplication
from crm_opportunity.bootstrap import OpportunityService
from crm_opportunity.queries import OpportunityQueries


def _commands(request: Request) -> OpportunityApplication:
    return handle_of(request, OpportunityService).application


def _queries(request: Request) -> OpportunityQueries:
    return handle_of(request, OpportunityService).queries


Commands = Annotated[OpportunityApplication, Depends(_commands)]
Queries = Annotated[OpportunityQueries, Depends(_queries)]
