"""Data keys wrapped by OpenBao's transit engine: the master key never leaves OpenBao.

Which design, and why: per-subject data keys, wrapped by ONE transit key and kept in the
key database (``DatabaseKeyStore``), rather than a transit key per subject. The ciphers
run in the services with data keys they remember (``KeySealer``), so OpenBao is asked only
when a key is made or first read, never per field; one transit key, however many
customers; and the master key rotates as the issue asks: ``rotate`` adds a version,
``DatabaseKeyStore.rewrap`` wraps every data key again under it, and
``retire_old_versions`` deletes the old versions from OpenBao for good. The transit key
is derived per subject (``derived``, the subject as context), so a wrapped key moved to
another subject's row does not unwrap. Destroying a subject's key removes its wrapped
key (the tombstone of ``database.py``); what its old row version may leave behind is
wrapped under a master key that rotation retires.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import hvac
from hvac.exceptions import InvalidPath, InvalidRequest, VaultError
from requests import RequestException

from crm_backbone.keys.subject_keys import KeyStoreError, MasterKeyError


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class TransitKeyWrapper:
    """``KeyWrapper`` on the transit key ``key_name`` of the engine mounted at ``mount``."""

    def __init__(self, client: hvac.Client, key_name: str, mount: str = "transit") -> None:
        self.client = client
        self.key_name = key_name
        self.mount = mount
        self._transit = client.secrets.transit

    @classmethod
    def connect(
        cls, address: str, token: str, key_name: str, mount: str = "transit"
    ) -> TransitKeyWrapper:
        """A wrapper on OpenBao at ``address``; the transit key is created when missing."""
        wrapper = cls(hvac.Client(url=address, token=token, timeout=10), key_name, mount)
        wrapper.ensure_key()
        return wrapper

    def ensure_key(self) -> None:
        """Create the transit key (AES-256-GCM, derived per subject) unless it exists."""
        try:
            self._call(self._transit.read_key, self.key_name, mount_point=self.mount)
        except KeyStoreError as error:
            if not isinstance(error.__cause__, InvalidPath):
                raise
            self._call(
                self._transit.create_key,
                self.key_name,
                key_type="aes256-gcm96",
                derived=True,
                mount_point=self.mount,
            )

    def current_id(self) -> str:
        key = self._call(self._transit.read_key, self.key_name, mount_point=self.mount)
        return self._key_id(int(key["data"]["latest_version"]))

    def wrap(self, subject: str, data_key: bytes) -> tuple[bytes, str]:
        answer = self._call(
            self._transit.encrypt_data,
            self.key_name,
            plaintext=_b64(data_key),
            context=_b64(subject.encode()),
            mount_point=self.mount,
        )
        return answer["data"]["ciphertext"].encode("ascii"), self._key_id(
            int(answer["data"]["key_version"])
        )

    def unwrap(self, subject: str, wrapped: bytes, master_key_id: str) -> bytes:
        try:
            answer = self._call(
                self._transit.decrypt_data,
                self.key_name,
                ciphertext=wrapped.decode("ascii"),
                context=_b64(subject.encode()),
                mount_point=self.mount,
            )
        except KeyStoreError as error:
            if isinstance(error.__cause__, InvalidRequest):
                raise MasterKeyError(
                    f"transit key {master_key_id!r} does not open the data key (a retired "
                    "version, or not this key)"
                ) from error.__cause__
            raise
        return base64.b64decode(answer["data"]["plaintext"])

    def rotate(self) -> str:
        """A new version of the transit key, current from now on; its id."""
        self._call(self._transit.rotate_key, self.key_name, mount_point=self.mount)
        return self.current_id()

    def retire_old_versions(self) -> None:
        """Delete every version but the current one from OpenBao, for good: run after a
        ``rewrap`` pass, since what only they wrap no longer opens."""
        latest = int(self.current_id().rpartition(":v")[2])
        for setting in ("min_encryption_version", "min_decryption_version"):
            self._call(
                self._transit.update_key_configuration,
                self.key_name,
                mount_point=self.mount,
                **{setting: latest},
            )
        self._call(
            self._transit.trim_key, self.key_name, min_version=latest, mount_point=self.mount
        )

    def _key_id(self, version: int) -> str:
        return f"{self.key_name}:v{version}"

    @staticmethod
    def _call(operation: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``operation``'s answer; OpenBao's refusals and silence as ``KeyStoreError``."""
        try:
            return operation(*args, **kwargs)
        except (VaultError, RequestException) as error:
            raise KeyStoreError(f"OpenBao's transit engine: {error}") from error
