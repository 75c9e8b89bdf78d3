"""What every test process shares."""

from __future__ import annotations

import os

import pytest
from crm_backbone.keys.master import MasterKeyRing


def pytest_configure(config: pytest.Config) -> None:
    """A master key ring of this session's own for the services tests bootstrap, which seal
    personal data as they do in production (no key lives in the code); one the
    environment gives (``CRM_MASTER_KEYS``) is kept."""
    os.environ.setdefault("CRM_MASTER_KEYS", MasterKeyRing.new_entry("test-session"))
