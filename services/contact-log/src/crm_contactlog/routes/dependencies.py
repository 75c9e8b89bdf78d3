"""What the routes are given: the service's application (commands) and its queries."""

from __future__ import annotations

from typing import Annotated

from crm_backbone.service_api import from_handle
from fastapi import Depends

from crm_contactlog.application import ContactLogApplication
from crm_contactlog.bootstrap import ContactLogService
from crm_contactlog.queries import ContactLogQueries

Commands = Annotated[
    ContactLogApplication, Depends(from_handle(ContactLogService, lambda s: s.application))
]
Queries = Annotated[ContactLogQueries, Depends(from_handle(ContactLogService, lambda s: s.queries))]
