"""The cipher, the master key ring, the sealer's memory of keys and the key store's
configuration (the stores themselves, on genuine servers:
``tests/integration/test_key_store.py``)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from crm_backbone.keys import KeySealer, KeyStoreError, MasterKeyError, SubjectErased
from crm_backbone.keys.__main__ import cli as rotation_cli
from crm_backbone.keys.cipher import UnreadableToken, is_token, new_data_key, open_token, seal
from crm_backbone.keys.database import DatabaseKeyStore, SqliteKeyDatabase
from crm_backbone.keys.factory import key_database, key_wrapper, subject_keys
from crm_backbone.keys.master import MasterKeyRing
from crm_backbone.keys.memory import InMemoryKeys
from crm_backbone.settings import ServiceSettings
from crm_events.personal import SEALED_SCHEMA, FieldSealer
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr
from typer.testing import CliRunner

subjects = st.text(min_size=1, max_size=40)
plaintexts = st.binary(max_size=300)
data_keys = st.binary(min_size=32, max_size=32)


@given(data_keys, subjects, plaintexts)
def test_a_token_opens_to_its_plaintext(key: bytes, subject: str, plaintext: bytes) -> None:
    token = seal(key, subject, plaintext)
    assert is_token(token)
    assert re.match(SEALED_SCHEMA["pattern"], token)
    assert open_token(key, subject, token) == plaintext


@given(data_keys, subjects, subjects, plaintexts)
def test_a_token_is_bound_to_its_subject(
    key: bytes, subject: str, other: str, plaintext: bytes
) -> None:
    token = seal(key, subject, plaintext)
    if other != subject:
        with pytest.raises(UnreadableToken):
            open_token(key, other, token)


@given(data_keys, data_keys, subjects, plaintexts)
def test_another_key_does_not_open_a_token(
    key: bytes, other: bytes, subject: str, plaintext: bytes
) -> None:
    token = seal(key, subject, plaintext)
    if other != key:
        with pytest.raises(UnreadableToken):
            open_token(other, subject, token)


@given(data_keys, subjects, plaintexts, st.data())
def test_an_altered_token_does_not_open(
    key: bytes, subject: str, plaintext: bytes, data: st.DataObject
) -> None:
    token = seal(key, subject, plaintext)
    position = data.draw(st.integers(min_value=4, max_value=len(token) - 1))
    replacement = data.draw(st.sampled_from("AQgw-_=.%"))
    altered = token[:position] + replacement + token[position + 1 :]
    truncated = token[: data.draw(st.integers(min_value=0, max_value=len(token) - 1))]
    for broken in {altered, truncated} - {token}:
        with pytest.raises(UnreadableToken):
            open_token(key, subject, broken)


def test_two_seals_of_one_value_differ() -> None:
    key = new_data_key()
    assert seal(key, "c-1", b'"Wang Fang"') != seal(key, "c-1", b'"Wang Fang"')


def test_a_clear_value_is_no_token() -> None:
    assert not is_token("Wang Fang")
    assert not is_token(None)
    with pytest.raises(UnreadableToken):
        open_token(new_data_key(), "c-1", "Wang Fang")


@given(subjects, data_keys)
def test_the_ring_unwraps_what_it_wrapped_for_that_subject(subject: str, key: bytes) -> None:
    ring = MasterKeyRing.parse(MasterKeyRing.new_entry("m1"))
    wrapped, key_id = ring.wrap(subject, key)
    assert key_id == "m1"
    assert ring.unwrap(subject, wrapped, key_id) == key
    with pytest.raises(MasterKeyError):
        ring.unwrap(subject + "x", wrapped, key_id)


def test_a_ring_with_a_new_current_key_still_unwraps_with_the_old() -> None:
    old = MasterKeyRing.new_entry("m1")
    wrapped, key_id = MasterKeyRing.parse(old).wrap("c-1", b"k" * 32)
    rotated = MasterKeyRing.parse(f"{MasterKeyRing.new_entry('m2')},\n{old}")
    assert rotated.current_id() == "m2"
    assert rotated.unwrap("c-1", wrapped, key_id) == b"k" * 32
    with pytest.raises(MasterKeyError, match="not in the ring"):
        MasterKeyRing.parse(MasterKeyRing.new_entry("m2")).unwrap("c-1", wrapped, key_id)
    with pytest.raises(MasterKeyError, match="not the same key"):
        MasterKeyRing.parse(MasterKeyRing.new_entry("m1")).unwrap("c-1", wrapped, key_id)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "m1",
        "m1:not base64!",
        "m1:AAAA",
        "bad id:" + "A" * 43,
        "m1:" + "A" * 43 + ",m1:" + "B" * 43,
    ],
)
def test_a_malformed_ring_is_refused(text: str) -> None:
    with pytest.raises(KeyStoreError):
        MasterKeyRing.parse(text)


def test_the_sealer_seals_and_opens_and_an_erased_subject_opens_to_none() -> None:
    keys = InMemoryKeys()
    sealer: FieldSealer = KeySealer(keys)  # the contracts' protocol (checked by mypy)
    token = sealer.seal("c-1", b'"13912345678"')
    assert sealer.open("c-1", token) == b'"13912345678"'
    assert sealer.open("c-2", sealer.seal("c-2", b"x")) == b"x"
    keys.destroy("c-1")
    assert isinstance(sealer, KeySealer)
    sealer.forget("c-1")
    assert sealer.open("c-1", token) is None
    with pytest.raises(SubjectErased):
        sealer.seal("c-1", b"again")
    assert sealer.open("never-seen", token) is None


def test_the_sealer_remembers_keys_for_a_while_and_the_fewest_recent_go_first() -> None:
    keys = InMemoryKeys()
    now = [0.0]
    sealer = KeySealer(keys, capacity=2, ttl_s=10, clock=lambda: now[0])
    tokens = {s: sealer.seal(s, s.encode()) for s in ("a", "b")}
    reads = keys.reads
    assert sealer.open("a", tokens["a"]) == b"a"
    assert keys.reads == reads  # remembered
    sealer.seal("c", b"c")  # "b", least recently used, is dropped
    assert sealer.open("a", tokens["a"]) == b"a"
    assert keys.reads == reads + 1
    assert sealer.open("b", tokens["b"]) == b"b"
    assert keys.reads == reads + 2
    now[0] = 10.0  # every key has expired
    keys.destroy("a")
    assert sealer.open("a", tokens["a"]) is None
    reads = keys.reads
    assert sealer.open("a", tokens["a"]) is None  # remembered as erased
    assert keys.reads == reads
    with pytest.raises(SubjectErased):
        sealer.seal("a", b"a")  # the store, not the memory, refuses


def test_prefetching_reads_the_keys_of_many_subjects_at_once(tmp_path: Path) -> None:
    store = DatabaseKeyStore(
        SqliteKeyDatabase(tmp_path / "keys.sqlite"),
        MasterKeyRing.parse(MasterKeyRing.new_entry("m1")),
    )
    writer = KeySealer(store)
    tokens = {s: writer.seal(s, s.encode()) for s in ("a", "b", "c")}
    writer.destroy("c")
    keys = InMemoryKeys()  # counts what reaches the store; answers as the database did
    keys.keys = dict(store.keys_for_reading([*tokens, "never-seen"]))
    assert keys.keys["never-seen"] is None
    assert keys.keys["c"] is None
    reader = KeySealer(keys)
    reader.prefetch([*tokens, "never-seen"])
    reader.prefetch(["a", "b"])  # remembered: the store is not asked again
    assert keys.reads == 1
    assert [reader.open(s, t) for s, t in tokens.items()] == [b"a", b"b", None]
    assert keys.reads == 2  # no key is not remembered by a prefetch: asked as it opens


@pytest.fixture(autouse=True)
def no_configured_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MASTER_KEYS", "SECRETS_DIR", "OPENBAO_TOKEN", "KEY_STORE", "KEY_DATABASE"):
        monkeypatch.delenv(f"CRM_{name}", raising=False)
    monkeypatch.setenv("CRM_EVENT_STORE", "sqlite")


def test_the_database_key_store_is_configured_from_the_settings(tmp_path: Path) -> None:
    ring = MasterKeyRing.new_entry("m1")
    settings = ServiceSettings(data_dir=tmp_path, master_keys=SecretStr(ring))
    database = key_database(settings, "customer")
    assert isinstance(database, SqliteKeyDatabase)
    database.close()
    assert (tmp_path / "keys.sqlite").is_file()
    assert key_wrapper(settings) == MasterKeyRing.parse(ring)


def test_the_master_keys_come_from_the_secrets_folder(tmp_path: Path) -> None:
    ring = MasterKeyRing.new_entry("m1")
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "master-keys").write_text(ring + "\n")
    settings = ServiceSettings(data_dir=tmp_path, secrets_dir=tmp_path)
    assert key_wrapper(settings) == MasterKeyRing.parse(ring)


def test_without_a_master_key_the_key_store_is_refused(tmp_path: Path) -> None:
    with pytest.raises(KeyStoreError, match="no master key"):
        key_wrapper(ServiceSettings(data_dir=tmp_path))
    with pytest.raises(KeyStoreError, match="no token"):
        key_wrapper(ServiceSettings(data_dir=tmp_path, key_store="openbao"))


def test_the_operator_rotates_the_ring_with_rewrap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old, new = MasterKeyRing.new_entry("m1"), MasterKeyRing.new_entry("m2")
    monkeypatch.setenv("CRM_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CRM_MASTER_KEYS", old)
    store = subject_keys(ServiceSettings(), "customer")
    keys = {s: store.key_for_writing(s) for s in ("c-1", "c-2")}
    store.destroy("c-2")
    store.close()

    monkeypatch.setenv("CRM_MASTER_KEYS", f"{new},{old}")
    answer = CliRunner().invoke(rotation_cli, ["rewrap"])
    assert answer.exit_code == 0, answer.output
    assert "1 data keys rewrapped under m2" in answer.output

    monkeypatch.setenv("CRM_MASTER_KEYS", new)
    rotated = subject_keys(ServiceSettings(), "customer")
    assert rotated.key_for_reading("c-1") == keys["c-1"]
    assert rotated.key_for_reading("c-2") is None
    rotated.close()
