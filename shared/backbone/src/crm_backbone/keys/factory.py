"""The key store and sealer a service's settings configure (``ServiceSettings.key_*``)."""

from __future__ import annotations

from pathlib import Path

from crm_backbone.keys.database import (
    DatabaseKeyStore,
    KeyDatabase,
    PostgresKeyDatabase,
    SqliteKeyDatabase,
)
from crm_backbone.keys.master import KeyWrapper, MasterKeyRing
from crm_backbone.keys.openbao import TransitKeyWrapper
from crm_backbone.keys.sealer import KeySealer
from crm_backbone.keys.subject_keys import KeyStoreError
from crm_backbone.settings import ServiceSettings


def key_wrapper(settings: ServiceSettings) -> KeyWrapper:
    """The master key ring, or OpenBao's transit key, as configured."""
    if settings.key_store == "openbao":
        token = settings.openbao_credential()
        if token is None:
            raise KeyStoreError(
                "key store openbao: no token (CRM_OPENBAO_TOKEN, or openbao/token in the "
                "secrets folder)"
            )
        return TransitKeyWrapper.connect(
            settings.openbao_addr,
            token.get_secret_value(),
            settings.openbao_transit_key or f"{settings.namespace}-subject-keys",
            settings.openbao_transit_mount,
        )
    ring = settings.master_key_ring()
    if ring is None:
        raise KeyStoreError(
            "key store database: no master key (CRM_MASTER_KEYS, or keys/master-keys in the "
            "secrets folder)"
        )
    return MasterKeyRing.parse(ring.get_secret_value())


def key_database(settings: ServiceSettings, process: str) -> KeyDatabase:
    """The key database the settings name, as ``process`` (a service, or ``ops``) reaches
    it: on PostgreSQL as that process's own role."""
    location = settings.key_database_location(process)
    if isinstance(location, Path):
        return SqliteKeyDatabase(location)
    return PostgresKeyDatabase(location)


def subject_keys(settings: ServiceSettings, process: str) -> DatabaseKeyStore:
    """``process``'s key store."""
    return DatabaseKeyStore(key_database(settings, process), key_wrapper(settings))


def key_sealer(settings: ServiceSettings, process: str) -> KeySealer:
    """``process``'s ``FieldSealer``, remembering keys as the settings say."""
    return KeySealer(
        subject_keys(settings, process),
        capacity=settings.key_cache_size,
        ttl_s=settings.key_cache_ttl_s,
    )
