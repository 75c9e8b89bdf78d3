"""The dormancy rule end to end, and the worklists' HTTP answers, on the genuine servers.

The customer service runs with its relay and consumers on the test's Kafka topics and
MongoDB, the genuine Keycloak's tokens: customers registered through the API, core
banking's balances published to its topic (some twice, one account's before the
customers exist). The sweep moves exactly the active customers quiet for more than 90
days (computed here from the balances sent) to dormant, as a status event whose actor is
the rule and whose reason names it; their manager reverses it with the status command,
and the next sweep leaves the customer active. ``crm-ops rebuild`` of the balance history
gives the documents the live consumer built.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from crm_backbone.rebuild import rebuild
from crm_backbone.topic_names import TopicNames
from crm_customer.balance_history import BALANCE_HISTORY, BalanceHistory
from crm_customer.bootstrap import CustomerService
from crm_customer.dormancy import DORMANCY_ACTOR, DormancySweep
from crm_events import core_banking as cb
from crm_events.common import Money
from crm_events.envelope import Envelope, to_kafka
from crm_events.registry import EventPayload
from crm_events.topics import Service, topic_for
from crm_ops.kafka_state import ops_login
from local_infra.harness import assert_problem, produce_plain
from local_infra.pytest_plugin import Servers
from local_infra.tokens import RealmTokens

from tests.integration.conftest import eventually
from tests.integration.test_customer_scope import service  # noqa: F401 (a fixture)

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC).replace(microsecond=0)
QUIET_FOR = {"quiet": 130, "busy": 10, "elsewhere": 120}
"""Days since each customer's last balance change (the book's time: the latest, 10)."""
STATUS_CHANGED = "crm.customer.status_changed"
OWNER = {"quiet": "RM-0001", "busy": "RM-0001", "elsewhere": "RM-0002"}


def balance_records(customer_id: str, days_ago: int) -> list[tuple[str, tuple[Any, Any, Any]]]:
    account = f"{customer_id}.SAV"
    opened_at = NOW - timedelta(days=days_ago + 5)
    events: list[EventPayload] = [
        cb.AccountOpened(
            customer_id=customer_id,
            product_code="SAV1",
            product_name="Savings",
            product_type=cb.ProductType.SAVINGS,
            currency="CNY",
            branch_id="BR-001",
            opened_on=opened_at.date(),
        ),
        cb.HoldingBalanceChanged(
            customer_id=customer_id,
            product_type=cb.ProductType.SAVINGS,
            previous_balance=Money(amount=Decimal(0), currency="CNY"),
            balance=Money(amount=Decimal(50_000), currency="CNY"),
            changed_at=NOW - timedelta(days=days_ago),
        ),
    ]
    records = []
    for version, payload in enumerate(events, start=1):
        envelope = Envelope.new(
            payload,
            account,
            version,
            actor="core-banking",
            source=Service.CORE_BANKING.source,
            time=opened_at,
        )
        record = to_kafka(envelope)
        topic = topic_for(payload.event_type).name
        records.append((topic, (record.key, record.value, record.headers)))
    return records


async def test_the_rule_makes_quiet_customers_dormant_and_a_manager_reverses_it(
    service: tuple[CustomerService, str],  # noqa: F811
    crm_servers: Servers,
    topic_prefix: str,
    realm_tokens: RealmTokens,
    unique_name: Callable[[str], str],
) -> None:
    handle, url = service
    run = unique_name("")[-8:]
    ids = {label: f"C-{run}-{label}" for label in QUIET_FOR}
    crm = realm_tokens.service("crm-customer")
    rm1, rm2 = realm_tokens.staff("rm-0001"), realm_tokens.staff("rm-0002")
    analyst = realm_tokens.staff("ho-0001")
    records = [r for label in QUIET_FOR for r in balance_records(ids[label], QUIET_FOR[label])]
    # One customer's account arrives before the customer exists, and twice.
    await produce_plain(crm_servers.kafka_bootstrap, records[:2] * 2, name=TopicNames(topic_prefix))
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        for label, customer_id in ids.items():
            body = {
                "customer_id": customer_id,
                "customer_type": "individual",
                "name": {"full_name": f"Dormancy{run} {label}"},
                "status": "active",
                "branch_id": "BR-001",
                "manager_id": OWNER[label],
            }
            created = await client.post("/customers", json=body, headers=crm)
            assert created.status_code == 201, created.text
        await produce_plain(crm_servers.kafka_bootstrap, records, name=TopicNames(topic_prefix))

        async def worklist(headers: dict[str, str], **params: str) -> dict[str, Any]:
            answer = await client.get(
                "/worklists/churn", params={"name": f"dormancy{run}", **params}, headers=headers
            )
            assert answer.status_code == 200, answer.text
            body: dict[str, Any] = answer.json()
            return body

        book_day = (NOW - timedelta(days=QUIET_FOR["busy"])).date().isoformat()

        async def projected() -> bool:
            body = await worklist(analyst, signal="no_transaction")
            listed = {i["customer_id"] for i in body["items"]}
            return body["as_of"] == book_day and listed == {ids["quiet"], ids["elsewhere"]}

        await eventually(projected, "the balances reached the worklist")
        mine = await worklist(rm1)
        assert {i["customer_id"] for i in mine["items"]} == {ids["quiet"], ids["busy"]}
        assert {i["customer_id"] for i in (await worklist(rm2))["items"]} == {ids["elsewhere"]}
        masked = (await worklist(analyst))["items"][0]["name"]["full_name"]
        assert "*" in masked
        refused = await client.get("/worklists/churn", params={"signal": "nonsense"}, headers=rm1)
        assert_problem(refused, 422, "invalid-request")
        bad_cursor = await client.get("/worklists/churn", params={"cursor": "x"}, headers=rm1)
        assert bad_cursor.status_code == 400, bad_cursor.text
        unauthenticated = await client.get("/worklists/cross-sell")
        assert unauthenticated.status_code == 401
        cross_sell = await client.get("/worklists/cross-sell", headers=rm1)
        assert cross_sell.status_code == 200, cross_sell.text

        sweep = DormancySweep(
            handle.application, handle.worklists, dormancy_days=90, interval_s=3600
        )
        expected = {ids[label] for label, days in QUIET_FOR.items() if days - 10 > 90}
        assert await sweep.sweep() == len(expected)
        for label, customer_id in ids.items():
            customer = (await client.get(f"/customers/{customer_id}", headers=crm)).json()
            assert (customer["status"] == "dormant") is (customer_id in expected), label
        dormant = await client.get(
            f"/customers/{ids['quiet']}/view",
            params={"min_version": 3, "wait_ms": 10_000},
            headers=rm1,
        )
        assert dormant.json()["status"] == "dormant", dormant.text
        assert dormant.json()["status_reason"].startswith("dormancy rule: no contact and no")
        auditor = realm_tokens.staff("au-0001")

        async def rule_audited() -> bool:
            trail = await client.get(
                "/audit", params={"customer_id": ids["quiet"]}, headers=auditor
            )
            assert trail.status_code == 200, trail.text
            changes = [e for e in trail.json()["items"] if e["event_type"] == STATUS_CHANGED]
            return [e["actor"] for e in changes] == [DORMANCY_ACTOR]

        await eventually(rule_audited, "the audit trail names the rule as who")
        reversed_ = await client.post(
            f"/customers/{ids['quiet']}/status",
            json={"status": "active", "reason": "called: a deposit is coming"},
            headers=rm1,
        )
        assert reversed_.status_code == 200, reversed_.text
        version = reversed_.json()["version"]
        view = await client.get(
            f"/customers/{ids['quiet']}/view",
            params={"min_version": version, "wait_ms": 10_000},
            headers=rm1,
        )
        assert view.json()["status"] == "active"
        assert view.json()["status_reason"] == "called: a deposit is coming"
        assert view.json()["signals"]["dormancy_risk"] is False
        assert await sweep.sweep() == 0

    # crm-ops rebuild gives the balance history the live consumer built.
    ours = {"_id": {"$in": list(ids.values())}}
    history = handle.database[BALANCE_HISTORY]
    live = [d async for d in history.find(ours).sort("_id")]
    assert len(live) == len(ids)
    await rebuild(
        BalanceHistory(),
        handle.database,
        bootstrap=crm_servers.kafka_bootstrap,
        login=ops_login(),
        live_group=handle.runtime.group(BalanceHistory.name),
        topics=TopicNames(topic_prefix).of(BalanceHistory.topics),
    )
    assert [d async for d in history.find(ours).sort("_id")] == live
