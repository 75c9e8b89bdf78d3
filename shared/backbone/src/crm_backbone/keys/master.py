"""Master keys: what wraps the data keys a key database holds.

:class:`MasterKeyRing` is a ring from configuration (``CRM_MASTER_KEYS``, or the secrets
folder's ``keys/master-keys``): ``id:key`` entries (the key 32 bytes in base64url),
separated by commas or new lines, the first the current one. Rotation without downtime:
put a new key first (every process, in any order: each still unwraps with the old one),
run ``DatabaseKeyStore.rewrap``, then drop the old key from the ring.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from dataclasses import dataclass
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from crm_backbone.keys.cipher import DATA_KEY_BYTES, NONCE_BYTES
from crm_backbone.keys.subject_keys import KeyStoreError, MasterKeyError

_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class KeyWrapper(Protocol):
    """Wraps and unwraps data keys under a master key, the subject bound to each."""

    def current_id(self) -> str:
        """The id of the master key new wraps use; a key wrapped under another is rewrapped."""
        ...

    def wrap(self, subject: str, data_key: bytes) -> tuple[bytes, str]:
        """``data_key`` wrapped for ``subject``, and the id of the master key used."""
        ...

    def unwrap(self, subject: str, wrapped: bytes, master_key_id: str) -> bytes:
        """The data key; :class:`MasterKeyError` when no master key available opens it."""
        ...


def _associated_data(subject: str) -> bytes:
    return b"crm-data-key\0" + subject.encode()


@dataclass(frozen=True)
class MasterKeyRing:
    """Master keys by id, the first current (AES-256-GCM key wrapping)."""

    keys: tuple[tuple[str, bytes], ...]

    def __post_init__(self) -> None:
        if not self.keys:
            raise KeyStoreError("the master key ring is empty")
        ids = [key_id for key_id, _ in self.keys]
        if len(set(ids)) != len(ids):
            raise KeyStoreError("the master key ring names an id twice")
        for key_id, key in self.keys:
            if not _ID.match(key_id) or len(key) != DATA_KEY_BYTES:
                raise KeyStoreError(
                    f"master key {key_id!r}: ids are 1-64 of [A-Za-z0-9_.-], keys 32 bytes"
                )

    @classmethod
    def parse(cls, text: str) -> MasterKeyRing:
        """A ring from ``id:base64url-key`` entries separated by commas or new lines."""
        keys = []
        for entry in re.split(r"[,\s]+", text.strip()):
            key_id, colon, encoded = entry.partition(":")
            if not colon:
                raise KeyStoreError("a master key entry is `id:base64url-key`")
            try:
                key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), b"-_", validate=True)
            except (binascii.Error, ValueError) as error:
                raise KeyStoreError(f"master key {key_id!r} is not base64url") from error
            keys.append((key_id, key))
        return cls(tuple(keys))

    @staticmethod
    def new_entry(key_id: str) -> str:
        """A fresh master key as a ring entry (``id:base64url-key``)."""
        key = base64.urlsafe_b64encode(AESGCM.generate_key(bit_length=256)).decode()
        return f"{key_id}:{key.rstrip('=')}"

    def current_id(self) -> str:
        return self.keys[0][0]

    def wrap(self, subject: str, data_key: bytes) -> tuple[bytes, str]:
        key_id, key = self.keys[0]
        nonce = os.urandom(NONCE_BYTES)
        return nonce + AESGCM(key).encrypt(nonce, data_key, _associated_data(subject)), key_id

    def unwrap(self, subject: str, wrapped: bytes, master_key_id: str) -> bytes:
        key = dict(self.keys).get(master_key_id)
        if key is None:
            raise MasterKeyError(f"master key {master_key_id!r} is not in the ring")
        try:
            return AESGCM(key).decrypt(
                wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], _associated_data(subject)
            )
        except InvalidTag as error:
            raise MasterKeyError(
                f"master key {master_key_id!r} of the ring does not open a data key wrapped "
                "under that id: not the same key"
            ) from error
