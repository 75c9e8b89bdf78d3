"""Each CRM process's own account on MongoDB and PostgreSQL, and the local passwords.

The launcher creates them for the namespace ``crm`` at every ``crm-infra up`` (setting the
passwords its secrets folder holds), the test harness for a namespace of a test's own.
What each account may do (``docs/access.md``):

- a service ``S``: on MongoDB ``readWrite`` on ``<ns>_S`` (its views, positions, holds,
  pause gates; ``read`` includes the change streams of its own collections); on
  PostgreSQL the role ``<ns>_S``, owner of the database ``<ns>_S`` and nothing else: no
  superuser, no ``CREATEDB``, no ``CREATEROLE``; the database refuses every other role.
- the key database ``<ns>_keys`` (the data subjects' wrapped keys, ``crm_backbone.keys``),
  the administrator's: every service's role may connect, read keys and add a live key;
  only the customer service's may destroy one (a tombstone) and rewrap them; ``ops``'s
  role may read them and do nothing else on PostgreSQL.
- ``ops`` (``crm-ops``): on MongoDB ``readWrite`` on ``<ns>_ops`` (its dead-letter
  ledger) and on every service's database (rebuild, replay, settling dead letters, pause
  gates), and ``readWrite`` with ``dbAdmin`` on the database a rebuild builds beside the
  live one (it drops it afterwards); on PostgreSQL the role ``<ns>_ops``, which may only
  read the key database's keys.

The administrators (``admin`` on MongoDB, ``postgres`` on PostgreSQL) are the launcher's
and the test harness's only.
"""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import psycopg
from crm_backbone import credentials
from crm_backbone.credentials import (
    KEY_STORE,
    MASTER_KEYS,
    MONGODB,
    OPS,
    POSTGRESQL,
    Account,
    database_name,
    postgres_dsn,
)
from crm_backbone.keys.database import TABLE as KEY_TABLE
from crm_backbone.keys.database import table_ddl
from crm_backbone.keys.master import MasterKeyRing
from crm_backbone.rebuild import SCRATCH
from crm_events.topics import SUBSCRIPTIONS
from psycopg import sql
from pydantic import SecretStr
from pymongo import MongoClient
from pymongo.errors import OperationFailure

SERVICES = tuple(service.value for service in SUBSCRIPTIONS)
"""The CRM's own services (upstream systems have no database)."""
NAMESPACE = "crm"
MONGO_ADMIN = "admin"
POSTGRES_ADMIN = "postgres"

ROLE_ATTRIBUTES = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION"
"""A service's PostgreSQL role: it logs in, and may do nothing beyond its database."""
USER_EXISTS = 51003
LIVE_KEY_WRITER = "SELECT, INSERT (subject, wrapped_key, master_key_id, created_at)"
"""A service's access to the keys: read them, and add a live key (not a tombstone, which
needs ``destroyed_at``)."""
KEY_PRIVILEGES = {"customer": "SELECT, INSERT, UPDATE", OPS: "SELECT"}
"""The exceptions: the customer service, which erases, also destroys keys and rewraps them;
``crm-ops`` only reads them (rebuilds and replays open what the topics carry sealed)."""


def as_administrators(
    mongo_uri: str, postgres_dsn: str, secrets_dir: Path | None
) -> tuple[str, str]:
    """The servers' addresses as their administrators (the test harness's, the bench's),
    when ``secrets_dir`` holds their passwords, as the launcher's does; else as given."""

    def admin(server: str, user: str) -> Account | None:
        password = credentials.read_secret(secrets_dir, server, user)
        return None if password is None else Account(user, password)

    return (
        credentials.mongo_uri(mongo_uri, admin(MONGODB, MONGO_ADMIN)),
        credentials.postgres_dsn(postgres_dsn, admin(POSTGRESQL, POSTGRES_ADMIN)),
    )


class LocalSecrets:
    """The local profile's passwords, one file per account (``<server>/<user>``, mode 600,
    in a folder of mode 700): what ``CRM_SECRETS_DIR`` names for the processes."""

    def __init__(self, state_dir: Path) -> None:
        self.folder = state_dir / "secrets"

    @classmethod
    def in_folder(cls, folder: Path) -> LocalSecrets:
        """The secrets in ``folder`` itself (the one ``CRM_SECRETS_DIR`` names)."""
        found = cls(folder.parent)
        found.folder = folder
        return found

    def password(self, server: str, user: str) -> SecretStr:
        """The account's password: the one stored, else a new random one, stored."""
        return self._stored(server, user, lambda: secrets.token_urlsafe(24))

    def master_keys(self) -> SecretStr:
        """The profile's master key ring (``keys/master-keys``, ``crm_backbone.keys.master``):
        one key, made at the first start."""
        return self._stored(KEY_STORE, MASTER_KEYS, lambda: MasterKeyRing.new_entry("local-1"))

    def _stored(self, server: str, name: str, new: Callable[[], str]) -> SecretStr:
        """The secret ``server/name``: the one stored, else ``new()``, stored (mode 600)."""
        path = self.folder / server / name
        if not path.is_file():
            for folder in (self.folder, path.parent):
                folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            path.touch(mode=0o600)
            path.write_text(new())
        return SecretStr(path.read_text().strip())

    def passwords(
        self, server: str, processes: tuple[str, ...], namespace: str = NAMESPACE
    ) -> dict[str, SecretStr]:
        """Each process's password on ``server`` in ``namespace``."""
        return {p: self.password(server, database_name(namespace, p)) for p in processes}


def new_key_file(path: Path) -> None:
    """A replica set's shared key (mode 600: mongod refuses a key others may read)."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(base64.b64encode(os.urandom(756)).decode())


def mongo_roles(namespace: str, process: str) -> list[dict[str, str]]:
    """The roles of ``process``'s MongoDB user (see the module's documentation)."""
    roles = [{"role": "readWrite", "db": database_name(namespace, process)}]
    if process == OPS:
        for service in SERVICES:
            live = database_name(namespace, service)
            roles += [
                {"role": "readWrite", "db": live},
                {"role": "readWrite", "db": f"{live}{SCRATCH}"},
                {"role": "dbAdmin", "db": f"{live}{SCRATCH}"},
            ]
    return roles


def provision_mongo(
    admin: MongoClient[dict[str, Any]], namespace: str, passwords: Mapping[str, SecretStr]
) -> None:
    """Create (or bring up to date) the MongoDB user of each process of ``passwords``."""
    for process, password in passwords.items():
        user = database_name(namespace, process)
        fields = {"pwd": password.get_secret_value(), "roles": mongo_roles(namespace, process)}
        try:
            admin.admin.command({"createUser": user, **fields})
        except OperationFailure as error:
            if error.code != USER_EXISTS:
                raise
            admin.admin.command({"updateUser": user, **fields})


def drop_mongo_users(admin: MongoClient[dict[str, Any]], namespace: str) -> None:
    """Remove the users of every process of ``namespace`` (a test's, afterwards)."""
    for process in (*SERVICES, OPS):
        admin.admin.command("dropUser", database_name(namespace, process), check=False)


def provision_postgres(admin_dsn: str, namespace: str, passwords: Mapping[str, SecretStr]) -> None:
    """Create (or bring up to date) each service's role and the database it owns, the
    key database, and ``ops``'s role (a key reader, owning nothing) when it has a password."""
    for process, password in passwords.items():
        name = database_name(namespace, process)
        role = sql.Identifier(name)
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone()
            conn.execute(
                sql.SQL("{} ROLE {} " + ROLE_ATTRIBUTES + " PASSWORD {}").format(
                    sql.SQL("ALTER" if exists else "CREATE"),
                    role,
                    sql.Literal(password.get_secret_value()),
                )
            )
            if process == OPS:
                continue
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
                conn.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(role, role))
            else:
                conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(role, role))
            conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(role))
        _hand_over(postgres_dsn(admin_dsn, None, name), name)
    provision_key_store(admin_dsn, namespace, tuple(passwords))


def key_store_grants(namespace: str, processes: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """What ``processes``' roles may do with the key database of ``namespace`` (see the
    module's documentation): the statements run on the server, then those run in it."""
    database = database_name(namespace, KEY_STORE)
    roles = {process: database_name(namespace, process) for process in processes}
    on_server = [f"REVOKE ALL ON DATABASE {database} FROM PUBLIC"] + [
        f"GRANT CONNECT ON DATABASE {database} TO {role}" for role in roles.values()
    ]
    in_database = [*table_ddl(postgres=True), f"REVOKE ALL ON {KEY_TABLE} FROM PUBLIC"] + [
        f"GRANT {KEY_PRIVILEGES.get(process, LIVE_KEY_WRITER)} ON {KEY_TABLE} TO {role}"
        for process, role in roles.items()
    ]
    return on_server, in_database


def provision_key_store(admin_dsn: str, namespace: str, processes: tuple[str, ...]) -> None:
    """The key database of ``namespace`` (the administrator's) with its table, and the
    grants of ``processes``' roles."""
    name = database_name(namespace, KEY_STORE)
    on_server, in_database = key_store_grants(namespace, processes)
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        for statement in on_server:
            conn.execute(statement.encode())
    with psycopg.connect(postgres_dsn(admin_dsn, None, name), autocommit=True) as conn:
        for statement in in_database:
            conn.execute(statement.encode())


_NOT_OWNED = """
SELECT format('ALTER TABLE %%s OWNER TO %%I', c.oid::regclass, %(role)s::text)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND c.relowner <> %(role)s::regrole
UNION ALL
SELECT format('ALTER ROUTINE %%s OWNER TO %%I', p.oid::regprocedure, %(role)s::text)
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = 'public' AND p.proowner <> %(role)s::regrole
UNION ALL
SELECT format('ALTER TYPE %%s OWNER TO %%I', t.oid::regtype, %(role)s::text)
FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
WHERE n.nspname = 'public' AND t.typtype IN ('c', 'e', 'd') AND t.typowner <> %(role)s::regrole
  AND (t.typrelid = 0 OR (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c')
"""


def _hand_over(database_dsn: str, role: str) -> None:
    """Give ``role`` what others created in its database (a store an earlier layout's
    superuser created): tables with their indexes and sequences, functions, types."""
    with psycopg.connect(database_dsn, autocommit=True) as conn:
        statements = [str(row[0]) for row in conn.execute(_NOT_OWNED, {"role": role})]
        for statement in statements:
            conn.execute(statement.encode())


def drop_postgres_accounts(admin_dsn: str, namespace: str) -> None:
    """Remove every service database and role of ``namespace``, and its key database (a
    test's, afterwards)."""
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        keys = sql.Identifier(database_name(namespace, KEY_STORE))
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(keys))
        conn.execute(
            sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(database_name(namespace, OPS)))
        )
        for service in SERVICES:
            name = sql.Identifier(database_name(namespace, service))
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(name))
