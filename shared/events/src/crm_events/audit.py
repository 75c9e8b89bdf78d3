"""Reads of personal data, recorded: who read which customers, through which endpoint.

Every CRM service's API publishes one :class:`PersonalDataRead` before it answers a read
that shows customers' personal data (``crm_backbone.read_audit``); the customer service
projects them, with the metadata of every change event, into the audit trail
(``GET /audit``). Who read is in the envelope, as for any event: ``actor`` (the token's
subject) and ``client`` (the client the call came through); when, and the flow it belonged
to (``correlationid``). A read is an aggregate of its own: its id is the event's id, its
version 1. The event names ids only, never personal data.
"""

from typing import Annotated

from pydantic import Field

from crm_events.common import Id, Name
from crm_events.registry import EventPayload, event

MAX_CUSTOMERS_PER_READ = 1000
"""The most customers one read names (a page of a search is at most 200)."""


@event("crm.audit.personal_data_read")
class PersonalDataRead(EventPayload):
    """Personal data of these customers was shown to a caller."""

    customer_ids: Annotated[
        list[Id],
        Field(
            min_length=1,
            max_length=MAX_CUSTOMERS_PER_READ,
            description="The customers whose data the answer showed (a page: every one on it)",
        ),
    ]
    endpoint: Annotated[
        Name, Field(description="What was read: the method and route, e.g. GET /customers/{id}")
    ]
    staff_id: Annotated[
        Id | None, Field(description="The reader's staff id (none for a service account)")
    ] = None
    masked: Annotated[bool, Field(description="Whether the answer showed them masked")] = False
