"""Who may manage, read and report on which campaigns: the campaign service's access rules.

A campaign's definition (name, dates, channels, budget) is not personal data, so every
caller who may read the book lists and reads every campaign. Its **figures** are the
book's: a caller counts only the targets whose customer is in reach today (the customer's
current manager and branch, ``crm_backbone.book.CustomerBook``, not the manager frozen in
the target list), so a reassignment moves a target's figures to its new manager at once.
Figures no target can be scoped by (exclusion counts, call lists, the budget's cost and
what follows from it) would tell how many customers lie outside the reach: only an
organisation-wide reach (the analyst, the CRM's services) gets them (:func:`sees_whole`).

**Managing** a campaign (create, schedule, start, complete, cancel) is a head-office or
branch-management act: it needs a reach covering every branch the campaign's criteria
target (:func:`require_manage`). A branch manager or regional head manages the campaigns
whose ``criteria.branch_ids`` lie in their branches, the CRM's services and upstream
systems any campaign; a relationship manager none (refused before any campaign is looked
at), and a campaign targeting the whole bank (no branch criterion) only an
organisation-wide reach. Refusals are 403: campaigns are no secret to the book's readers,
so there is nothing a 404 would hide.

**Responses** reported over the API (:meth:`CampaignAccess.require_reporter`) are about
one customer, who must be in the reporter's reach: a relationship manager reports their
own customers' calls, the channel gateway's service account any target's. A customer out
of reach answers what a customer who does not exist answers: 404 ``customer-not-found``.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

from crm_backbone.access import AccessRefused, Reach, require_command
from crm_backbone.book import CustomerBook, CustomersInReach
from crm_backbone.projection import Document
from pymongo.asynchronous.database import AsyncDatabase

CUSTOMER = "customer"
"""The kind an out-of-reach customer is reported as (404 ``customer-not-found``)."""


def sees_whole(reach: Reach) -> bool:
    """Whether ``reach`` covers every customer, hence every campaign's whole figures."""
    return reach.scope.field is None


def manages(reach: Reach, branch_ids: Collection[str]) -> bool:
    """Whether ``reach`` may manage a campaign targeting ``branch_ids`` (none: the bank)."""
    scope = reach.scope
    if scope.field is None:
        return True
    return scope.field == "branch" and bool(branch_ids) and set(branch_ids) <= scope.values


def require_manager(reach: Reach) -> None:
    """Refuse (403) a caller who may manage no campaign at all (a relationship manager, a
    read-only reach), before any campaign is looked at."""
    require_command(reach)
    if reach.scope.field == "manager":
        raise AccessRefused("relationship managers do not manage campaigns")


def require_manage(reach: Reach, branch_ids: Collection[str]) -> None:
    """Refuse (403) a caller who may not manage a campaign targeting ``branch_ids``."""
    require_manager(reach)
    if not manages(reach, branch_ids):
        raise AccessRefused(
            "managing a campaign needs a reach covering every branch it targets"
            if branch_ids
            else "a campaign of the whole bank is managed by head office's services"
        )


def campaign_branches(criteria: dict[str, Any]) -> list[str]:
    """The branches a campaign's targeting criteria name (none: every branch)."""
    return list(criteria.get("branch_ids") or [])


class CampaignAccess:
    """The rules that need the customers' current owners (``customer_owners``)."""

    def __init__(self, database: AsyncDatabase[Document]) -> None:
        self.book: CustomersInReach = CustomerBook(database)

    async def targets_scope(self, reach: Reach) -> Document:
        """The filter of the ``campaign_targets`` whose customer is in reach (``{}``: all)."""
        return await self.book.scope(reach)

    async def count_in_reach(self, reach: Reach, customer_ids: Iterable[str]) -> int:
        """How many of ``customer_ids`` are customers in reach."""
        ids = set(customer_ids)
        if not ids:
            return 0
        in_reach = await self.book.scope(reach, field="_id")
        return len(ids.intersection(in_reach["_id"]["$in"])) if in_reach else len(ids)

    async def require_reporter(self, reach: Reach, customer_id: str) -> None:
        """Refuse a response about ``customer_id`` unless the caller may change the book
        (403) and the customer is in its reach (404, as for a customer that does not
        exist)."""
        require_command(reach)
        await self.book.require(reach, customer_id, kind=CUSTOMER, key=customer_id)
