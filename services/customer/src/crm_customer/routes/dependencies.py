"""What the routes are given: the service's application (commands) and its queries."""

from __future__ import annotations

from typing import Annotated

from crm_backbone.service_api import from_handle
from fastapi import Depends

from crm_customer.application import CustomerApplication
from crm_customer.bootstrap import CustomerService
from crm_customer.queries import CustomerQueries

Commands = Annotated[
    CustomerApplication, Depends(from_handle(CustomerService, lambda s: s.application))
]
Queries = Annotated[CustomerQueries, Depends(from_handle(CustomerService, lambda s: s.queries))]
