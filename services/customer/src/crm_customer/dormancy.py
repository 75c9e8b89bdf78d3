"""The dormancy rule, live: a sweep that moves quiet active customers to dormant.

Why a scheduled use case and not a policy consumer: dormancy is caused by the *absence*
of events (no contact, no transaction), so no event arrives to react to. The worker runs
:meth:`DormancySweep.run` every ``CRM_DORMANCY_SWEEP_S`` seconds; each sweep reads the
candidates from the single customer view as of the book's time
(``worklists.book_time``) and, for each, issues the ``flag_dormant`` command as the rule's
actor (:data:`DORMANCY_ACTOR`): a ``crm.customer.status_changed`` event, active ->
dormant, whose reason names the rule, its parameter and the last activity. The command
carries the version the sweep judged, so a customer changed meanwhile (a contact logged
through a reactivation) is left for the next sweep; two workers sweeping at once change a
customer once (the aggregate's optimistic concurrency, and ``flag_dormant`` leaves a
customer that is no longer active as it is).

A manager reverses it with the ordinary status command (``POST /customers/{id}/status``
``{"status": "active", "reason": ...}``): the event records who and why, and the rule
counts its days again from that reactivation.
"""

from __future__ import annotations

import asyncio

import structlog
from crm_backbone.application import StaleVersion
from crm_backbone.context import command_context
from prometheus_client import Counter

from crm_customer.application import CustomerApplication, CustomerNotFound
from crm_customer.erasure import CustomerErasedError
from crm_customer.rules import CustomerRetired
from crm_customer.worklists import BookWorklists

log = structlog.get_logger(__name__)

DORMANCY_ACTOR = "rule:dormancy"
"""The actor of the events the rule causes (what the audit trail shows as who)."""

FLAGGED = Counter(
    "crm_customers_flagged_dormant_total", "Active customers the dormancy rule made dormant"
)


class DormancySweep:
    """Moves the active customers the dormancy rule finds quiet to dormant."""

    def __init__(
        self,
        application: CustomerApplication,
        worklists: BookWorklists,
        *,
        dormancy_days: int,
        interval_s: float,
    ) -> None:
        self.application = application
        self.worklists = worklists
        self.dormancy_days = dormancy_days
        self.interval_s = interval_s

    async def sweep(self) -> int:
        """One pass; how many customers it made dormant."""
        flagged = 0
        for customer_id, version, reason in await self.worklists.dormancy_due(self.dormancy_days):
            if await asyncio.to_thread(self._flag, customer_id, version, reason):
                flagged += 1
        FLAGGED.inc(flagged)
        return flagged

    def _flag(self, customer_id: str, version: int, reason: str) -> bool:
        before = version
        with command_context(DORMANCY_ACTOR, None):
            try:
                after = self.application.flag_dormant(customer_id, version, reason)
            except (StaleVersion, CustomerNotFound, CustomerRetired, CustomerErasedError):
                return False  # changed since the view was read: judged again next time
        return after != before

    async def run(self) -> None:
        """Sweep every ``interval_s`` seconds until cancelled, the first time one interval
        after the start (the consumers catch up first); a failed sweep is logged and the
        next one tries again."""
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                flagged = await self.sweep()
            except Exception as error:  # an outage: the next sweep tries again
                log.warning("dormancy_sweep_failed", error=repr(error))
            else:
                if flagged:
                    log.info("dormancy_sweep", flagged=flagged)
