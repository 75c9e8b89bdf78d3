"""What the opportunity service forgets when a customer's personal data is erased.

A lead's personal data (contact name, phone, e-mail, notes) is the lead's own: it is
sealed under the lead's key, since a lead's contact may be no customer yet. A lead
captured for a customer, or qualified into one, is that customer's data too: on
``crm.customer.erased`` each such lead's key is destroyed, so its stored events open as
erased forms (a rebuilt view shows them so again). The opportunities and needs of the
customer are sealed under the customer's own key, which the customer service destroys.
The documents of all three forget the person at once (``crm_backbone.erasure``); figures
(stages, values, SLA times) stay. What the campaign-lead policy knew of the customer is
forgotten by that policy (``policies.py``), in order with what it learns.
"""

from __future__ import annotations

import asyncio

from crm_backbone.erasure import ForgetErasedCustomers, PersonalPaths
from crm_backbone.keys import SubjectKeys
from crm_backbone.projection import Document
from crm_events.personal import ERASED
from pymongo.asynchronous.database import AsyncDatabase

from crm_opportunity.views import LEADS, NEEDS, OPPORTUNITIES

PERSONAL_PATHS = (
    PersonalPaths(LEADS, removed=("phone", "email", "notes"), erased={"contact_name": ERASED}),
    PersonalPaths(
        OPPORTUNITIES, removed=("description", "contacts", "lost_reason", "probability_reason")
    ),
    PersonalPaths(NEEDS, removed=("summary", "resolution", "feedback")),
)
"""What the service's documents say of their customer (free texts, names)."""


class LeadKeys:
    """Destroys the keys of the leads captured for (or qualified into) a customer."""

    def __init__(self, database: AsyncDatabase[Document], keys: SubjectKeys) -> None:
        self.leads = database[LEADS]
        self.keys = keys

    async def destroy(self, customer_id: str) -> None:
        async for lead in self.leads.find({"customer_id": customer_id}, {"_id": 1}):
            await asyncio.to_thread(self.keys.destroy, lead["_id"])


def forget_erased(
    database: AsyncDatabase[Document], keys: SubjectKeys | None
) -> ForgetErasedCustomers:
    """The policy forgetting erased customers here; with no key store (sealing off)
    there are no lead keys to destroy."""
    also = LeadKeys(database, keys).destroy if keys is not None else None
    return ForgetErasedCustomers(database, PERSONAL_PATHS, also)
