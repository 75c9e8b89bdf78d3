"""``SubjectKeys`` in memory, for unit tests of what seals and opens personal data."""

from __future__ import annotations

from collections.abc import Collection

from crm_backbone.keys.cipher import new_data_key
from crm_backbone.keys.subject_keys import SubjectErased


class InMemoryKeys:
    """Data keys in a dict; a destroyed subject's entry is kept as None (the tombstone)."""

    def __init__(self) -> None:
        self.keys: dict[str, bytes | None] = {}
        self.reads = 0
        """Calls that reached the store (a sealer's memory spares them)."""

    def key_for_writing(self, subject: str) -> bytes:
        self.reads += 1
        key = self.keys.setdefault(subject, new_data_key())
        if key is None:
            raise SubjectErased(subject)
        return key

    def key_for_reading(self, subject: str) -> bytes | None:
        self.reads += 1
        return self.keys.get(subject)

    def keys_for_reading(self, subjects: Collection[str]) -> dict[str, bytes | None]:
        self.reads += 1
        return {subject: self.keys.get(subject) for subject in subjects}

    def destroy(self, subject: str) -> None:
        self.keys[subject] = None
