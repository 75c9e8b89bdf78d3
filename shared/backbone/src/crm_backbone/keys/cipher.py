"""The cipher of personal data: AES-256-GCM under the data subject's own key.

A token is ``pd1:`` followed by the base64url of a 96-bit random nonce and the ciphertext
with its 128-bit tag. The subject's id is the associated data: a token copied onto another
subject's record does not open, even where both keys were the same.
"""

from __future__ import annotations

import base64
import binascii
import os

from crm_events.personal import TOKEN_PREFIX
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

DATA_KEY_BYTES = 32
"""A data key: 256 bits."""
NONCE_BYTES = 12
TAG_BYTES = 16


class UnreadableToken(ValueError):
    """A token that is malformed, altered, or not sealed under this key and subject."""


def new_data_key() -> bytes:
    """A fresh random 256-bit data key."""
    return AESGCM.generate_key(bit_length=DATA_KEY_BYTES * 8)


def is_token(value: object) -> bool:
    """Whether ``value`` looks like a sealed value."""
    return isinstance(value, str) and value.startswith(TOKEN_PREFIX)


def aead(key: bytes | AESGCM) -> AESGCM:
    """The AES-GCM cipher of a data key (made once per key by a sealer that remembers it:
    making one costs more than sealing a field)."""
    return key if isinstance(key, AESGCM) else AESGCM(key)


def seal(key: bytes | AESGCM, subject: str, plaintext: bytes) -> str:
    """``plaintext`` sealed under ``key``, bound to ``subject``."""
    nonce = os.urandom(NONCE_BYTES)
    sealed = aead(key).encrypt(nonce, plaintext, subject.encode())
    return TOKEN_PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")


def open_token(key: bytes | AESGCM, subject: str, token: str) -> bytes:
    """The plaintext ``token`` holds; :class:`UnreadableToken` unless it was sealed under
    ``key`` for ``subject`` and is intact."""
    if not is_token(token):
        raise UnreadableToken("not a sealed value")
    body = token[len(TOKEN_PREFIX) :]
    try:
        raw = base64.urlsafe_b64decode(body)
    except (binascii.Error, ValueError) as error:
        raise UnreadableToken("a sealed value that is not base64url") from error
    if base64.urlsafe_b64encode(raw).decode("ascii") != body:
        # Characters outside base64url (which decoding skips), or unused low bits set in
        # the last character (another spelling of the same bytes): not what was sealed.
        # (Checked by encoding again: cheaper than validating while decoding.)
        raise UnreadableToken("a sealed value not in its canonical base64url")
    if len(raw) < NONCE_BYTES + TAG_BYTES:
        raise UnreadableToken("a sealed value too short to hold a nonce and a tag")
    try:
        return aead(key).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], subject.encode())
    except InvalidTag as error:
        raise UnreadableToken(
            "a sealed value that does not open: altered, another subject's, or another key's"
        ) from error
