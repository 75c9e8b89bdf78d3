"""``crm_events.personal.FieldSealer`` on a key store, with a small memory of data keys."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from crm_backbone.keys import cipher
from crm_backbone.keys.subject_keys import SubjectKeys


class KeySealer:
    """Seals and opens personal data under each subject's key from ``keys``.

    Data keys are remembered (at most ``capacity``, the least recently used go first) for
    ``ttl_s`` seconds, so a hot subject costs no key store round trip; :meth:`forget` drops
    a subject at once (a service learning of an erasure). Another process's erasure reaches
    this one within ``ttl_s`` even unheard of. That a subject has no key is remembered too,
    for opening only (a token exists only once its key did, so it was destroyed): a view
    rebuilt after an erasure asks the store once per subject, not once per field.
    What is remembered is each key's cipher, made once. :meth:`prefetch` reads the keys of
    many subjects in one query (a consumer, before opening a batch of records, in a thread).
    """

    def __init__(
        self,
        keys: SubjectKeys,
        *,
        capacity: int = 10_000,
        ttl_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if capacity < 1:
            raise ValueError("a key cache holds at least one key")
        self.keys = keys
        self.capacity = capacity
        self.ttl_s = ttl_s
        self._clock = clock
        self._remembered: OrderedDict[str, tuple[AESGCM | None, float]] = OrderedDict()
        self._lock = threading.Lock()

    def seal(self, subject: str, plaintext: bytes) -> str:
        """A token of ``plaintext``; ``SubjectErased`` once the subject's key is destroyed."""
        _, key = self._recall(subject)
        if key is None:  # not remembered, or remembered as erased: the store decides
            key = self._remember(subject, self.keys.key_for_writing(subject))
            assert key is not None
        return cipher.seal(key, subject, plaintext)

    def open(self, subject: str, token: str) -> bytes | None:
        """The plaintext of ``token``; None when the subject's key is destroyed or was never
        made. An altered token, or another subject's, raises ``cipher.UnreadableToken``."""
        known, key = self._recall(subject)
        if not known:
            key = self._remember(subject, self.keys.key_for_reading(subject))
        if key is None:
            return None
        return cipher.open_token(key, subject, token)

    def prefetch(self, subjects: Iterable[str]) -> None:
        """Remember the keys of those of ``subjects`` not remembered, read in one query
        (blocking: call it in a thread from an event loop)."""
        with self._lock:
            now = self._clock()
            missing = {s for s in subjects if self._remembered.get(s, (None, 0.0))[1] <= now}
        if missing:
            for subject, key in self.keys.keys_for_reading(missing).items():
                if key is not None:  # no key yet, or destroyed: decided as it is opened
                    self._remember(subject, key)

    def destroy(self, subject: str) -> None:
        """Destroy the subject's key in the store, and forget it here at once (erasure)."""
        self.keys.destroy(subject)
        self.forget(subject)

    def forget(self, subject: str) -> None:
        """Drop the subject's key from memory (it is read again from the store if needed)."""
        with self._lock:
            self._remembered.pop(subject, None)

    def _recall(self, subject: str) -> tuple[bool, AESGCM | None]:
        """Whether the subject is remembered, and its key (None: remembered as having none)."""
        with self._lock:
            entry = self._remembered.get(subject)
            if entry is None:
                return False, None
            key, expires = entry
            if self._clock() >= expires:
                del self._remembered[subject]
                return False, None
            self._remembered.move_to_end(subject)
            return True, key

    def _remember(self, subject: str, key: bytes | None) -> AESGCM | None:
        """Remember the subject's key (None: it has none) as its cipher; the cipher."""
        aead = None if key is None else cipher.aead(key)
        with self._lock:
            self._remembered[subject] = (aead, self._clock() + self.ttl_s)
            self._remembered.move_to_end(subject)
            while len(self._remembered) > self.capacity:
                self._remembered.popitem(last=False)
        return aead
