"""The byte-level proof: an erased customer is in no byte of any store the CRM owns.

The four services run on the test's own topics and namespace (event stores on SQLite, then
on PostgreSQL). Three customers with distinctive generated strings (Latin and Chinese
names, phones, ID numbers, e-mails, streets) are registered through the API and a day of
work runs through every service: leads, contacts and opportunities naming them, needs in
free text, a campaign they respond to, core banking's accounts opened (and, for the one to
be erased, closed long ago). The data protection officer erases one. Then every store is
compacted and its bytes read (``store_bytes``): the event stores, the key database, the
Kafka log segments of the CRM's topics (events, dead letters, audit; the bank's ``bank.*``
topics are the bank's and are not read), every collection of every service's MongoDB
database. None holds any of the erased person's strings (UTF-8 or JSON-escaped), nor
their wrapped data key; each store shows what it should of the others (their ids, their
wrapped keys, their clear data in the views), so a reader that read nothing fails. The
others stay readable through the APIs. Every view is rebuilt, and the scan runs again.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterable
from datetime import date
from functools import partial
from pathlib import Path

import psycopg
import pytest
from crm_backbone import credentials
from crm_backbone.credentials import KEY_STORE
from crm_backbone.keys.database import TABLE
from crm_events import core_banking as cb
from local_infra.pytest_plugin import Servers

from tests.integration.conftest import eventually
from tests.integration.erasure_support import (
    Bank,
    Person,
    erase,
    forgotten,
    person,
    rebuild_views,
    register_and_work,
)
from tests.integration.store_bytes import (
    StoreBytes,
    forms,
    kafka_log_dir,
    kafka_segments,
    mongo_collections,
    postgres_tables,
    sqlite_files,
)
from tests.integration.test_audit_trail import Token, created_once_owners_known

pytestmark = pytest.mark.integration

SERVICES = ("customer", "opportunity", "contact-log", "campaign")
CAMPAIGN = {
    "name": "Autumn savings",
    "kind": "sms",
    "channels": ["phone", "sms", "email"],
    "target_segments": [{"value_band": band} for band in ("high", "medium", "low")],
    "criteria": {"branch_ids": ["BR-001"]},
    "owner_manager_ids": ["RM-0001"],
    "budget": {"amount": "6000.00", "currency": "CNY"},
    "planned_start": "2026-03-01",
    "planned_end": "2026-03-31",
}
SCHEDULE = {"starts_at": "2026-03-01T09:00:00+08:00", "ends_at": "2026-03-31T18:00:00+08:00"}


async def work_the_day(bank: Bank, who: Person, rm: Token) -> None:
    """A segment (campaigns target by it), an opportunity and a need about ``who`` in free
    text (the lead and contact are ``register_and_work``'s)."""
    segment = await bank.clients["customer"].post(
        f"/customers/{who.customer_id}/segment",
        json={"value_band": "medium", "reason": "annual review"},
        headers=rm.headers,
    )
    assert segment.is_success, segment.text
    opportunities = bank.clients["opportunity"]
    await created_once_owners_known(
        opportunities,
        "/opportunities",
        {
            "opportunity_id": f"OPP-{who.customer_id}",
            "customer_id": who.customer_id,
            "title": "Mortgage for a flat",
            "products": ["MORT-30Y"],
            "description": f"{who.full_name} ({who.chinese_name}) wants a flat near {who.street}",
            "expected_value": {"amount": "900000.00", "currency": "CNY"},
            "expected_close_date": "2026-12-31",
            "contacts": [who.full_name],
            "manager_id": "RM-0001",
            "branch_id": "BR-001",
            "source": "relationship_manager",
        },
        rm,
    )
    await created_once_owners_known(
        opportunities,
        "/needs",
        {
            "need_id": f"NEED-{who.customer_id}",
            "customer_id": who.customer_id,
            "kind": "need",
            "summary": f"{who.full_name} asks for a card",
            "content": f"Call {who.phone} or write to {who.email}; ID {who.id_number}",
            "severity": "low",
            "urgency": "normal",
            "channel": "phone",
        },
        rm,
    )


async def run_a_campaign(bank: Bank, people: Iterable[Person], campaign_id: str) -> None:
    """A campaign of the branch, started by the campaign service's account, each person's
    response reported by the channel gateway."""
    campaigns = bank.clients["campaign"]
    crm = bank.tokens.service("crm-campaign")
    gateway = bank.tokens.service("channel-gateway")

    created = await campaigns.post(
        "/campaigns", json=CAMPAIGN | {"campaign_id": campaign_id}, headers=crm
    )
    assert created.status_code == 201, created.text
    scheduled = await campaigns.post(
        f"/campaigns/{campaign_id}/schedule", json=SCHEDULE, headers=crm
    )
    assert scheduled.is_success, scheduled.text
    ids = [who.customer_id for who in people]

    async def segments_known() -> bool:
        audience = bank.handles["campaign"].database["audience"]
        banded = {"_id": {"$in": ids}, "value_band": "medium"}
        return await audience.count_documents(banded) == len(ids)

    await eventually(segments_known, "the campaign's audience knew the customers' segments")
    started = await campaigns.post(f"/campaigns/{campaign_id}/start", json={}, headers=crm)
    assert started.json()["targeted"] == len(ids), started.text
    for who in people:
        report = {
            "customer_id": who.customer_id,
            "channel": "phone",
            "stage": "contacted",
            "occurred_at": "2026-03-02T10:00:00+08:00",
        }
        answer = await campaigns.post(
            f"/campaigns/{campaign_id}/responses", json=report, headers=gateway
        )
        assert answer.json().get("recorded") is True, answer.text


async def open_account(bank: Bank, who: Person, *, closed_on: date | None) -> str:
    account = f"ACC-{who.customer_id}"
    opened = cb.AccountOpened(
        customer_id=who.customer_id,
        product_code="SAV-1",
        product_name="Savings",
        product_type=cb.ProductType.SAVINGS,
        currency="CNY",
        branch_id="BR-001",
        opened_on=date(2012, 1, 5),
    )
    await bank.core_banking(account, 1, opened)
    if closed_on is not None:
        closed = cb.AccountClosed(customer_id=who.customer_id, closed_on=closed_on)
        await bank.core_banking(account, 2, closed)
    return account


def key_database(bank: Bank, servers: Servers) -> tuple[Path | None, str]:
    """The key database's SQLite file, or (None and) its PostgreSQL database's name."""
    settings = bank.handles["customer"].settings
    if settings.event_store == "sqlite":
        return settings.data_dir / "keys.sqlite", ""
    return None, credentials.database_name(settings.namespace, KEY_STORE)


def wrapped_keys(bank: Bank, servers: Servers) -> dict[str, bytes]:
    """Every live subject's wrapped data key, as the key database holds it."""
    path, database = key_database(bank, servers)
    query = f"SELECT subject, wrapped_key FROM {TABLE} WHERE wrapped_key IS NOT NULL"
    if path is not None:
        with sqlite3.connect(path) as conn:
            return {subject: bytes(key) for subject, key in conn.execute(query)}
    dsn = psycopg.conninfo.make_conninfo(servers.postgres_dsn, dbname=database)
    with psycopg.connect(dsn) as conn:
        return {subject: bytes(key) for subject, key in conn.execute(query)}


def every_store(bank: Bank, servers: Servers) -> list[StoreBytes]:
    """Every store the CRM owns, compacted, as bytes."""
    settings = bank.handles["customer"].settings
    databases = [settings.mongo_database(service) for service in SERVICES]
    log_dir = kafka_log_dir(servers.kafka_bootstrap)
    if log_dir is None:
        pytest.skip("the Kafka broker's log segments are not on this machine")
    path, key_db = key_database(bank, servers)
    if path is not None:
        stores = [
            sqlite_files(settings.data_dir, "events.sqlite", "event store (SQLite files)"),
            sqlite_files(settings.data_dir, "keys.sqlite", "key database (SQLite file)"),
        ]
    else:
        stores = [
            postgres_tables(servers.postgres_dsn, database, f"event store {database}")
            for database in databases
        ]
        stores.append(postgres_tables(servers.postgres_dsn, key_db, "key database (PostgreSQL)"))
    return [
        *stores,
        kafka_segments(log_dir, settings.topic_names()),
        mongo_collections(servers.mongo_uri, databases),
    ]


def prove(
    stores: list[StoreBytes],
    erased: Person,
    kept: list[Person],
    keys: dict[str, bytes],
    when: str,
) -> None:
    """No store holds the erased person's strings nor their wrapped key; each holds what
    it should of the others. Prints the table (``-s``)."""
    leaks = [form for trace in erased.traces for form in forms(trace)]
    print(f"\n{when}\n{'store':<44}{'bytes':>12}{'hits':>6}")
    for store in stores:
        hits = store.found([*leaks, keys[erased.customer_id]])
        print(f"{store.store:<44}{store.size:>12}{len(hits):>6}")
        assert hits == [], f"{store.store} still holds the erased customer's data ({when})"
        ids = [who.customer_id.encode() for who in [erased, *kept]]
        assert store.found(ids) == ids, f"{store.store}: the scan did not read the customers"
        if store.store.startswith("key database"):
            others = [keys[who.customer_id] for who in kept]
            assert store.found(others) == others, "the others' wrapped keys were not read"
        if store.store.startswith("MongoDB"):
            clear = [form for who in kept for trace in who.traces for form in forms(trace)[:1]]
            assert store.found(clear) == clear, "the others' data is missing from the views"


@pytest.mark.parametrize("bank", ["sqlite", "postgres"], indirect=True)
async def test_an_erased_customer_is_in_no_byte_of_any_store(
    bank: Bank, crm_servers: Servers
) -> None:
    # Tokens live 5 minutes and the proof takes longer: each taken when used (renewed).
    erased, *kept = people = [person(bank.tag, n) for n in (1, 2, 3)]
    for who in people:
        await register_and_work(bank, who, bank.staff("rm-0001"))
        await work_the_day(bank, who, bank.staff("rm-0001"))
    await run_a_campaign(bank, people, f"CMP-{bank.tag}")
    await open_account(bank, erased, closed_on=date(2015, 3, 1))
    for who in kept:
        await open_account(bank, who, closed_on=None)
    customers = bank.clients["customer"]

    async def accounts_known() -> bool:
        statuses: list[str] = []
        for who in people:
            view = await customers.get(
                f"/customers/{who.customer_id}/view", headers=bank.staff("rm-0001").headers
            )
            statuses += [account.get("status") for account in view.json().get("accounts", [])]
        return statuses == ["closed", "open", "open"]

    await eventually(accounts_known, "the views knew the accounts")
    keys = wrapped_keys(bank, crm_servers)
    assert {who.customer_id for who in people} <= set(keys)

    await erase(bank, erased, bank.staff("dp-0001"))
    await eventually(partial(forgotten, bank, erased), "every view forgot the erased customer")
    assert erased.customer_id not in wrapped_keys(bank, crm_servers)
    # Read in a thread: the services' consumers keep their heartbeats meanwhile.
    stores = await asyncio.to_thread(every_store, bank, crm_servers)
    prove(stores, erased, kept, keys, "after the erasure")
    await others_readable(bank, kept)

    await rebuild_views(bank)
    stores = await asyncio.to_thread(every_store, bank, crm_servers)
    prove(stores, erased, kept, keys, "after rebuilding every view")
    await others_readable(bank, kept)


async def others_readable(bank: Bank, kept: list[Person]) -> None:
    """The other customers' data, in clear through the APIs of every service."""
    rm = bank.staff("rm-0001")
    for who in kept:
        view = await bank.clients["customer"].get(
            f"/customers/{who.customer_id}/view", headers=rm.headers
        )
        assert (view.json().get("name") or {}).get("full_name") == who.full_name, view.text
        found = await bank.clients["customer"].get(
            "/customers", params={"id_number": who.id_number}, headers=rm.headers
        )
        assert [i["customer_id"] for i in found.json()["items"]] == [who.customer_id]
        lead = await bank.clients["opportunity"].get(
            f"/leads/LEAD-{who.customer_id}", headers=rm.headers
        )
        assert lead.json()["contact_name"] == who.full_name, lead.text
        opportunity = await bank.clients["opportunity"].get(
            f"/opportunities/OPP-{who.customer_id}", headers=rm.headers
        )
        assert who.street in opportunity.json()["description"], opportunity.text
        contact = await bank.clients["contact-log"].get(
            f"/contacts/CT-{who.customer_id}", headers=rm.headers
        )
        assert who.phone in contact.text, contact.text
