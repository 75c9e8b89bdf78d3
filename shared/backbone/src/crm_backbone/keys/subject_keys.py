"""Where the data subjects' keys live: one 256-bit data key per subject, destroyed on erasure."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Protocol

from crm_events.personal import KeyDestroyed


class KeyStoreError(RuntimeError):
    """The key store cannot give a key: not reachable, or misconfigured."""


class MasterKeyError(KeyStoreError):
    """A data key that the master keys configured cannot unwrap: a wrong master key, or one
    removed from the ring before every key was rewrapped."""


class SubjectErased(KeyStoreError, KeyDestroyed):
    """The subject's key is destroyed: nothing more is sealed for them (a sealer writes
    the fields' erased forms instead: ``crm_events.personal.seal_payload``)."""

    def __init__(self, subject: str) -> None:
        super().__init__(f"the data key of subject {subject} is destroyed (erased)")
        self.subject = subject


class SubjectKeys(Protocol):
    """A key store: each data subject's key, made on first use, destroyed for good."""

    def key_for_writing(self, subject: str) -> bytes:
        """The subject's data key, made now if they have none; :class:`SubjectErased` once
        it was destroyed (never a new key for an erased subject)."""
        ...

    def key_for_reading(self, subject: str) -> bytes | None:
        """The subject's data key; None when it was destroyed or never made."""
        ...

    def keys_for_reading(self, subjects: Collection[str]) -> Mapping[str, bytes | None]:
        """:meth:`key_for_reading` of each of ``subjects``, in one round trip."""
        ...

    def destroy(self, subject: str) -> None:
        """Destroy the subject's key for good (idempotent): what it sealed no longer opens."""
        ...
