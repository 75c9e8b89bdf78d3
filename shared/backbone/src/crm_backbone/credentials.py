"""Who a process is to MongoDB and PostgreSQL, and the address its clients connect with.

Every process has an account of its own on each server, named after the database it owns
(``<namespace>_<process>``: ``crm_customer``, ``crm_ops``, ...). Its password comes from
configuration, never from code: an environment variable (``CRM_MONGO_PASSWORD``,
``CRM_POSTGRES_PASSWORD``), else a file ``<CRM_SECRETS_DIR>/<server>/<user>`` (what the
local launcher writes, and what a container's mounted secrets look like). With neither,
the address is used as it is given (a server without access control, or credentials
written into the address itself).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from pydantic import SecretStr

MONGODB = "mongodb"
POSTGRESQL = "postgresql"
KEY_STORE = "keys"
"""The key database's name in a namespace (``<namespace>_keys``), and the secrets folder's
sub-folder of the key store's secrets (``keys/master-keys``, the master key ring)."""
MASTER_KEYS = "master-keys"
OPENBAO = "openbao"
"""The secrets folder's sub-folder of OpenBao's token (``openbao/token``)."""
OPS = "ops"
"""The operators' toolkit, ``crm-ops``, a process with a user of its own (``<ns>_ops``)."""
KEYCLOAK = "keycloak"
"""The identity provider's secrets: ``<CRM_SECRETS_DIR>/keycloak/<client id>`` a confidential
client's secret, ``.../keycloak/demo-staff`` the local realm's demo users' password."""
DEMO_STAFF = "demo-staff"


def database_name(namespace: str, process: str) -> str:
    """The database a process owns on each server, and its user's name there."""
    return f"{namespace}_{process.replace('-', '_')}"


@dataclass(frozen=True)
class Account:
    """A user of one server and its password."""

    user: str
    password: SecretStr


def read_secret(secrets_dir: Path | None, server: str, user: str) -> SecretStr | None:
    """The password the secrets folder holds for ``user`` of ``server``, if any."""
    if secrets_dir is None:
        return None
    path = secrets_dir / server / user
    if not path.is_file():
        return None
    return SecretStr(path.read_text().strip())


def with_userinfo(address: str, account: Account | None) -> str:
    """``address`` with ``account``'s credentials in place of any it carried."""
    if account is None:
        return address
    url = urlsplit(address)
    credentials = (
        f"{quote(account.user, safe='')}:{quote(account.password.get_secret_value(), safe='')}"
    )
    return urlunsplit(url._replace(netloc=f"{credentials}@{url.netloc.rpartition('@')[2]}"))


def mongo_uri(address: str, account: Account | None) -> str:
    """The MongoDB URI of ``account`` on the server of ``address`` (users live in
    ``admin``: one account may be granted roles on several databases)."""
    if account is None:
        return address
    url = urlsplit(with_userinfo(address, account))
    query = dict(parse_qsl(url.query)) | {"authSource": "admin"}
    return urlunsplit(url._replace(query=urlencode(query)))


def postgres_dsn(address: str, account: Account | None, database: str | None = None) -> str:
    """The DSN of ``account`` on the server of ``address``, to ``database`` (else the
    address's own)."""
    url = urlsplit(with_userinfo(address, account))
    return urlunsplit(url._replace(path=f"/{database}") if database else url)
