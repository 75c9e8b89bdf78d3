"""What the routes are given: the service's application (commands) and its queries."""

from __future__ import annotations

from typing import Annotated

from crm_backbone.service_api import handle_of
from fastapi import Depends, Request

from crm_customer.application import CustomerApplication
from crm_customer.bootstrap import CustomerService
from crm_customer.queries import CustomerQueries


def _commands(request: Request) -> CustomerApplication:
    return handle_of(request, CustomerService).application


def _queries(request: Request) -> CustomerQueries:
    return handle_of(request, CustomerService).queries


Commands = Annotated[CustomerApplication, Depends(_commands)]
Queries = Annotated[CustomerQueries, Depends(_queries)]
