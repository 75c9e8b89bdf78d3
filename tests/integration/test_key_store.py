"""The key store on genuine servers: a SQLite file and PostgreSQL's key database, its data
keys wrapped by a master key ring or by a genuine OpenBao's transit engine.

Each combination: keys made once and read back (by another process too, and by writers
racing), a wrong master key refused loudly, a destroyed key gone for good (reads None,
writes refused, tokens no longer open), and the master key rotated without downtime (old
tokens open after the rotation, after ``rewrap``, and after the old master key is gone).
On PostgreSQL, as the services' own roles: only the customer service destroys keys.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
from crm_backbone.credentials import OPS
from crm_backbone.keys import KeySealer, MasterKeyError, SubjectErased
from crm_backbone.keys.database import (
    TABLE,
    DatabaseKeyStore,
    KeyDatabase,
    SqliteKeyDatabase,
)
from crm_backbone.keys.factory import key_database
from crm_backbone.keys.master import KeyWrapper, MasterKeyRing
from crm_backbone.keys.openbao import TransitKeyWrapper
from crm_backbone.settings import ServiceSettings
from local_infra.pytest_plugin import NamespaceAccounts, Servers
from local_infra.pytest_trust import OpenBao

pytestmark = pytest.mark.integration


class MasterKeys:
    """One kind of master key, as an operator turns it: ``wrapper`` is what the processes
    configured now use."""

    def wrapper(self) -> KeyWrapper:
        raise NotImplementedError

    def rotate(self) -> None:
        """A new current master key; the old one still unwraps."""
        raise NotImplementedError

    def retire(self) -> None:
        """Every master key but the current one gone."""
        raise NotImplementedError

    def wrong(self) -> KeyWrapper:
        """A wrapper whose master key is not the one the keys were wrapped under."""
        raise NotImplementedError


@dataclass
class Ring(MasterKeys):
    """``CRM_MASTER_KEYS``: entries, the first current."""

    entries: list[str] = field(default_factory=lambda: [MasterKeyRing.new_entry("m1")])

    def wrapper(self) -> KeyWrapper:
        return MasterKeyRing.parse(",".join(self.entries))

    def rotate(self) -> None:
        self.entries.insert(0, MasterKeyRing.new_entry(f"m{len(self.entries) + 1}"))

    def retire(self) -> None:
        del self.entries[1:]

    def wrong(self) -> KeyWrapper:
        return MasterKeyRing.parse(MasterKeyRing.new_entry(self.wrapper().current_id()))


@dataclass
class Transit(MasterKeys):
    """A transit key of OpenBao's, of this test's own."""

    openbao: OpenBao
    key_name: str = field(default_factory=lambda: f"t-{uuid.uuid4().hex[:12]}")

    def wrapper(self) -> TransitKeyWrapper:
        return self._connect(self.key_name)

    def rotate(self) -> None:
        self.wrapper().rotate()

    def retire(self) -> None:
        self.wrapper().retire_old_versions()

    def wrong(self) -> KeyWrapper:
        return self._connect(f"{self.key_name}-other")

    def _connect(self, key_name: str) -> TransitKeyWrapper:
        token = self.openbao.token.get_secret_value()
        return TransitKeyWrapper.connect(
            self.openbao.address, token, key_name, self.openbao.transit_mount
        )


@dataclass
class KeyStoreCase:
    """A key database, as each service's processes open it, and its master keys."""

    open_database: Callable[[str], KeyDatabase]
    master: MasterKeys
    opened: list[DatabaseKeyStore] = field(default_factory=list)

    def store(
        self, service: str = "customer", wrapper: KeyWrapper | None = None
    ) -> DatabaseKeyStore:
        """A process of ``service`` opening the key store with the master keys of now."""
        store = DatabaseKeyStore(self.open_database(service), wrapper or self.master.wrapper())
        self.opened.append(store)
        return store


def _settings(servers: Servers, accounts: NamespaceAccounts, service: str) -> ServiceSettings:
    return ServiceSettings(
        postgres_dsn=servers.postgres_dsn, key_database="postgres", **accounts.settings(service)
    )


@pytest.fixture(
    params=[
        ("sqlite", "ring"),
        ("postgres", "ring"),
        ("sqlite", "openbao"),
        ("postgres", "openbao"),
    ],
    ids=lambda p: "-".join(p),
)
def case(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[KeyStoreCase]:
    database_kind, master_kind = request.param
    master: MasterKeys = (
        Ring() if master_kind == "ring" else Transit(request.getfixturevalue("openbao"))
    )
    if database_kind == "sqlite":
        path = tmp_path / "keys.sqlite"
        case = KeyStoreCase(lambda _service: SqliteKeyDatabase(path), master)
    else:
        servers: Servers = request.getfixturevalue("crm_servers")
        accounts: NamespaceAccounts = request.getfixturevalue("namespace_accounts")
        case = KeyStoreCase(
            lambda service: key_database(_settings(servers, accounts, service), service),
            master,
        )
    yield case
    for store in case.opened:
        store.close()


def _subject() -> str:
    return f"c-{uuid.uuid4()}"


def test_a_key_is_made_once_and_read_back_by_every_process(case: KeyStoreCase) -> None:
    store, other_process = case.store(), case.store("opportunity")
    subject = _subject()
    assert store.key_for_reading(subject) is None
    key = store.key_for_writing(subject)
    assert len(key) == 32
    assert store.key_for_writing(subject) == key
    assert store.key_for_reading(subject) == key
    assert other_process.key_for_reading(subject) == key
    assert other_process.key_for_writing(_subject()) != key


def test_writers_racing_for_a_new_subject_agree_on_one_key(case: KeyStoreCase) -> None:
    stores = [case.store(), case.store("contact-log")]
    subject = _subject()
    with ThreadPoolExecutor(max_workers=8) as pool:
        keys = set(pool.map(lambda i: stores[i % 2].key_for_writing(subject), range(16)))
    assert len(keys) == 1
    assert stores[0].key_for_reading(subject) in keys


def test_a_wrong_master_key_is_refused_not_taken_for_an_erasure(case: KeyStoreCase) -> None:
    subject = _subject()
    case.store().key_for_writing(subject)
    wrong = case.store(wrapper=case.master.wrong())
    with pytest.raises(MasterKeyError):
        wrong.key_for_reading(subject)
    with pytest.raises(MasterKeyError):
        wrong.key_for_writing(subject)


def test_a_destroyed_key_is_gone_for_good(case: KeyStoreCase) -> None:
    store = case.store()
    erased, kept = _subject(), _subject()
    sealer = KeySealer(store)
    tokens = {s: sealer.seal(s, b'"Ouyang Xiaoming 13912345678"') for s in (erased, kept)}
    store.destroy(erased)
    store.destroy(erased)  # idempotent
    assert store.key_for_reading(erased) is None
    with pytest.raises(SubjectErased):
        store.key_for_writing(erased)
    another_process = KeySealer(case.store("campaign"))
    assert another_process.open(erased, tokens[erased]) is None
    assert another_process.open(kept, tokens[kept]) == b'"Ouyang Xiaoming 13912345678"'
    never_made = _subject()
    store.destroy(never_made)
    with pytest.raises(SubjectErased):
        store.key_for_writing(never_made)
    rows = store.database.query(
        f"SELECT subject FROM {TABLE} WHERE wrapped_key IS NOT NULL AND subject IN (%s, %s)",
        (erased, never_made),
    )
    assert rows == []


def test_the_master_key_rotates_without_downtime(case: KeyStoreCase) -> None:
    before = case.store()
    subjects = [_subject() for _ in range(3)]
    sealer = KeySealer(before)
    tokens = {s: sealer.seal(s, s.encode()) for s in subjects}
    erased = subjects.pop()
    before.destroy(erased)
    old_id = before.wrapper.current_id()
    old_wrapped = {
        s: before.database.query(f"SELECT wrapped_key FROM {TABLE} WHERE subject = %s", (s,))[0][0]
        for s in subjects
    }

    case.master.rotate()
    during = case.store()  # a process restarted with the new key first
    assert during.wrapper.current_id() != old_id
    assert all(KeySealer(during).open(s, tokens[s]) == s.encode() for s in subjects)
    assert KeySealer(before).open(subjects[0], tokens[subjects[0]]) == subjects[0].encode()
    newcomer = _subject()
    tokens[newcomer] = KeySealer(during).seal(newcomer, b"new")

    assert during.rewrap() == len(subjects)
    assert during.rewrap() == 0
    case.master.retire()
    after = case.store()
    opened = KeySealer(after)
    assert all(opened.open(s, tokens[s]) == s.encode() for s in subjects)
    assert opened.open(newcomer, tokens[newcomer]) == b"new"
    assert opened.open(erased, tokens[erased]) is None
    for subject, wrapped in old_wrapped.items():
        with pytest.raises(MasterKeyError):
            after.wrapper.unwrap(subject, bytes(wrapped), old_id)


def test_only_the_customer_service_destroys_keys_and_ops_only_reads(
    crm_servers: Servers, namespace_accounts: NamespaceAccounts
) -> None:
    master = Ring()
    ring = master.wrapper()
    stores = {
        process: DatabaseKeyStore(
            key_database(_settings(crm_servers, namespace_accounts, process), process), ring
        )
        for process in ("customer", "opportunity", OPS)
    }
    customer, opportunity, ops = stores.values()
    try:
        subject = _subject()
        key = opportunity.key_for_writing(subject)
        assert customer.key_for_reading(subject) == key
        assert ops.key_for_reading(subject) == key
        master.rotate()
        for refused in (
            lambda: opportunity.destroy(subject),
            lambda: opportunity.destroy(_subject()),  # not even a tombstone of its own
            lambda: DatabaseKeyStore(opportunity.database, master.wrapper()).rewrap(),
            lambda: ops.key_for_writing(_subject()),
            lambda: ops.destroy(subject),
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                refused()
        customer.destroy(subject)
        assert opportunity.key_for_reading(subject) is None
        with pytest.raises(SubjectErased):
            opportunity.key_for_writing(subject)
    finally:
        for store in stores.values():
            store.close()
