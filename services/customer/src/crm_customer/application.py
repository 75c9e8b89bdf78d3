"""The customer service layer: each command loads customers, decides, and saves atomically.

Commands return the customer's new version, which a caller may pass back as
``expected_version`` (optimistic concurrency) or to the view to read its own write.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from crm_backbone.access import Reach
from crm_backbone.aggregate import uuid_for
from crm_backbone.application import Created, ServiceApplication, StaleVersion
from crm_backbone.context import current_context
from crm_events.customer import (
    CustomerStatus,
    ErasureBasis,
    GroupRole,
    GroupType,
    RelationshipType,
)
from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from crm_customer.domain import Customer
from crm_customer.erasure import (
    AML_RETENTION_YEARS,
    CustomerErasedError,
    RelationshipFacts,
    legal_holds,
)
from crm_customer.ownership import (
    AS_GIVEN,
    WHOLE_BOOK,
    CustomerNotFound,
    Placement,
    owners,
    require_customer_in_reach,
    require_may_give,
)
from crm_customer.rules import Conflict, CustomerRetired, JsonDict, check_profile_change

__all__ = ["CustomerApplication", "CustomerNotFound", "KeyShredder"]


class KeyShredder(Protocol):
    """Where erasure destroys keys: a key store, or the service's ``KeySealer`` (which
    forgets them at once too)."""

    def destroy(self, subject: str) -> None:
        """Destroy the subject's key for good (idempotent)."""


class CustomerApplication(ServiceApplication):
    """Registers customers and runs every command on them.

    Every command takes its caller's ``reach``: each customer it loads must be in it
    (``ownership.py``), else it is :class:`CustomerNotFound`, as a missing one is. Every
    route passes its caller's; the default, the whole book, is for the service's own
    policies and in-process tools.
    """

    snapshotting_intervals = {Customer: 50}

    def __init__(
        self,
        env: dict[str, str] | None = None,
        *,
        subject_keys: KeyShredder | None = None,
        aml_retention_years: int = AML_RETENTION_YEARS,
        **options: Any,
    ) -> None:
        """``subject_keys``: where erasure destroys a customer's key (none: erasure is
        refused, since it could not make the stored events unreadable)."""
        super().__init__(env, **options)
        self.subject_keys = subject_keys
        self.aml_retention_years = aml_retention_years

    # Queries of the write side ----------------------------------------------------------

    def get(self, customer_id: str) -> Customer:
        try:
            customer: Customer = self.repository.get(uuid_for(Customer, customer_id))
        except AggregateNotFoundError:
            raise CustomerNotFound(customer_id) from None
        return customer

    def get_in_reach(self, customer_id: str, reach: Reach) -> Customer:
        """The customer, when it exists and is in ``reach``."""
        customer = self.get(customer_id)
        require_customer_in_reach(
            reach, customer_id, owners(customer.manager_id, customer.branch_id)
        )
        return customer

    def exists(self, customer_id: str) -> bool:
        return uuid_for(Customer, customer_id) in self.repository

    def resolve(self, customer_id: str) -> Customer:
        """The customer, or the survivor it was (transitively) merged into."""
        customer = self.get(customer_id)
        while customer.merged_into is not None:
            customer = self.get(customer.merged_into)
        return customer

    # Commands ---------------------------------------------------------------------------

    def register(
        self,
        customer_id: str,
        fields: JsonDict,
        *,
        manager_id: str | None = None,
        placement: Placement = AS_GIVEN,
        reach: Reach = WHOLE_BOOK,
    ) -> Created:
        """Register a customer into the caller's reach (``fields`` name its branch),
        assigned at once to ``manager_id`` when one is given."""
        branch_id = fields["branch_id"]
        require_may_give(reach, manager_id, branch_id, placement)
        if self.exists(customer_id):
            raise Conflict(f"customer {customer_id} is already registered")
        customer = Customer.register(customer_id, fields)
        if manager_id is not None:
            customer.assign_manager(manager_id, branch_id, "assigned at registration")
        self._save(customer)
        return Created(customer_id, customer.version)

    def update_profile(
        self,
        customer_id: str,
        expected: int | None,
        changes: JsonDict,
        *,
        reach: Reach = WHOLE_BOOK,
    ) -> int:
        """Change CRM-owned profile fields; a change naming any other field is refused
        before the customer is read, as a malformed request is."""
        check_profile_change(changes)
        return self._command(customer_id, expected, reach, lambda c: c.update_profile(changes))

    def change_status(
        self,
        customer_id: str,
        expected: int | None,
        *,
        status: CustomerStatus,
        reason: str,
        reach: Reach = WHOLE_BOOK,
    ) -> int:
        return self._command(
            customer_id, expected, reach, lambda c: c.change_status(status, reason)
        )

    def flag_dormant(self, customer_id: str, expected: int, reason: str) -> int:
        """The dormancy rule's command, on the version of the customer the rule judged
        (a customer changed since is judged again at the next sweep)."""
        return self._command(customer_id, expected, WHOLE_BOOK, lambda c: c.flag_dormant(reason))

    def change_segment(
        self,
        customer_id: str,
        expected: int | None,
        *,
        value_band: str,
        corporate_tier: str | None,
        reason: str,
        reach: Reach = WHOLE_BOOK,
    ) -> int:
        return self._command(
            customer_id,
            expected,
            reach,
            lambda c: c.change_segment(value_band, corporate_tier, reason),
        )

    def assign_manager(
        self,
        customer_id: str,
        expected: int | None,
        *,
        manager_id: str,
        branch_id: str,
        reason: str | None,
        placement: Placement = AS_GIVEN,
        reach: Reach = WHOLE_BOOK,
    ) -> int:
        """Reassign a customer in reach to owners in reach: the old manager loses it as
        soon as it is saved."""
        customer = self._load(customer_id, expected, reach)
        require_may_give(reach, manager_id, branch_id, placement)
        customer.assign_manager(manager_id, branch_id, reason)
        self._save(customer)
        return customer.version

    def set_consent(
        self,
        customer_id: str,
        expected: int | None,
        *,
        channel: str,
        opted_in: bool,
        reason: str | None,
        reach: Reach = WHOLE_BOOK,
    ) -> int:
        return self._command(
            customer_id, expected, reach, lambda c: c.set_consent(channel, opted_in, reason)
        )

    def join_group(
        self,
        customer_id: str,
        expected: int | None,
        group_id: str,
        group_type: GroupType,
        group_name: str,
        role: GroupRole,
        joined_on: str,
        *,
        reach: Reach = WHOLE_BOOK,
    ) -> int:
        return self._command(
            customer_id,
            expected,
            reach,
            lambda c: c.join_group(group_id, group_type, group_name, role, joined_on),
        )

    def leave_group(
        self,
        customer_id: str,
        expected: int | None,
        *,
        group_id: str,
        left_on: str,
        reason: str | None,
        reach: Reach = WHOLE_BOOK,
    ) -> int:
        return self._command(
            customer_id, expected, reach, lambda c: c.leave_group(group_id, left_on, reason)
        )

    def relate(
        self,
        customer_id: str,
        expected: int | None,
        related_id: str,
        kind: RelationshipType,
        since: str | None,
        *,
        reach: Reach = WHOLE_BOOK,
    ) -> int:
        """Relate two customers in reach, both sides in one atomic save (spouse <-> spouse, ...)."""
        customer = self._load(customer_id, expected, reach)
        related = self._load(related_id, None, reach)
        customer.relate(related_id, kind, since)
        related.relate(customer_id, kind.inverse, since)
        self._save(customer, related)
        return customer.version

    def unrelate(
        self,
        customer_id: str,
        expected: int | None,
        related_id: str,
        kind: RelationshipType,
        ended_on: str,
        reason: str | None,
        *,
        reach: Reach = WHOLE_BOOK,
    ) -> int:
        customer = self._load(customer_id, expected, reach)
        related = self._load(related_id, None, reach)
        customer.unrelate(related_id, kind, ended_on, reason)
        related.unrelate(customer_id, kind.inverse, ended_on, reason)
        self._save(customer, related)
        return customer.version

    def merge(
        self,
        survivor_id: str,
        expected: int | None,
        duplicate_id: str,
        reason: str,
        on: str,
        *,
        reach: Reach = WHOLE_BOOK,
    ) -> int:
        """Merge a duplicate into the survivor (the golden record), in one atomic save;
        both must be in reach (the customers related to the duplicate need not be).

        The survivor takes the duplicate's identity, missing profile fields, consents
        (an opt-out wins), relationships and group memberships; every customer related to
        the duplicate is re-pointed to the survivor; the duplicate is retired.
        """
        survivor = self._load(survivor_id, expected, reach)
        duplicate = self._load(duplicate_id, None, reach)
        survivor.absorb(duplicate, reason)
        touched: dict[str, Customer] = {}
        why = f"merged into {survivor_id}"
        for link in list(duplicate.relationships.values()):
            other_id, kind = (
                link["related_customer_id"],
                RelationshipType(link["relationship_type"]),
            )
            other = survivor if other_id == survivor_id else touched.get(other_id)
            other = other or touched.setdefault(other_id, self._related(other_id))
            duplicate.unrelate(other_id, kind, on, why)
            other.unrelate(duplicate_id, kind.inverse, on, why)
            if other is not survivor and f"{other_id}|{kind.value}" not in survivor.relationships:
                survivor.relate(other_id, kind, link["since"])
                other.relate(survivor_id, kind.inverse, link["since"])
        for group_id, group in list(duplicate.groups.items()):
            duplicate.leave_group(group_id, on, why)
            if group_id not in survivor.groups:
                survivor.join_group(
                    group_id,
                    GroupType(group["group_type"]),
                    group["group_name"],
                    GroupRole(group["role"]),
                    on,
                )
        duplicate.retire_into(survivor_id, reason)
        self._save(survivor, duplicate, *touched.values())
        return survivor.version

    def apply_core_data(
        self, customer_id: str, source_version: int, source_event_id: str, data: JsonDict
    ) -> bool:
        """Apply core banking's data change to the customer (or its survivor).

        False when that upstream version was already applied. Raises ``CustomerNotFound``
        for a customer the CRM does not know (the caller parks the event).
        """
        customer = self.resolve(customer_id)
        if not customer.apply_core_data(customer_id, source_version, source_event_id, data):
            return False
        self._save(customer)
        return True

    def record_opt_out(self, customer_id: str, channel: str, campaign_id: str) -> None:
        """An opt-out asked for through a campaign; already opted out is a no-op."""
        customer = self.resolve(customer_id)
        customer.set_consent(channel, False, "opted out through a campaign", campaign_id)
        self._save(customer)

    def erase(
        self,
        customer_id: str,
        expected: int | None,
        *,
        legal_basis: ErasureBasis,
        reason: str,
        facts: RelationshipFacts,
        reach: Reach = WHOLE_BOOK,
    ) -> int:
        """Erase the customer's personal data, unless a legal hold applies (``erasure.py``
        decides from ``facts``, what the views know of its relationship with the bank).

        The duplicates merged into the customer are the same person: they are erased with
        it, in one atomic save. The erased events are saved, then the keys destroyed: the
        customer's, its duplicates', and its leads' (``facts.lead_ids``; the customer
        service is the one that destroys keys).
        Asking again for an erased customer destroys its keys again (a retry after a failed
        destruction) and is refused as every command on it is.
        """
        keys = self.subject_keys
        if keys is None:
            raise ErasureUnavailable("no key store is configured: erasure cannot shred keys")
        found = self.get_in_reach(customer_id, reach)
        if found.erasure is not None:
            for subject in (customer_id, *found.merged_ids, *facts.lead_ids):
                keys.destroy(subject)
            raise CustomerErasedError(customer_id, found.erasure["erased_at"])
        customer = self._load(customer_id, expected, reach)
        person = [customer, *(self.get(merged) for merged in customer.merged_ids)]
        now = self.clock()
        holds = legal_holds(facts, now.date(), retention_years=self.aml_retention_years)
        for record in person:
            if record.erasure is None:
                record.erase(
                    holds, now.isoformat(), current_context().actor, legal_basis.value, reason
                )
        self._save(*person)
        for subject in (*(record.customer_id for record in person), *facts.lead_ids):
            keys.destroy(subject)
        return customer.version

    # Helpers ----------------------------------------------------------------------------

    def _command(
        self,
        customer_id: str,
        expected: int | None,
        reach: Reach,
        decide: Callable[[Customer], None],
    ) -> int:
        customer = self._load(customer_id, expected, reach)
        decide(customer)
        self._save(customer)
        return customer.version

    def _load(self, customer_id: str, expected: int | None, reach: Reach) -> Customer:
        """A customer in reach that a command may change: not erased, not merged away, at
        the ``expected`` version."""
        customer = self.get_in_reach(customer_id, reach)
        if customer.erasure is not None:
            raise CustomerErasedError(customer_id, customer.erasure["erased_at"])
        if customer.merged_into is not None:
            raise CustomerRetired(customer_id, customer.merged_into)
        if expected is not None and expected != customer.version:
            raise StaleVersion(f"customer {customer_id}", expected, customer.version)
        return customer

    def _related(self, customer_id: str) -> Customer:
        """A customer related to a merged duplicate, re-pointed to the survivor whoever's
        book it is in: the merge is the command, on two customers in reach."""
        return self._load(customer_id, None, WHOLE_BOOK)

    def _save(self, *customers: Customer) -> None:
        try:
            self.save(*customers)
        except IntegrityError:
            ids = ", ".join(c.customer_id for c in customers)
            raise Conflict(
                f"customer(s) {ids} changed while this command ran: read again and retry"
            ) from None


class ErasureUnavailable(Exception):
    """The service runs without a key store, so it cannot erase (HTTP 503)."""
