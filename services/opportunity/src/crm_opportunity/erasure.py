"""What the opportunity service forgets when a customer's personal data is erased.

A lead's personal data (contact name, phone, e-mail, notes) is the lead's own: it is
sealed under the lead's key, since a lead's contact may be no customer yet. A lead
captured for a customer, or qualified into one, is that customer's data too: the
customer service, the one service that destroys keys, destroys that lead's key with the
customer's (its view records the customer's leads), so its stored events open as erased
forms (a rebuilt view shows them so again). The opportunities and needs of the customer
are sealed under the customer's own key. On ``crm.customer.erased`` the documents of all
three forget the person at once (``crm_backbone.erasure``); figures (stages, values, SLA
times) stay. What the campaign-lead policy knew of the customer is forgotten by that
policy (``policies.py``), in order with what it learns.
"""

from __future__ import annotations

from crm_backbone.erasure import ForgetErasedCustomers, KeyMemory, PersonalPaths
from crm_backbone.projection import Document
from crm_events.personal import ERASED
from pymongo.asynchronous.database import AsyncDatabase

from crm_opportunity.views import LEADS, NEEDS, OPPORTUNITIES

PERSONAL_PATHS = (
    PersonalPaths(
        LEADS,
        removed=("phone", "email", "notes", "disqualified_reason"),
        erased={"contact_name": ERASED},
    ),
    PersonalPaths(
        OPPORTUNITIES, removed=("description", "contacts", "lost_reason", "probability_reason")
    ),
    PersonalPaths(NEEDS, removed=("summary", "resolution", "feedback")),
)
"""What the service's documents say of their customer (free texts, names)."""


def forget_erased(
    database: AsyncDatabase[Document], memory: KeyMemory | None
) -> ForgetErasedCustomers:
    """The policy forgetting erased customers in this service: its documents, and the
    keys its sealer remembers (the customer's and its leads')."""
    leads = database[LEADS]

    async def lead_ids(customer_id: str) -> list[str]:
        return [str(d["_id"]) async for d in leads.find({"customer_id": customer_id}, {"_id": 1})]

    return ForgetErasedCustomers(database, PERSONAL_PATHS, memory, lead_ids)
