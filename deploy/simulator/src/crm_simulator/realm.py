"""The identity provider's staff users, generated from the simulated bank's organisation.

Every staff member HR places (:func:`crm_simulator.organisation.organisation`) has a
login in the realm the launcher imports (``deploy/keycloak/crm-realm.json``): username
the staff id in lower case, attribute ``staff_id`` the staff id, the one realm role
their HR role names, and a fixed id (the tokens' ``sub``). The file holds no secret: the
local launcher gives the users their password and the clients their secrets as it
imports it (``local_infra.keycloak_server.with_secrets``). The rest of the file (roles,
clients, scopes, mappers, the service accounts) is written by hand and kept as it is.
``python -m crm_simulator.realm`` rewrites the file's staff users; ``--check`` writes
nothing and exits 1 when they are stale.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from pathlib import Path
from typing import Any

from crm_events.organisation import StaffPlaced

from crm_simulator.organisation import organisation

REALM_FILE = Path(__file__).resolve().parents[3] / "keycloak" / "crm-realm.json"
STAFF_NAMESPACE = uuid.UUID("5b0c3f0e-8d7a-5c1e-9f2a-6d4b1a7e3c90")
"""Namespace of the staff users' ids: a user's id is uuid5 of it and the staff id."""
ISSUED_SUBJECTS: dict[str, str] = {
    "RM-0001": "12e16011-ce21-5870-aaf0-92952aa01edc",
    "RM-0002": "c558bbf2-d1ca-5138-857a-e5051c1d07d2",
    "RM-0005": "71ea3c54-db07-5afa-b872-eeaaec864649",
    "BM-0001": "342483f9-06b0-5af3-aa04-a820320635c0",
    "RH-0001": "3b1cbc73-607e-5028-87b9-9ca7e98af711",
    "HO-0001": "3e810edb-1048-53a3-aa61-4e6b839814fa",
    "OP-0001": "e3bd759a-014e-5202-832f-f7a1203d430f",
    "AU-0001": "442e44bd-23d8-5fa0-ba5f-424cc65ff68b",
}
"""Ids of the first demo users, written before the users were generated: a subject
never changes once tokens carry it, so these stay (tests name rm-0001's)."""
JsonObject = dict[str, Any]


def subject_of(staff_id: str) -> str:
    """The realm's id of a staff member's user, which their tokens carry as ``sub``."""
    return ISSUED_SUBJECTS.get(staff_id) or str(uuid.uuid5(STAFF_NAMESPACE, staff_id))


def staff_user(staff_id: str, placed: StaffPlaced) -> JsonObject:
    """A staff member's user in Keycloak's import format."""
    return {
        "id": subject_of(staff_id),
        "username": staff_id.lower(),
        "enabled": True,
        "attributes": {"staff_id": [staff_id]},
        "realmRoles": [placed.role.value],
    }


def staff_users() -> list[JsonObject]:
    """A user for every staff member of the organisation, in the order HR places them."""
    return [
        staff_user(staff_id, event)
        for staff_id, event in organisation()
        if isinstance(event, StaffPlaced)
    ]


def realm_text(current: str) -> str:
    """The realm file ``current`` with its staff users generated and its service
    accounts (and everything else) kept."""
    realm: JsonObject = json.loads(current)
    service_accounts = [user for user in realm["users"] if "serviceAccountClientId" in user]
    realm["users"] = staff_users() + service_accounts
    return json.dumps(realm, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Command line: rewrite the realm's staff users, or with ``--check`` report them stale."""
    parser = argparse.ArgumentParser(prog="python -m crm_simulator.realm", description=__doc__)
    parser.add_argument("--check", action="store_true", help="only report a stale realm file")
    parser.add_argument("--file", type=Path, default=REALM_FILE, help="the realm file")
    args = parser.parse_args(argv)
    current = args.file.read_text(encoding="utf-8")
    expected = realm_text(current)
    if current == expected:
        return 0
    if args.check:
        print(f"stale: {args.file}", file=sys.stderr)
        print("run: python -m crm_simulator.realm", file=sys.stderr)
        return 1
    args.file.write_text(expected, encoding="utf-8")
    print(f"updated: {args.file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
