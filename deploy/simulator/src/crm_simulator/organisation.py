"""The simulated bank's organisation, as its HR system states it.

Two regions; one branch per city of the population (``BR-001`` ... ``BR-012``), the
first two in the east region, the others in the north; in each branch the relationship
managers the population's customers are assigned to (:func:`branch_managers`, reporting
to their branch manager ``BM-<branch number>``), each branch manager reporting to the
regional head; at head office an analyst, an operator, an auditor and a data protection
officer. Staff ids are the ones the book names people by (a customer's manager id) and
the identity provider's users carry in their ``staff_id`` claim
(``deploy/keycloak/crm-realm.json``).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

from crm_events import organisation as hr
from crm_events.organisation import Role
from crm_events.registry import EventPayload

from crm_simulator.population import BRANCH_IDS, branch_city, branch_managers

REGIONS: dict[str, str] = {"RG-EAST": "East region", "RG-NORTH": "North region"}
REGIONAL_HEADS: dict[str, str] = {"RG-EAST": "RH-0001", "RG-NORTH": "RH-0002"}
EAST_BRANCHES = BRANCH_IDS[:2]
HEAD_OFFICE: dict[str, Role] = {
    "HO-0001": Role.ANALYST,
    "OP-0001": Role.OPERATOR,
    "AU-0001": Role.AUDITOR,
    "DP-0001": Role.DATA_PROTECTION_OFFICER,
}
OPENED_ON = date(2020, 1, 1)
"""When the simulated bank's branches opened (long before any simulated event)."""


def region_of(branch_id: str) -> str:
    """The region a branch of the simulated bank belongs to."""
    return "RG-EAST" if branch_id in EAST_BRANCHES else "RG-NORTH"


def manager_of_branch(branch_id: str) -> str:
    """Staff id of a branch's manager: ``BM-`` and the branch's number (``BM-0001``)."""
    return f"BM-{BRANCH_IDS.index(branch_id) + 1:04d}"


def organisation() -> Iterator[tuple[str, EventPayload]]:
    """(aggregate id, event) of each region, branch and staff member: units before the
    people placed in them, each manager before those who report to them."""
    for region_id, name in REGIONS.items():
        yield region_id, hr.RegionDefined(name=name)
    for branch_id in BRANCH_IDS:
        name = branch_city(branch_id).name
        yield (
            branch_id,
            hr.BranchOpened(name=name, region_id=region_of(branch_id), opened_on=OPENED_ON),
        )
    for region_id, head in REGIONAL_HEADS.items():
        yield head, hr.StaffPlaced(role=Role.REGIONAL_HEAD, region_id=region_id)
    for branch_id in BRANCH_IDS:
        manager = manager_of_branch(branch_id)
        head = REGIONAL_HEADS[region_of(branch_id)]
        yield (
            manager,
            hr.StaffPlaced(role=Role.BRANCH_MANAGER, branch_id=branch_id, reports_to=head),
        )
        for staff_id in branch_managers(branch_id):
            yield (
                staff_id,
                hr.StaffPlaced(
                    role=Role.RELATIONSHIP_MANAGER, branch_id=branch_id, reports_to=manager
                ),
            )
    for staff_id, role in HEAD_OFFICE.items():
        yield staff_id, hr.StaffPlaced(role=role)
