"""The launcher's accounts: what each process may do, the local passwords, and mongod
brought under access control over a data folder of the layout without it."""

from __future__ import annotations

import json
import socket
import stat
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from crm_backbone.credentials import KEY_STORE, MASTER_KEYS, MONGODB, OPS
from crm_backbone.keys.master import MasterKeyRing
from crm_backbone.settings import ServiceSettings
from local_infra.accounts import SERVICES, LocalSecrets, mongo_roles
from local_infra.keycloak_server import client_secret, staff_password, with_secrets
from local_infra.mongo_server import MongoServer, mongod_binary
from local_infra.paths import KEYCLOAK_REALM_FILE
from local_infra.process import terminate
from pymongo import MongoClient
from pymongo.errors import OperationFailure


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_a_service_reads_and_writes_its_own_database_only() -> None:
    for service in SERVICES:
        database = f"crm_{service.replace('-', '_')}"
        assert mongo_roles("crm", service) == [{"role": "readWrite", "db": database}]


def test_ops_reaches_every_service_database_and_drops_only_rebuild_scratch() -> None:
    roles = mongo_roles("crm", OPS)
    assert {"role": "readWrite", "db": "crm_ops"} in roles
    for service in SERVICES:
        live = f"crm_{service.replace('-', '_')}"
        assert {"role": "readWrite", "db": live} in roles
        assert {"role": "dbAdmin", "db": f"{live}__rebuild"} in roles
    admin_dbs = {role["db"] for role in roles if role["role"] != "readWrite"}
    assert all(db.endswith("__rebuild") for db in admin_dbs)


def test_local_passwords_are_generated_once_readable_by_their_owner_only(
    tmp_path: Path,
) -> None:
    secrets = LocalSecrets(tmp_path)
    first = secrets.password(MONGODB, "crm_customer")
    assert secrets.password(MONGODB, "crm_customer") == first
    assert secrets.password(MONGODB, "crm_campaign") != first
    assert len(first.get_secret_value()) >= 24
    path = tmp_path / "secrets" / MONGODB / "crm_customer"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "secrets").stat().st_mode) == 0o700
    # The administrators' too: no password is written in code, even for a local profile.
    assert secrets.password(MONGODB, "admin") not in (first, secrets.password(MONGODB, "x"))


def test_the_local_master_key_ring_is_made_once_and_configures_the_key_store(
    tmp_path: Path,
) -> None:
    ring = LocalSecrets(tmp_path).master_keys()
    assert LocalSecrets(tmp_path).master_keys() == ring
    path = tmp_path / "secrets" / KEY_STORE / MASTER_KEYS
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    settings = ServiceSettings(secrets_dir=tmp_path / "secrets", master_keys=None)
    assert settings.master_key_ring() == ring
    assert MasterKeyRing.parse(ring.get_secret_value()).current_id() == "local-1"


def test_mongod_of_the_layout_without_access_control_comes_up_with_it(tmp_path: Path) -> None:
    """A data folder the launcher made before access control (no key file, no users):
    ``up`` starts it with its key file, creates the users, and keeps the data."""
    server = MongoServer(tmp_path, free_port())
    server.data_dir.mkdir(parents=True)
    subprocess.run(
        [
            mongod_binary(),
            *("--dbpath", str(server.data_dir), "--port", str(server.port)),
            *("--bind_ip", "127.0.0.1", "--replSet", "rs0", "--fork"),
            *("--logpath", str(tmp_path / "old.log")),
            *("--pidfilepath", str(tmp_path / "old.pid")),
        ],
        capture_output=True,
        check=True,
    )
    uri = f"mongodb://127.0.0.1:{server.port}/?directConnection=true"
    client: MongoClient[dict[str, Any]] = MongoClient(uri, serverSelectionTimeoutMS=20_000)
    with client:
        members = [{"_id": 0, "host": f"127.0.0.1:{server.port}"}]
        client.admin.command("replSetInitiate", {"_id": "rs0", "members": members})
        while not client.admin.command("hello").get("isWritablePrimary"):
            time.sleep(0.2)
        client["crm_customer"]["customers"].insert_one({"_id": "kept"})
    terminate(int((tmp_path / "old.pid").read_text()))
    server.prepare()
    try:
        assert server.launch()
        server.wait_ready()
        assert stat.S_IMODE(server.key_file.stat().st_mode) == 0o600
        anonymous: MongoClient[dict[str, Any]] = MongoClient(uri, serverSelectionTimeoutMS=20_000)
        with anonymous, pytest.raises(OperationFailure):
            anonymous["crm_customer"]["customers"].find_one()
        admin: MongoClient[dict[str, Any]] = MongoClient(server.admin_uri)
        with admin:
            assert admin["crm_customer"]["customers"].find_one() == {"_id": "kept"}
            users = admin.admin.command("usersInfo")["users"]
            assert {user["user"] for user in users} >= {"admin", "crm_customer", "crm_ops"}
        server.stop()
        assert server.launch()  # a second start: the users exist, passwords set again
        server.wait_ready()
    finally:
        server.stop(hard=True)


def test_the_imported_realm_holds_the_profiles_random_secrets_and_the_file_none(
    tmp_path: Path,
) -> None:
    checked_in = KEYCLOAK_REALM_FILE.read_text()
    secrets = LocalSecrets(tmp_path)

    imported = json.loads(with_secrets(checked_in.encode(), secrets))

    staff = staff_password(secrets).get_secret_value()
    users = [user for user in imported["users"] if "serviceAccountClientId" not in user]
    assert users
    assert all(user["credentials"] == [{"type": "password", "value": staff}] for user in users)
    confidential = [client for client in imported["clients"] if client.get("secret")]
    assert {client["clientId"] for client in confidential} >= {"core-banking", "crm-customer"}
    for client in confidential:
        assert client["secret"] == client_secret(secrets, client["clientId"]).get_secret_value()
        assert client["secret"] not in checked_in
    assert staff not in checked_in
    assert json.loads(with_secrets(checked_in.encode(), secrets)) == imported  # kept
    assert staff_password(LocalSecrets(tmp_path / "other")).get_secret_value() != staff
