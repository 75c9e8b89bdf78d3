"""Where the launcher keeps caches (downloads) and state (data, logs, PID files)."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[4]
CACHE_DIR = Path(os.environ.get("CRM_CACHE_DIR", PROJECT_ROOT / ".cache")).resolve()
DEFAULT_STATE_DIR = PROJECT_ROOT / "var" / "infra"
KAFKA_POM = PROJECT_ROOT / "deploy" / "local" / "kafka" / "pom.xml"
KEYCLOAK_REALM_FILE = PROJECT_ROOT / "deploy" / "keycloak" / "crm-realm.json"
