"""Erasing a customer through the API, on the genuine Keycloak, Kafka, MongoDB and key store.

The four services run side by side on topics of the test's own. A relationship manager
registers two customers with distinctive names, phones, e-mails and ID numbers, captures
a lead and logs a contact for each; core banking opens an account for the first. The data
protection officer's erasure is refused while the account is open (409 naming the hold),
and after core banking closed it long enough ago it succeeds. Then every service's views
have forgotten the first person, byte for byte (every document of every collection of the
four databases is searched for their strings), while the other customer's data is intact
and found; the erased customer answers that it was erased, when and by whom; a command on
it is 410; searches by the name, phone or ID number find nobody; the lead reads erased.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import partial
from typing import Any

import httpx
import pytest
from crm_backbone.kafka_acls import OPS
from crm_backbone.organisation import STAFF
from crm_backbone.rebuild import rebuild
from crm_backbone.runtime import ServiceHandle
from crm_backbone.settings import ServiceSettings
from crm_backbone.topic_names import TopicNames
from crm_campaign import api as campaign_api
from crm_campaign import bootstrap as campaign_boot
from crm_contactlog import api as contact_api
from crm_contactlog import bootstrap as contact_boot
from crm_customer import api as customer_api
from crm_customer import bootstrap as customer_boot
from crm_events import core_banking as cb
from crm_events.envelope import Envelope, to_kafka
from crm_events.registry import EventPayload
from crm_events.topics import COREBANKING_ACCOUNTS, Service
from crm_opportunity import api as opportunity_api
from crm_opportunity import bootstrap as opportunity_boot
from fastapi import FastAPI
from local_infra.harness import assert_problem, produce_plain, serving
from local_infra.pytest_plugin import Servers, kafka_login
from local_infra.tokens import RealmTokens
from pymongo import AsyncMongoClient

from tests.integration.conftest import SettingsFor, publish_organisation
from tests.integration.test_audit_trail import (
    Token,
    created_once_owners_known,
    eventually,
    token_of,
)

pytestmark = pytest.mark.integration

STAFF_USED = {"RM-0001", "DP-0001"}
REBUILT = {"customer_view", "contact_log_view", "derived_tasks", "opportunity_view", "audience"}
"""The views of the four services that hold customers' data."""
REQUEST = {"legal_basis": "pipl_art47_3_consent_withdrawn", "reason": "request DPR-IT"}


@dataclass(frozen=True)
class Person:
    customer_id: str
    full_name: str
    phone: str
    email: str
    id_number: str

    @property
    def traces(self) -> tuple[str, ...]:
        """What of the person a store could hold: name parts, phone digits, ID, e-mail."""
        digits = "".join(c for c in self.phone if c.isdigit())
        return (*self.full_name.split(), digits[-8:], self.id_number, self.email.split("@")[0])


def person(tag: str, n: int) -> Person:
    """A customer whose strings occur nowhere else (``tag`` unique to the test)."""
    letters = "".join(chr(ord("a") + int(d)) for d in tag)
    number = f"{n}{tag}"[-8:].rjust(8, "7")
    return Person(
        customer_id=f"C-{tag}-{n}",
        full_name=f"Quill{letters}{'xy'[n % 2]}on Varesk{letters}{n}",
        phone=f"+86 139 {number[:4]} {number[4:]}",
        email=f"qv{letters}{n}@example.com",
        id_number=f"11010119800101{number[-4:]}"[:17] + str(n % 10),
    )


@dataclass
class Bank:
    clients: dict[str, httpx.AsyncClient]
    handles: dict[str, ServiceHandle]
    tokens: RealmTokens
    bootstrap: str
    topic_prefix: str
    tag: str

    def staff(self, login: str) -> Token:
        return token_of(self.tokens.staff(login))

    async def core_banking(self, account: str, version: int, payload: EventPayload) -> None:
        envelope = Envelope.new(
            payload, account, version, actor="core-banking", source=Service.CORE_BANKING.source
        )
        record = to_kafka(envelope)
        await produce_plain(
            self.bootstrap,
            [(COREBANKING_ACCOUNTS.name, (record.key, record.value, record.headers))],
            name=TopicNames(self.topic_prefix),
        )


@pytest.fixture
async def bank(
    crm_servers: Servers,
    unique_name: Callable[[str], str],
    topic_prefix: str,
    realm_tokens: RealmTokens,
    settings_for: SettingsFor,
) -> AsyncIterator[Bank]:
    namespace = unique_name("erasure")[:30]
    customer = customer_boot.bootstrap(
        settings_for(customer_boot.CustomerSettings, namespace=namespace)
    )
    opportunity = opportunity_boot.bootstrap(
        settings_for(opportunity_boot.OpportunitySettings, namespace=namespace)
    )
    contact_log = contact_boot.bootstrap(
        settings_for(contact_boot.ContactLogSettings, namespace=namespace)
    )
    campaign = campaign_boot.bootstrap(
        settings_for(campaign_boot.CampaignSettings, namespace=namespace)
    )
    handles: dict[str, ServiceHandle] = {
        "customer": customer,
        "opportunity": opportunity,
        "contact-log": contact_log,
        "campaign": campaign,
    }
    apps: dict[str, FastAPI] = {
        "customer": customer_api.create_app(customer),
        "opportunity": opportunity_api.create_app(opportunity),
        "contact-log": contact_api.create_app(contact_log),
        "campaign": campaign_api.create_app(campaign),
    }
    async with AsyncExitStack() as stack:
        clients = {
            name: await stack.enter_async_context(
                httpx.AsyncClient(
                    base_url=await stack.enter_async_context(serving(app)), timeout=30
                )
            )
            for name, app in apps.items()
        }
        await publish_organisation(crm_servers.kafka_bootstrap, topic_prefix)
        for handle in handles.values():
            await eventually(partial(staff_known, handle), "the organisation reached a service")
        yield Bank(
            clients,
            handles,
            realm_tokens,
            crm_servers.kafka_bootstrap,
            topic_prefix,
            "".join(c for c in unique_name("") if c.isdigit())[-6:].rjust(6, "3"),
        )
    cleaner: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(crm_servers.mongo_uri)
    for name in apps:
        await cleaner.drop_database(ServiceSettings(namespace=namespace).mongo_database(name))
    await cleaner.close()


async def staff_known(handle: ServiceHandle) -> bool:
    placed = await handle.database[STAFF].count_documents({"_id": {"$in": sorted(STAFF_USED)}})
    return placed == len(STAFF_USED)


async def rebuild_views(bank: Bank) -> None:
    """Rebuild every view that holds customers' data, as ``crm-ops rebuild`` does."""
    for handle in bank.handles.values():
        runtime = handle.runtime
        for projection in runtime.components.projections:
            if projection.name in REBUILT:
                await rebuild(
                    projection,
                    handle.database,
                    bootstrap=bank.bootstrap,
                    login=kafka_login(OPS),
                    live_group=runtime.group(projection.name),
                    topics=TopicNames(bank.topic_prefix).of(projection.topics),
                    sealer=runtime.sealer,
                )


async def stored_text(bank: Bank) -> str:
    """Every document of every collection of the four services' databases, as text."""
    texts = []
    for handle in bank.handles.values():
        for name in await handle.database.list_collection_names():
            async for document in handle.database[name].find():
                texts.append(json.dumps(document, default=str, ensure_ascii=False))
    return "\n".join(texts)


async def register_and_work(bank: Bank, who: Person, rm: Token) -> str:
    """Register ``who`` into rm's book, capture a lead and log a contact naming them; the
    lead's id."""
    registered = await bank.clients["customer"].post(
        "/customers",
        json={
            "customer_id": who.customer_id,
            "customer_type": "individual",
            "name": {"full_name": who.full_name, "family_name": who.full_name.split()[1]},
            "phone": who.phone,
            "email": who.email,
            "birth_date": "1980-01-01",
            "id_documents": [
                {"kind": "national_id", "number": who.id_number, "issuing_country": "CN"}
            ],
            "branch_id": "BR-001",
            "status": "active",
        },
        headers=rm.headers,
    )
    assert registered.status_code == 201, registered.text
    lead_id = f"LEAD-{who.customer_id}"
    await created_once_owners_known(
        bank.clients["opportunity"],
        "/leads",
        {
            "lead_id": lead_id,
            "customer_id": who.customer_id,
            "contact_name": who.full_name,
            "phone": who.phone,
            "source": "walk_in",
            "branch_id": "BR-001",
            "notes": f"{who.full_name} asked about a mortgage",
        },
        rm,
    )
    await created_once_owners_known(
        bank.clients["contact-log"],
        "/contacts",
        {
            "contact_id": f"CT-{who.customer_id}",
            "customer_id": who.customer_id,
            "category": "phone",
            "summary": f"Called {who.full_name} on {who.phone}",
            "called": True,
            "outcome": "interested",
            "manager_id": "RM-0001",
            "started_at": datetime.now(UTC).isoformat(),
        },
        rm,
    )
    return lead_id


async def test_an_erased_customer_is_forgotten_by_every_view_and_the_others_stay(
    bank: Bank,
) -> None:
    rm, dpo = bank.staff("rm-0001"), bank.staff("dp-0001")
    erased, kept = person(bank.tag, 1), person(bank.tag, 2)
    customers = bank.clients["customer"]
    lead_of = {who.customer_id: await register_and_work(bank, who, rm) for who in (erased, kept)}
    account = f"ACC-{erased.customer_id}"
    await bank.core_banking(
        account,
        1,
        cb.AccountOpened(
            customer_id=erased.customer_id,
            product_code="SAV-1",
            product_name="Savings",
            product_type=cb.ProductType.SAVINGS,
            currency="CNY",
            branch_id="BR-001",
            opened_on=date(2012, 1, 5),
        ),
    )

    async def view_of(who: Person) -> dict[str, Any]:
        answer = await customers.get(f"/customers/{who.customer_id}/view", headers=rm.headers)
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    async def account_is(status: str) -> bool:
        accounts = (await view_of(erased))["accounts"]
        return [a.get("status") for a in accounts] == [status]

    async def leads_known() -> bool:
        document = (
            await bank.handles["customer"]
            .database["customers"]
            .find_one({"_id": erased.customer_id})
        )
        return lead_of[erased.customer_id] in (document or {}).get("lead_ids", [])

    await eventually(partial(account_is, "open"), "the view knew the open account")
    await eventually(leads_known, "the view knew the customer's lead")
    refused = await customers.post(
        f"/customers/{erased.customer_id}/erasure", json=REQUEST, headers=dpo.headers
    )
    holds = assert_problem(refused, 409, "legal-hold")["holds"]
    assert [hold["kind"] for hold in holds] == ["open_accounts"]

    await bank.core_banking(
        account, 2, cb.AccountClosed(customer_id=erased.customer_id, closed_on=date(2015, 3, 1))
    )
    await eventually(partial(account_is, "closed"), "the view knew the account closed")
    done = await customers.post(
        f"/customers/{erased.customer_id}/erasure", json=REQUEST, headers=dpo.headers
    )
    assert done.status_code == 200, done.text

    async def forgotten() -> bool:
        text = (await stored_text(bank)).lower()
        return not any(trace.lower() in text for trace in erased.traces)

    await eventually(forgotten, "every view forgot the erased customer")
    text = (await stored_text(bank)).lower()
    assert all(trace.lower() in text for trace in kept.traces)
    await rebuild_views(bank)  # crm-ops rebuilds them from the streams: still forgotten
    assert await forgotten()
    text = (await stored_text(bank)).lower()
    assert all(trace.lower() in text for trace in kept.traces)

    view = await view_of(erased)
    assert view["erased"]["erased_by"] == dpo.actor
    assert view["erased"]["legal_basis"] == REQUEST["legal_basis"]
    assert view["name"] is None
    assert view["accounts"][0]["account_id"] == account  # a non-personal fact stays
    assert (await view_of(kept))["name"]["full_name"] == kept.full_name

    for who, expected in ((erased, []), (kept, [kept.customer_id])):
        for search in ({"name": who.full_name}, {"phone": who.phone}, {"id_number": who.id_number}):
            found = await customers.get("/customers", params=search, headers=rm.headers)
            assert [i["customer_id"] for i in found.json()["items"]] == expected, search

    changed = await customers.patch(
        f"/customers/{erased.customer_id}/profile", json={"email": "x@y.cn"}, headers=rm.headers
    )
    assert_problem(changed, 410, "customer-erased")
    leads = bank.clients["opportunity"]
    erased_lead = await leads.get(f"/leads/{lead_of[erased.customer_id]}", headers=rm.headers)
    assert erased_lead.json()["contact_name"] == "[erased]", erased_lead.text
    kept_lead = await leads.get(f"/leads/{lead_of[kept.customer_id]}", headers=rm.headers)
    assert kept_lead.json()["contact_name"] == kept.full_name

    async def audited() -> bool:
        params = {"customer_id": erased.customer_id}
        audit = await customers.get("/audit", params=params, headers=dpo.headers)
        types = [item["event_type"] for item in audit.json()["items"]]
        assert set(types) <= {"crm.customer.erased"}, types  # the officer's: erasures only
        return types == ["crm.customer.erased"]

    await eventually(audited, "the officer read the erasure in the audit trail")
