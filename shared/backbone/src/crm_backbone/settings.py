"""Settings every service reads from its environment (``CRM_*``), and its logging."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any, Literal

import psycopg
import structlog
from pydantic import SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from crm_backbone import credentials
from crm_backbone.credentials import KEY_STORE, MASTER_KEYS, MONGODB, OPENBAO, POSTGRESQL, Account
from crm_backbone.eventstore import EventStoreConfig
from crm_backbone.signing_keys import check_algorithms
from crm_backbone.topic_names import TopicNames

KAFKA = "kafka"
"""The secrets folder's sub-folder of Kafka passwords, one file per principal."""


class ServiceSettings(BaseSettings):
    """Where a service finds Kafka, MongoDB and its event store.

    The defaults are the addresses ``crm-infra up`` uses (profile ``run``); the launcher
    writes the same names to ``var/infra/infra.env``.
    """

    model_config = SettingsConfigDict(env_prefix="CRM_", extra="ignore")

    kafka_bootstrap: str = "127.0.0.1:19092"
    mongo_uri: str = "mongodb://127.0.0.1:27117/?replicaSet=rs0"
    event_store: Literal["sqlite", "postgres"] = "sqlite"
    postgres_dsn: str = "postgresql://127.0.0.1:15432/postgres"
    mongo_password: SecretStr | None = None
    """This process's MongoDB password (its user: :meth:`mongo_database`'s name)."""
    postgres_password: SecretStr | None = None
    """This process's PostgreSQL password (its role: :meth:`mongo_database`'s name)."""
    secrets_dir: Path | None = None
    """A folder of passwords, ``<server>/<user>`` (``crm_backbone.credentials``), read
    when no password variable is set."""
    kafka_username: str | None = None
    """The Kafka principal this process connects as; unset: the one its role names
    (``crm_backbone.kafka_acls``: ``crm-<service>``, ``crm-ops``, an upstream system)."""
    kafka_password: SecretStr | None = None
    """Its SCRAM password; else the file named after the principal in
    ``kafka_secrets_dir``. Neither: the client logs in as nobody (a broker without
    authentication)."""
    kafka_secrets_dir: Path | None = None
    """A folder of Kafka passwords, one file per principal; unset: ``<secrets_dir>/kafka``."""
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512", "PLAIN"] = "SCRAM-SHA-512"
    """PLAIN only for the admin on a listener whose one user is in the broker's own
    configuration (docker-compose's, before any SCRAM credential exists)."""
    data_dir: Path = Path("var/services")
    namespace: str = "crm"
    """Prefix of MongoDB databases and consumer groups (tests use one of their own)."""
    topic_prefix: str = ""
    """Prefix of every Kafka topic name (see ``crm_backbone.topic_names``); none by default."""
    log_format: Literal["json", "console"] = "json"
    log_level: str = "INFO"
    oidc_issuer: str | None = None
    """The identity provider's issuer (Keycloak: ``http://host:port/realms/crm``): bearer
    tokens must come from it. None: the API validates no tokens."""
    oidc_audience: str = "crm-api"
    """The audience a token must name to call the CRM's APIs."""
    oidc_algorithms: tuple[str, ...] = ("RS256", "ES256", "PS256")
    """The signature algorithms accepted: public-key ones only (``none`` and HMAC never)."""
    oidc_jwks_uri: str | None = None
    """The signing keys' URL; by default the ``jwks_uri`` of the issuer's discovery document."""
    oidc_leeway_s: float = 10.0
    """Clock skew tolerated on ``exp`` and ``nbf``."""
    oidc_key_refresh_interval_s: float = 10.0
    """The least time between two fetches of the signing keys for unknown key ids."""
    position_cache_s: float = 5.0
    """How long an API process remembers where the organisation places a caller (0: it
    asks the org read model on every request): HR's changes reach access within it."""
    key_store: Literal["database", "openbao"] = "database"
    """What wraps the data subjects' keys (``crm_backbone.keys``): the master key ring
    (``master_keys``), or OpenBao's transit engine; the wrapped keys are in the key
    database either way."""
    key_database: Literal["sqlite", "postgres"] | None = None
    """The key database: ``<data_dir>/keys.sqlite``, or PostgreSQL's ``<namespace>_keys``;
    unset: the kind of the event store."""
    master_keys: SecretStr | None = None
    """The master key ring, ``id:base64url-key`` entries, the first current
    (``crm_backbone.keys.master``); else the secrets folder's ``keys/master-keys``."""
    openbao_addr: str = "http://127.0.0.1:18200"
    openbao_token: SecretStr | None = None
    """OpenBao's token; else the secrets folder's ``openbao/token``."""
    openbao_transit_mount: str = "transit"
    openbao_transit_key: str | None = None
    """The transit key wrapping the data keys; unset: ``<namespace>-subject-keys``."""
    key_cache_size: int = 10_000
    """How many data keys a process remembers (``KeySealer``)."""
    key_cache_ttl_s: float = 60.0
    """How long it remembers one: an erasure it does not hear of reaches it within this."""
    seal_personal_data: bool = True
    """Seal personal data in the event store and on Kafka (``crm_backbone.sealing``).
    Turned off only by the bench, to measure the relay and the projections without it."""

    @field_validator("topic_prefix")
    @classmethod
    def _kafka_accepts(cls, prefix: str) -> str:
        TopicNames(prefix)  # raises ValueError, reported as a settings error
        return prefix

    @field_validator("oidc_algorithms")
    @classmethod
    def _public_key_signatures(cls, algorithms: tuple[str, ...]) -> tuple[str, ...]:
        return check_algorithms(algorithms)

    def topic_names(self) -> TopicNames:
        """The deployment's topic names."""
        return TopicNames(self.topic_prefix)

    def mongo_database(self, service: str) -> str:
        """Each service reads and writes only its own MongoDB database (and its own
        PostgreSQL database), of this name; its user on both servers has the same name."""
        return credentials.database_name(self.namespace, service)

    def account(self, server: str, user: str) -> Account | None:
        """This process's account on ``server`` (``credentials.MONGODB`` or ``POSTGRESQL``),
        when a password is configured for it."""
        configured = self.mongo_password if server == MONGODB else self.postgres_password
        password = configured or credentials.read_secret(self.secrets_dir, server, user)
        return None if password is None else Account(user, password)

    def mongo_client_uri(self, process: str) -> str:
        """The URI ``process`` (a service, or ``ops``) connects to MongoDB with: as its own
        user when it has a password, else ``mongo_uri`` as it is."""
        return credentials.mongo_uri(
            self.mongo_uri, self.account(MONGODB, self.mongo_database(process))
        )

    def postgres_client_dsn(self, service: str) -> str:
        """The DSN of the service's own PostgreSQL database, as its own role. Without a
        password, ``postgres_dsn``'s user, which creates the database when missing (the
        local profiles); a service with a role of its own never creates a database."""
        database = self.mongo_database(service)
        account = self.account(POSTGRESQL, database)
        if account is None:
            return ensure_database(self.postgres_dsn, database)
        return credentials.postgres_dsn(self.postgres_dsn, account, database)

    def kafka_client_options(self, principal: str) -> dict[str, Any]:
        """The login options of an aiokafka client (``crm_backbone.kafka.kafka_broker`` for
        faststream) of ``principal``, or of ``kafka_username`` when set: SCRAM-SHA-512 over
        SASL_PLAINTEXT when a password is configured, else none (plaintext)."""
        user = self.kafka_username or principal
        folder = self.kafka_secrets_dir or (self.secrets_dir and self.secrets_dir / KAFKA)
        password = self.kafka_password
        if password is None and folder is not None and (folder / user).is_file():
            password = SecretStr((folder / user).read_text().strip())
        if password is None:
            return {}
        return {
            "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": self.kafka_sasl_mechanism,
            "sasl_plain_username": user,
            "sasl_plain_password": password.get_secret_value(),
        }

    def key_database_location(self, process: str) -> Path | str:
        """The key database's SQLite file, or the DSN of PostgreSQL's ``<namespace>_keys``
        as ``process``'s own role (a service's, or ``ops``'s; without a password, the
        address's user, which creates the database when missing)."""
        if (self.key_database or self.event_store) == "sqlite":
            return self.data_dir / "keys.sqlite"
        database = credentials.database_name(self.namespace, KEY_STORE)
        account = self.account(POSTGRESQL, self.mongo_database(process))
        if account is None:
            return ensure_database(self.postgres_dsn, database)
        return credentials.postgres_dsn(self.postgres_dsn, account, database)

    def master_key_ring(self) -> SecretStr | None:
        """The master key ring's text, from ``CRM_MASTER_KEYS`` or the secrets folder."""
        return self.master_keys or credentials.read_secret(self.secrets_dir, KEY_STORE, MASTER_KEYS)

    def openbao_credential(self) -> SecretStr | None:
        """OpenBao's token, from ``CRM_OPENBAO_TOKEN`` or the secrets folder."""
        return self.openbao_token or credentials.read_secret(self.secrets_dir, OPENBAO, "token")

    def event_store_config(self, service: str) -> EventStoreConfig:
        """An SQLite file under ``data_dir``, or the service's own PostgreSQL database."""
        if self.event_store == "sqlite":
            return EventStoreConfig(sqlite_path=self.data_dir / service / "events.sqlite")
        return EventStoreConfig(postgres_dsn=self.postgres_client_dsn(service))


def ensure_database(server_dsn: str, name: str) -> str:
    """Create database ``name`` on the server of ``server_dsn`` if missing; its DSN."""
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')
    return credentials.postgres_dsn(server_dsn, None, name)


def configure_logging(service: str, level: str = "INFO", fmt: str = "json") -> None:
    """Structured logs on stderr: one JSON object per line (or readable, for a terminal)."""
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(service=service)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(message)s")
