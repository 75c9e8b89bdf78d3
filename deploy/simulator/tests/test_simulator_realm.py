"""The realm's staff users are generated from the organisation: the committed file is
current, a stale one is reported (and only rewritten without ``--check``), and whatever
the file holds besides the staff users is kept."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from crm_simulator.realm import REALM_FILE, main, realm_text, staff_users, subject_of
from hypothesis import given
from hypothesis import strategies as st

NAMES = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x2FFF), min_size=1, max_size=12)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | NAMES,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(NAMES, inner, max_size=3),
    max_leaves=8,
)
SERVICE_ACCOUNTS = st.lists(
    st.fixed_dictionaries({"username": NAMES, "serviceAccountClientId": NAMES}), max_size=3
)
HAND_WRITTEN = st.dictionaries(NAMES.filter(lambda name: name != "users"), JSON_VALUES)


def test_the_committed_realm_file_is_current() -> None:
    assert main(["--check"]) == 0
    current = REALM_FILE.read_text(encoding="utf-8")
    assert realm_text(current) == current


def test_a_stale_file_is_reported_by_check_and_rewritten_without(tmp_path: Path) -> None:
    stale = tmp_path / "realm.json"
    stale.write_text(json.dumps({"realm": "crm", "users": []}), encoding="utf-8")
    before = stale.read_text(encoding="utf-8")
    assert main(["--check", "--file", str(stale)]) == 1
    assert stale.read_text(encoding="utf-8") == before
    assert main(["--file", str(stale)]) == 0
    assert main(["--check", "--file", str(stale)]) == 0
    assert json.loads(stale.read_text(encoding="utf-8"))["users"] == staff_users()


def test_staff_users_are_unique_and_their_ids_are_uuids_stable_across_runs() -> None:
    users = staff_users()
    assert users == staff_users()
    assert len({user["username"] for user in users}) == len(users)
    assert len({user["id"] for user in users}) == len(users)
    assert subject_of("RM-0001") == "12e16011-ce21-5870-aaf0-92952aa01edc"
    assert all(len(user["id"]) == 36 and user["id"].count("-") == 4 for user in users)


@given(hand_written=HAND_WRITTEN, service_accounts=SERVICE_ACCOUNTS, old_staff=JSON_VALUES)
def test_everything_but_the_staff_users_is_kept(
    hand_written: dict[str, Any], service_accounts: list[dict[str, Any]], old_staff: Any
) -> None:
    users = [{"username": "someone", "staff": old_staff}, *service_accounts]
    generated = realm_text(json.dumps({**hand_written, "users": users}))
    realm = json.loads(generated)
    assert realm == {**hand_written, "users": staff_users() + service_accounts}
    assert realm_text(generated) == generated
