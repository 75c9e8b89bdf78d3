"""Each data subject's key, and the cipher sealing their personal data under it.

- ``cipher``: AES-256-GCM tokens (``pd1:``), the subject bound as associated data;
- ``subject_keys``: the ``SubjectKeys`` protocol and its errors (``SubjectErased``);
- ``sealer``: ``KeySealer``, the contracts' ``FieldSealer`` with a memory of keys;
- ``master``, ``openbao``: what wraps the data keys (a master key ring from configuration,
  or OpenBao's transit engine);
- ``database``: ``DatabaseKeyStore``, the wrapped keys on SQLite or PostgreSQL;
- ``factory``: the store and sealer a service's settings configure.
"""

from crm_backbone.keys.sealer import KeySealer
from crm_backbone.keys.subject_keys import (
    KeyStoreError,
    MasterKeyError,
    SubjectErased,
    SubjectKeys,
)

__all__ = ["KeySealer", "KeyStoreError", "MasterKeyError", "SubjectErased", "SubjectKeys"]
