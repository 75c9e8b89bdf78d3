"""What the erasure tests share: the four services side by side on the test's topics, the
test's distinctive people, and how a relationship manager works with them.

The ``bank`` fixture (conftest) starts the customer, opportunity, contact-log and campaign
services in-process on the test's own topics and namespace (event store on SQLite, or on
PostgreSQL when parametrized indirectly with ``"postgres"``), once each knows the simulated
bank's organisation.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from crm_backbone.kafka_acls import OPS
from crm_backbone.organisation import STAFF
from crm_backbone.rebuild import rebuild
from crm_backbone.runtime import ServiceHandle
from crm_backbone.topic_names import TopicNames
from crm_events.envelope import Envelope, to_kafka
from crm_events.registry import EventPayload
from crm_events.topics import COREBANKING_ACCOUNTS, Service
from local_infra.harness import produce_plain
from local_infra.pytest_plugin import kafka_login
from local_infra.tokens import RealmTokens

from tests.integration.conftest import eventually
from tests.integration.test_audit_trail import Token, created_once_owners_known, token_of

STAFF_USED = {"RM-0001", "DP-0001"}
REBUILT = {"customer_view", "contact_log_view", "derived_tasks", "opportunity_view", "audience"}
"""The views of the four services that hold customers' data."""
REQUEST = {"legal_basis": "pipl_art47_3_consent_withdrawn", "reason": "request DPR-IT"}
CJK_NAMES = "".join(chr(c) for c in range(0x4E00, 0x4E00 + 2000))
"""Common ideographs a given name is drawn from (their JSON escapes are distinctive too)."""


@dataclass(frozen=True)
class Person:
    customer_id: str
    full_name: str
    chinese_name: str
    phone: str
    email: str
    id_number: str
    street: str

    @property
    def traces(self) -> tuple[str, ...]:
        """What of the person a store could hold: name parts (Latin and Chinese), the phone
        as written and its digits, ID number, e-mail's local part, the street."""
        digits = "".join(c for c in self.phone if c.isdigit())
        return (
            *self.full_name.split(),
            self.chinese_name,
            self.phone,
            digits[-8:],
            self.id_number,
            self.email.split("@")[0],
            self.street.split()[1],
        )


def person(tag: str, n: int) -> Person:
    """A customer whose strings occur nowhere else: random letters and ideographs, and
    numbers made of ``tag`` (digits unique to the test) and ``n``."""
    draw = random.Random(f"{tag}-{n}")
    letters = "".join(draw.choices("bcdfghjklmnpqrstvwxz", k=7))
    number = f"{n}{tag}"[-8:].rjust(8, "7")
    return Person(
        customer_id=f"C-{tag}-{n}",
        full_name=f"Quill{letters}on Varesk{letters[::-1]}",
        chinese_name="".join(draw.choices(CJK_NAMES, k=3)),
        phone=f"+86 139 {number[:4]} {number[4:]}",
        email=f"qv{letters}{n}@example.com",
        id_number=f"11010119800101{number[-4:]}"[:17] + str(n % 10),
        street=f"{n} Zhuque{letters}lu Road",
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


async def staff_known(handle: ServiceHandle) -> bool:
    placed = await handle.database[STAFF].count_documents({"_id": {"$in": sorted(STAFF_USED)}})
    return placed == len(STAFF_USED)


async def rebuild_views(bank: Bank) -> None:
    """Rebuild every view that holds customers' data, as ``crm-ops rebuild`` does."""
    for handle in bank.handles.values():
        runtime = handle.runtime
        for projection in runtime.components.projections:
            if projection.name in REBUILT:
                progress = await rebuild(
                    projection,
                    handle.database,
                    bootstrap=bank.bootstrap,
                    login=kafka_login(OPS),
                    live_group=runtime.group(projection.name),
                    topics=TopicNames(bank.topic_prefix).of(projection.topics),
                    sealer=runtime.sealer,
                )
                assert progress.set_aside == 0, f"{projection.name}: {progress}"


async def stored_text(bank: Bank) -> str:
    """Every document of every collection of the four services' databases, as text."""
    texts = []
    for handle in bank.handles.values():
        for name in await handle.database.list_collection_names():
            async for document in handle.database[name].find():
                texts.append(json.dumps(document, default=str, ensure_ascii=False))
    return "\n".join(texts)


async def forgotten(bank: Bank, who: Person) -> bool:
    """Whether no document of any service holds any of ``who``'s strings."""
    text = (await stored_text(bank)).lower()
    return not any(trace.lower() in text for trace in who.traces)


async def erase(bank: Bank, who: Person, officer: Token) -> None:
    """The data protection officer's erasure of ``who``, asked again while it is refused
    for now (the leads' ids reach the customer view first), until accepted."""

    async def accepted() -> bool:
        done = await bank.clients["customer"].post(
            f"/customers/{who.customer_id}/erasure", json=REQUEST, headers=officer.headers
        )
        assert done.status_code in (200, 409), done.text
        return done.status_code == 200

    await eventually(accepted, "the erasure was accepted")


def registration(who: Person) -> dict[str, Any]:
    return {
        "customer_id": who.customer_id,
        "customer_type": "individual",
        "name": {
            "full_name": who.full_name,
            "family_name": who.full_name.split()[1],
            "given_name": who.chinese_name,
        },
        "phone": who.phone,
        "email": who.email,
        "birth_date": "1980-01-01",
        "id_documents": [{"kind": "national_id", "number": who.id_number, "issuing_country": "CN"}],
        "address": {"line1": who.street, "city": "Shenzhen", "country": "CN"},
        "branch_id": "BR-001",
        "status": "active",
    }


async def register_and_work(bank: Bank, who: Person, rm: Token) -> str:
    """Register ``who`` into rm's book, capture a lead and log a contact naming them; the
    lead's id."""
    registered = await bank.clients["customer"].post(
        "/customers", json=registration(who), headers=rm.headers
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
