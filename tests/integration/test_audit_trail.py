"""The audit trail of a scripted day, on the genuine Keycloak, Kafka and MongoDB.

The customer, opportunity and contact-log services run side by side on topics of the
test's own, with the simulated bank's organisation published to them. Staff of the realm
work through the APIs with their own tokens: a relationship manager registers a customer,
opens an opportunity and logs a contact; the branch manager changes the segment; the
campaign service's worker records an opt-out (its event produced to the campaign topic,
as a worker does: no client). The manager and the analyst read the customer's view, the
manager searches, reads the contact timeline and the opportunity, and a colleague out of
reach is refused (nothing shown, nothing recorded). The auditor's ``GET /audit`` then
answers exactly who did what and who read, through which client, in time order, by every
filter and page by page, and the same once ``crm-ops`` has rebuilt the trail; nobody
else may ask it, and the auditor may read no customer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
from crm_backbone.kafka_acls import OPS
from crm_backbone.organisation import STAFF
from crm_backbone.rebuild import rebuild
from crm_backbone.runtime import ServiceHandle
from crm_backbone.settings import ServiceSettings
from crm_backbone.topic_names import TopicNames
from crm_contactlog import bootstrap as contact_boot
from crm_customer import bootstrap as customer_boot
from crm_customer.audit_trail import AuditTrail
from crm_events.campaign import OptOutRequested
from crm_events.common import Channel
from crm_events.envelope import Envelope, to_kafka
from crm_events.topics import CAMPAIGN_EVENTS, Service
from crm_opportunity import bootstrap as opportunity_boot
from local_infra.harness import assert_problem, produce_plain
from local_infra.pytest_plugin import Servers, kafka_login
from local_infra.tokens import RealmTokens
from pymongo import AsyncMongoClient

from tests.integration.conftest import SettingsFor, eventually, served_services

pytestmark = pytest.mark.integration

STAFF_USED = {"RM-0001", "RM-0005", "BM-0001", "HO-0001", "AU-0001"}
CAMPAIGN_WORKER = "crm-campaign-worker"
"""The actor of the campaign worker's event (a worker acts through no client)."""


@dataclass(frozen=True)
class Token:
    """Who a token proves: the actor and client its events and reads record."""

    headers: dict[str, str]
    actor: str
    client: str


def token_of(headers: dict[str, str]) -> Token:
    claims = jwt.decode(headers["Authorization"].split()[1], options={"verify_signature": False})
    return Token(headers, claims["sub"], claims["azp"])


@dataclass
class Day:
    clients: dict[str, httpx.AsyncClient]
    handles: dict[str, ServiceHandle]
    tokens: RealmTokens
    bootstrap: str
    topic_prefix: str
    customer_id: str

    def staff(self, login: str) -> Token:
        return token_of(self.tokens.staff(login))


@pytest.fixture
async def day(
    crm_servers: Servers,
    unique_name: Callable[[str], str],
    topic_prefix: str,
    realm_tokens: RealmTokens,
    settings_for: SettingsFor,
) -> AsyncIterator[Day]:
    namespace = unique_name("audit")[:30]
    customer = customer_boot.bootstrap(
        settings_for(customer_boot.CustomerSettings, namespace=namespace)
    )
    opportunity = opportunity_boot.bootstrap(
        settings_for(opportunity_boot.OpportunitySettings, namespace=namespace)
    )
    contact_log = contact_boot.bootstrap(
        settings_for(contact_boot.ContactLogSettings, namespace=namespace)
    )
    handles: dict[str, ServiceHandle] = {
        "customer": customer,
        "opportunity": opportunity,
        "contact-log": contact_log,
    }
    async with served_services(handles, crm_servers.kafka_bootstrap, topic_prefix, staff_known) as (
        clients
    ):
        yield Day(
            clients,
            handles,
            realm_tokens,
            crm_servers.kafka_bootstrap,
            topic_prefix,
            f"C-{unique_name('')[-8:]}",
        )
    cleaner: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(crm_servers.mongo_uri)
    for name in handles:
        await cleaner.drop_database(ServiceSettings(namespace=namespace).mongo_database(name))
    await cleaner.close()


async def staff_known(handle: ServiceHandle) -> bool:
    placed = await handle.database[STAFF].count_documents({"_id": {"$in": sorted(STAFF_USED)}})
    return placed == len(STAFF_USED)


async def created_once_owners_known(
    client: httpx.AsyncClient, path: str, body: dict[str, Any], token: Token
) -> httpx.Response:
    """POST a creating command about the day's customer, once the service's copy of the
    customer's owners holds it (until then it answers, rightly, that there is no such
    customer: 404, nothing written)."""
    answer: httpx.Response | None = None

    async def accepted() -> bool:
        nonlocal answer
        answer = await client.post(path, json=body, headers=token.headers)
        return answer.status_code != 404

    await eventually(accepted, f"{path} knew the customer")
    assert answer is not None
    assert answer.status_code == 201, answer.text
    return answer


async def campaign_worker_records_an_opt_out(day: Day, at: datetime) -> None:
    """What the campaign service's worker publishes when a target opts out through a
    campaign's message: an event of its own aggregate, caused by no client."""
    opt_out = OptOutRequested(customer_id=day.customer_id, channel=Channel.SMS, occurred_at=at)
    envelope = Envelope.new(
        opt_out, f"CMP-{day.customer_id}", 4, actor=CAMPAIGN_WORKER, source=Service.CAMPAIGN.source
    )
    record = to_kafka(envelope)
    await produce_plain(
        day.bootstrap,
        [(CAMPAIGN_EVENTS.name, (record.key, record.value, record.headers))],
        name=TopicNames(day.topic_prefix),
    )


Entry = tuple[str, str, str, str, str | None]
"""(kind, service, event type, actor, client) of an audit entry."""


async def the_days_work(day: Day) -> tuple[list[Entry], datetime]:
    """Work through the APIs as the day's staff; what the trail must then hold (its
    order: each step waits for the last to be answered), and when the day began."""
    customer, rm, bm, analyst = (
        day.customer_id,
        day.staff("rm-0001"),
        day.staff("bm-0001"),
        day.staff("ho-0001"),
    )
    began = datetime.now(UTC) - timedelta(seconds=1)
    api = day.clients
    registered = await api["customer"].post(
        "/customers",
        json={
            "customer_id": customer,
            "customer_type": "individual",
            "name": {"full_name": "Audit Wang", "family_name": "Audit"},
            "phone": "+86 139 1234 5678",
            "branch_id": "BR-001",
        },
        headers=rm.headers,
    )
    assert registered.status_code == 201, registered.text
    segment = await api["customer"].post(
        f"/customers/{customer}/segment",
        json={"value_band": "high", "reason": "AUM above 5M CNY"},
        headers=bm.headers,
    )
    assert segment.status_code == 200, segment.text
    await created_once_owners_known(
        api["opportunity"],
        "/opportunities",
        {
            "opportunity_id": f"OPP-{customer}",
            "customer_id": customer,
            "title": "Wealth plan",
            "products": ["WM-GROWTH"],
            "expected_value": {"amount": "300000.00", "currency": "CNY"},
            "expected_close_date": "2027-02-28",
            "manager_id": "RM-0001",
            "branch_id": "BR-001",
            "source": "relationship_manager",
        },
        rm,
    )
    await created_once_owners_known(
        api["contact-log"],
        "/contacts",
        {
            "contact_id": f"CT-{customer}",
            "customer_id": customer,
            "category": "phone",
            "summary": "Discussed the wealth plan",
            "called": True,
            "outcome": "interested",
            "manager_id": "RM-0001",
            "started_at": datetime.now(UTC).isoformat(),
        },
        rm,
    )
    await campaign_worker_records_an_opt_out(day, datetime.now(UTC))

    version = segment.json()["version"]
    read_after = {"min_version": version, "wait_ms": 10_000}
    for reader in (rm, analyst):
        viewed = await api["customer"].get(
            f"/customers/{customer}/view", params=read_after, headers=reader.headers
        )
        assert viewed.status_code == 200, viewed.text
    searched = await api["customer"].get(
        "/customers", params={"name": "audit wang"}, headers=rm.headers
    )
    assert [item["customer_id"] for item in searched.json()["items"]] == [customer]
    timeline = await api["contact-log"].get(f"/customers/{customer}/timeline", headers=rm.headers)
    assert [item["contact_id"] for item in timeline.json()["items"]] == [f"CT-{customer}"]
    deal = await api["opportunity"].get(
        f"/opportunities/OPP-{customer}",
        params={"min_version": 1, "wait_ms": 10_000},
        headers=rm.headers,
    )
    assert deal.status_code == 200, deal.text
    colleague = day.staff("rm-0005")
    refused = await api["customer"].get(f"/customers/{customer}/view", headers=colleague.headers)
    assert_problem(refused, 404, "customer-not-found")

    changes: list[Entry] = [
        ("change", "customer", event_type, rm.actor, rm.client)
        for event_type in ("crm.customer.registered", "crm.customer.manager_assigned")
    ]
    changes += [
        ("change", "customer", "crm.customer.segment_changed", bm.actor, bm.client),
        ("change", "opportunity", "crm.opportunity.created", rm.actor, rm.client),
        ("change", "contact-log", "crm.contact.logged", rm.actor, rm.client),
        ("change", "campaign", "crm.campaign.opt_out_requested", CAMPAIGN_WORKER, None),
        # the customer service's policy withdraws the consent, as the opt-out's actor
        ("change", "customer", "crm.customer.consent_changed", CAMPAIGN_WORKER, None),
    ]
    reads: list[Entry] = [
        ("read", service, "crm.audit.personal_data_read", reader.actor, reader.client)
        for service, reader in (
            ("customer", rm),
            ("customer", analyst),
            ("customer", rm),
            ("contact-log", rm),
            ("opportunity", rm),
        )
    ]
    return changes + reads, began


def entry(item: dict[str, Any]) -> Entry:
    return item["kind"], item["service"], item["event_type"], item["actor"], item["client"]


async def trail(day: Day, auditor: Token, **filters: Any) -> list[dict[str, Any]]:
    """Every entry ``GET /audit`` answers for the day's customer, page by page (two a page)."""
    items: list[dict[str, Any]] = []
    params = {"customer_id": day.customer_id, "limit": 2, **filters}
    while True:
        page = await day.clients["customer"].get("/audit", params=params, headers=auditor.headers)
        assert page.status_code == 200, page.text
        items += page.json()["items"]
        if page.json()["next_cursor"] is None:
            return items
        params["cursor"] = page.json()["next_cursor"]


async def test_the_auditor_sees_who_did_what_and_who_read_through_which_client(
    day: Day,
) -> None:
    expected, began = await the_days_work(day)
    auditor = day.staff("au-0001")
    answered: list[dict[str, Any]] = []

    async def complete() -> bool:
        nonlocal answered
        answered = await trail(day, auditor)
        return len(answered) >= len(expected)

    await eventually(complete, "the trail held the day's work")
    print(
        *(f"{e['time']} {e['kind']:6} {e['event_type']:40} {e['client']}" for e in answered),
        sep="\n",
    )

    user_entries = [entry(item) for item in answered if item["client"] is not None]
    assert sorted(user_entries, key=str) == sorted(
        [e for e in expected if e[4] is not None], key=str
    )
    worker_entries = [item for item in answered if item["client"] is None]
    assert [entry(item) for item in worker_entries] == [e for e in expected if e[4] is None]
    opt_out, consent = worker_entries
    assert consent["correlation_id"] == opt_out["correlation_id"]  # one flow
    assert [item["time"] for item in answered] == sorted(item["time"] for item in answered)
    assert all(day.customer_id in item["customer_ids"] for item in answered)
    reads = [item for item in answered if item["kind"] == "read"]
    assert [(r["endpoint"], r["staff_id"], r["masked"]) for r in reads] == [
        ("GET /customers/{customer_id}/view", "RM-0001", False),
        ("GET /customers/{customer_id}/view", "HO-0001", True),
        ("GET /customers", "RM-0001", False),
        ("GET /customers/{customer_id}/timeline", "RM-0001", False),
        ("GET /opportunities/{opportunity_id}", "RM-0001", False),
    ]
    assert "Wang" not in str(answered)
    assert "1234" not in str(answered)

    rm = day.staff("rm-0001")
    by_filter = {
        "kind=read": await trail(day, auditor, kind="read"),
        "actor=rm-0001": await trail(day, auditor, actor=rm.actor),
        "service=opportunity": await trail(day, auditor, service="opportunity"),
        "before the day": await trail(day, auditor, to=began.isoformat()),
        "from the day": await trail(day, auditor, **{"from": began.isoformat()}),
    }
    assert by_filter["kind=read"] == reads
    assert by_filter["actor=rm-0001"] == [e for e in answered if e["actor"] == rm.actor]
    assert [entry(e) for e in by_filter["service=opportunity"]] == [
        ("change", "opportunity", "crm.opportunity.created", rm.actor, rm.client),
        ("read", "opportunity", "crm.audit.personal_data_read", rm.actor, rm.client),
    ]
    assert by_filter["before the day"] == []
    assert by_filter["from the day"] == answered

    # crm-ops rebuilds the trail from its streams (the live consumer paused meanwhile)
    customer_service = day.handles["customer"]
    await rebuild(
        AuditTrail(),
        customer_service.database,
        bootstrap=day.bootstrap,
        login=kafka_login(OPS),
        live_group=customer_service.runtime.group(AuditTrail.name),
        topics=TopicNames(day.topic_prefix).of(AuditTrail.topics),
    )
    assert await trail(day, auditor) == answered


async def test_only_the_auditor_reads_the_trail_and_the_auditor_reads_no_customer(
    day: Day,
) -> None:
    customer = day.clients["customer"]
    for login in ("rm-0001", "bm-0001", "ho-0001", "op-0001"):
        refused = await customer.get(
            "/audit", params={"customer_id": day.customer_id}, headers=day.staff(login).headers
        )
        assert_problem(refused, 403, "forbidden")
    service_account = day.tokens.service("crm-customer")
    assert_problem(await customer.get("/audit", headers=service_account), 403, "forbidden")

    auditor = day.staff("au-0001").headers
    for service, path in (
        ("customer", f"/customers/{day.customer_id}/view"),
        ("customer", "/customers"),
        ("opportunity", f"/opportunities/OPP-{day.customer_id}"),
        ("contact-log", f"/customers/{day.customer_id}/timeline"),
    ):
        assert_problem(await day.clients[service].get(path, headers=auditor), 403, "forbidden")
