"""What the opportunity service forgets when a customer's personal data is erased.

A lead's personal data (contact name, phone, e-mail, notes) is the lead's own: it is
sealed under the lead's key, since a lead's contact may be no customer yet. A lead
captured for a customer, or qualified into one, is that customer's data too: on
``crm.customer.erased`` each such lead's key is destroyed, so its stored events open as
erased forms (a rebuilt view shows them so again), and the lead documents forget the
person at once. The opportunities and needs of the customer are sealed under the
customer's own key, which the customer service destroys.
"""

from __future__ import annotations

import asyncio

from crm_backbone.keys import SubjectKeys
from crm_backbone.projection import Document
from crm_events.personal import ERASED
from pymongo.asynchronous.database import AsyncDatabase

from crm_opportunity.views import LEADS

LEAD_CONTACT_DETAILS = ("phone", "email", "notes")
"""A lead document's personal fields besides its contact's name (shown as erased)."""


class LeadErasure:
    """Forgets the leads of an erased customer: their keys, and their documents' person."""

    def __init__(self, database: AsyncDatabase[Document], keys: SubjectKeys | None) -> None:
        self.leads = database[LEADS]
        self.keys = keys
        """Where the leads' keys are destroyed; none when sealing is off (nothing sealed)."""

    async def forget(self, customer_id: str) -> None:
        """Destroy the keys of the customer's leads, then erase the person from their
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
