"""``docs/architecture.md`` names the files that implement each part: every file or
folder it names exists, so a module that moves cannot leave the map pointing nowhere."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "architecture.md"
SOURCE_ROOTS = [
    ROOT,
    *sorted(ROOT.glob("shared/*/src")),
    *sorted(ROOT.glob("services/*/src")),
    *sorted(ROOT.glob("deploy/*/src")),
]
NAMED_PATH = re.compile(r"`((?:crm_|services/|shared/|deploy/)[\w./-]*(?:\.py|/))`")


def test_the_architecture_doc_names_only_files_that_exist() -> None:
    named = set(NAMED_PATH.findall(DOC.read_text()))
    assert len(named) > 20, "the doc should name the files that implement each part"
    missing = sorted(
        path for path in named if not any((root / path).exists() for root in SOURCE_ROOTS)
    )
    assert missing == []
