"""What the routes are given: the service's commands, as a caller may run them, and its
queries, with the caller's book (``crm_contactlog.access``)."""

from __future__ import annotations

from typing import Annotated

from crm_backbone.callers import PositionLookup
from crm_backbone.service_api import from_handle, handle_of
from fastapi import Depends, Request

from crm_contactlog.access import ContactLogBook
from crm_contactlog.application import CallerCommands
from crm_contactlog.bootstrap import ContactLogService
from crm_contactlog.queries import ContactLogQueries


def _book(request: Request) -> ContactLogBook:
    """The book of the service's database, placing staff as the app places its callers."""
    positions: PositionLookup = request.app.state.positions
    return ContactLogBook(handle_of(request, ContactLogService).database, positions)


def _commands(request: Request) -> CallerCommands:
    service = handle_of(request, ContactLogService)
    return CallerCommands(service.application, _book(request), service.busy_times)


Book = Annotated[ContactLogBook, Depends(_book)]
Commands = Annotated[CallerCommands, Depends(_commands)]
Queries = Annotated[ContactLogQueries, Depends(from_handle(ContactLogService, lambda s: s.queries))]
