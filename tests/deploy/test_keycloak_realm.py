"""The realm the launcher imports (deploy/keycloak/crm-realm.json) holds what issue 14's
identity needs: a demo user for every kind of staff, every relationship manager of every
branch of the simulated bank (the users follow its organisation: crm_simulator.realm), a
confidential client per service and per upstream system, and the console's public client
with PKCE S256."""

from __future__ import annotations

import json
from typing import Any

from crm_simulator.population import BRANCH_IDS, branch_managers
from local_infra.paths import KEYCLOAK_REALM_FILE

REALM: dict[str, Any] = json.loads(KEYCLOAK_REALM_FILE.read_text())
STAFF_ROLES = {
    "relationship_manager",
    "branch_manager",
    "regional_head",
    "analyst",
    "operator",
    "auditor",
    "data_protection_officer",
}
SERVICES = {"crm-customer", "crm-opportunity", "crm-campaign", "crm-contact-log"}
UPSTREAM = {"core-banking", "channel-gateway", "hr"}
FLOWS = {
    "publicClient": False,
    "standardFlowEnabled": True,
    "implicitFlowEnabled": False,
    "directAccessGrantsEnabled": False,
    "serviceAccountsEnabled": False,
}
"""How a client may get tokens, with Keycloak's defaults for what the file leaves out."""


def flows(client: dict[str, Any]) -> dict[str, bool]:
    return {key: client.get(key, default) for key, default in FLOWS.items()}


def clients() -> dict[str, dict[str, Any]]:
    return {client["clientId"]: client for client in REALM["clients"]}


def service_account_roles() -> dict[str, list[str]]:
    return {
        user["serviceAccountClientId"]: user["realmRoles"]
        for user in REALM["users"]
        if "serviceAccountClientId" in user
    }


def test_every_kind_of_staff_has_a_demo_user_with_one_role() -> None:
    people = [user for user in REALM["users"] if "serviceAccountClientId" not in user]
    assert all(len(user["realmRoles"]) == 1 for user in people)
    assert {user["realmRoles"][0] for user in people} == STAFF_ROLES


def test_every_relationship_manager_of_every_branch_of_the_simulated_bank_logs_in() -> None:
    managers = {
        user["attributes"]["staff_id"][0]
        for user in REALM["users"]
        if user.get("realmRoles") == ["relationship_manager"]
    }
    assert managers == {staff for branch in BRANCH_IDS for staff in branch_managers(branch)}


def test_services_and_upstream_systems_are_confidential_clients_with_service_accounts() -> None:
    roles = service_account_roles()
    for client_id in SERVICES | UPSTREAM:
        client = clients()[client_id]
        assert flows(client) == dict.fromkeys(FLOWS, False) | {"serviceAccountsEnabled": True}
        expected = "crm_service" if client_id in SERVICES else "upstream_system"
        assert roles[client_id] == [expected]


def test_the_console_uses_the_code_flow_with_pkce_s256_only() -> None:
    console = clients()["crm-console"]
    assert flows(console) == dict.fromkeys(FLOWS, False) | {
        "publicClient": True,
        "standardFlowEnabled": True,
    }
    assert console["attributes"]["pkce.code.challenge.method"] == "S256"
    assert all(
        uri.startswith(("http://localhost:", "http://127.0.0.1:"))
        for uri in console["redirectUris"]
    )


def test_only_the_local_cli_client_has_the_password_grant() -> None:
    with_password = {
        c["clientId"] for c in REALM["clients"] if flows(c)["directAccessGrantsEnabled"]
    }
    assert with_password == {"crm-cli"}


def test_the_realm_file_holds_no_password_and_no_client_secret() -> None:
    assert [user["username"] for user in REALM["users"] if "credentials" in user] == []
    assert [client["clientId"] for client in REALM["clients"] if "secret" in client] == []
