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

from datetime import date
from functools import partial
from typing import Any

import pytest
from crm_events import core_banking as cb
from local_infra.harness import assert_problem

from tests.integration.conftest import eventually
from tests.integration.erasure_support import (
    REQUEST,
    Bank,
    Person,
    person,
    rebuild_views,
    register_and_work,
    stored_text,
)

pytestmark = pytest.mark.integration


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
    rm, dpo = bank.staff("rm-0001"), bank.staff("dp-0001")  # renewed: tokens live 5 minutes
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
