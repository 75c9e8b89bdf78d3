"""What the opportunity service forgets when a customer's personal data is erased.

A lead's personal data (contact name, phone, e-mail, notes) is the lead's own: it is
sealed under the lead's key, since a lead's contact may be no customer yet. A lead
captured for a customer, or qualified into one, is that customer's data too: on
``crm.customer.erased`` each such lead's key is destroyed, so its stored events open as
erased forms (a rebuilt view shows them so again), and the lead documents forget the
person at once. The opportunities and needs of the customer are sealed under the
customer's own key, which the customer service destroys; their documents forget the free
texts about the person and the names of their contacts at once too. Figures (stages,
values, SLA times) stay.
"""

from __future__ import annotations

import asyncio

from crm_backbone.keys import SubjectKeys
from crm_backbone.projection import Document
from crm_events.personal import ERASED
from pymongo.asynchronous.database import AsyncDatabase

from crm_opportunity.views import LEADS, NEEDS, OPPORTUNITIES

LEAD_CONTACT_DETAILS = ("phone", "email", "notes")
"""A lead document's personal fields besides its contact's name (shown as erased)."""
PERSONAL_PATHS = {
    OPPORTUNITIES: ("description", "contacts", "lost_reason", "probability_reason"),
    NEEDS: ("summary", "resolution", "feedback"),
}
"""What an opportunity's or a need's document says of the person (free texts, names)."""


class CustomerErasure:
    """Forgets an erased customer in the service's documents, and destroys the keys of
    the leads captured for them."""

    def __init__(self, database: AsyncDatabase[Document], keys: SubjectKeys | None) -> None:
        self.database = database
        self.leads = database[LEADS]
        self.keys = keys
        """Where the leads' keys are destroyed; none when sealing is off (nothing sealed)."""

    async def forget(self, customer_id: str) -> None:
        """Destroy the keys of the customer's leads, then erase the person from the
        documents (idempotent: a redelivered erasure does it again, to the same effect)."""
        naming = {"customer_id": customer_id}
        if self.keys is not None:
            lead_ids = [doc["_id"] async for doc in self.leads.find(naming, {"_id": 1})]
            for lead_id in lead_ids:
                await asyncio.to_thread(self.keys.destroy, lead_id)
        await self.leads.update_many(
            naming,
            {
                "$set": {"contact_name": ERASED, "erased": True},
                "$unset": dict.fromkeys(LEAD_CONTACT_DETAILS, ""),
            },
        )
        for collection, paths in PERSONAL_PATHS.items():
            await self.database[collection].update_many(
                naming, {"$unset": dict.fromkeys(paths, "")}
            )
