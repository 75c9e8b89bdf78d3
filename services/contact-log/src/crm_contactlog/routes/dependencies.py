"""What the routes are given: the service's application (commands) and its queries."""

from __future__ import annotations

from typing import Annotated

from crm_backbone.service_api import handle_of
from fastapi import Depends, Request

from crm_contactlog.application import ContactLogApplication
from crm_contactlog.bootstrap import ContactLogService
from crm_contactlog.queries import ContactLogQueries


def _commands(request: Request) -> ContactLogApplication:
    return handle_of(request, ContactLogService).application


def _queries(request: Request) -> ContactLogQueries:
    return handle_of(request, ContactLogService).queries


Commands = Annotated[ContactLogApplication, Depends(_commands)]
Queries = Annotated[ContactLogQueries, Depends(_queries)]
