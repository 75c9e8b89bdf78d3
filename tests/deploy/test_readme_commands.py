"""Every command the READMEs show runs in a plain shell after ``make setup``: it is a make
target, a command line the workspace installs, called by its path in ``.venv/bin``
(``uv`` is on the Makefile's PATH only, so no README command starts with it), or a
program ``make setup`` installs from Debian's packages (``curl``) or every system has
(``cat``)."""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
READMES = [
    ROOT / "README.md",
    *sorted(ROOT.glob("services/*/README.md")),
    *sorted(ROOT.glob("deploy/*/README.md")),
]
SHELL_BLOCKS = {"sh", "bash", "shell", "console"}
ASSIGNMENT = re.compile(r"^[A-Z_][A-Z0-9_]*=")
SUBSTITUTION = re.compile(r"\$\(([^()]*)\)")
"""``$(command)``: the inner command is checked like any other."""
BOOTSTRAP = ROOT / "deploy" / "local" / "bootstrap.sh"
SYSTEM_PROGRAMS = {"curl"}
"""Programs ``make setup`` installs (deploy/local/bootstrap.sh) when a machine lacks them."""
BASE_PROGRAMS = {"cat"}
"""Programs every system has (coreutils)."""


def commands(readme: Path) -> list[str]:
    """The commands in ``readme``: shell code blocks, and ``$ `` lines of the others."""
    found: list[str] = []
    language: str | None = None
    pending = ""
    for line in readme.read_text().splitlines():
        if line.startswith("```"):
            language = None if language is not None else line[3:].strip()
            continue
        if language is None:
            continue
        if language not in SHELL_BLOCKS:
            if line.startswith("$ "):
                found.append(line[2:])
            continue
        text = pending + line.split(" #")[0].strip()
        if text.endswith("\\"):
            pending = text[:-1] + " "
            continue
        pending = ""
        if text:
            found.append(text)
    return found


def scripts() -> set[str]:
    """The command lines the workspace's packages install."""
    declared: set[str] = set()
    for pyproject in ROOT.glob("**/pyproject.toml"):
        if ".venv" in pyproject.parts or ".cache" in pyproject.parts:
            continue
        declared |= set(tomllib.loads(pyproject.read_text()).get("project", {}).get("scripts", {}))
    return declared


def make_targets() -> set[str]:
    return set(re.findall(r"^([a-z][a-z-]*):", (ROOT / "Makefile").read_text(), re.MULTILINE))


def simple_commands(command: str) -> list[str]:
    """``command`` and the commands substituted in it (``TOKEN=$(...)``), each alone."""
    return [*SUBSTITUTION.findall(command), SUBSTITUTION.sub("value", command)]


def test_every_readme_command_runs_in_a_plain_shell_after_make_setup() -> None:
    installed, targets = scripts(), make_targets()
    seen = 0
    for readme in READMES:
        for line in commands(readme):
            where = f"{readme.relative_to(ROOT)}: {line}"
            for command in simple_commands(line):
                words = [w for w in shlex.split(command, comments=True) if not ASSIGNMENT.match(w)]
                seen += 1
                if not words:  # only assignments, or a comment
                    continue
                if words[0] == "make":
                    assert set(words[1:2]) <= targets, where
                elif words[0] in SYSTEM_PROGRAMS | BASE_PROGRAMS:
                    continue
                elif words[0] == "export":
                    assert all(ASSIGNMENT.match(w) for w in words[1:]), where
                else:
                    program = Path(words[0])
                    assert program.parent == Path(".venv/bin"), where
                    assert program.name in installed, where
    assert seen > 5


def test_a_substituted_command_is_checked_on_its_own() -> None:
    assert simple_commands("TOKEN=$(.venv/bin/crm-infra token rm-0001)") == [
        ".venv/bin/crm-infra token rm-0001",
        "TOKEN=value",
    ]


def test_make_setup_installs_the_system_programs_readmes_call() -> None:
    script = BOOTSTRAP.read_text()
    for program in SYSTEM_PROGRAMS:
        assert f"command -v {program} >/dev/null || missing+=({program})" in script
