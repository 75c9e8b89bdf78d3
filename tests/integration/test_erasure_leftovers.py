"""What the customer service's views held of a person in documents their erased event does
not name, gone with the erasure (on the genuine servers, the four services running):

- a household named after them (``group_name``, personal data) by their joining, in the
  ``groups`` view: the name takes its erased form, the group's ids and other member stay;
- the reason they gave for leaving it, in the group's history;
- why a deal of theirs was lost (``lost_reason``), which the customer view keeps no more.

Every document of every collection is searched for the person's strings, before and
after rebuilding the views.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import pytest
from crm_events.personal import ERASED

from tests.integration.conftest import eventually
from tests.integration.erasure_support import (
    Bank,
    Person,
    erase,
    forgotten,
    person,
    rebuild_views,
    register_and_work,
    stored_text,
)
from tests.integration.test_audit_trail import Token, created_once_owners_known

pytestmark = pytest.mark.integration


async def join(bank: Bank, who: Person, group_id: str, name: str, rm: Token) -> None:
    joined = await bank.clients["customer"].post(
        f"/customers/{who.customer_id}/groups",
        json={
            "group_id": group_id,
            "group_type": "household",
            "group_name": name,
            "role": "member",
            "joined_on": "2026-01-01",
        },
        headers=rm.headers,
    )
    assert joined.is_success, joined.text


async def lose_a_deal(bank: Bank, who: Person, rm: Token) -> str:
    opportunity_id = f"OPP-L-{who.customer_id}"
    opportunities = bank.clients["opportunity"]
    await created_once_owners_known(
        opportunities,
        "/opportunities",
        {
            "opportunity_id": opportunity_id,
            "customer_id": who.customer_id,
            "title": "Wealth plan",
            "products": ["WM-GROWTH"],
            "expected_value": {"amount": "50000.00", "currency": "CNY"},
            "expected_close_date": "2026-12-31",
            "manager_id": "RM-0001",
            "branch_id": "BR-001",
            "source": "relationship_manager",
        },
        rm,
    )
    lost = await opportunities.post(
        f"/opportunities/{opportunity_id}/stage",
        json={"stage": "closed_lost", "lost_reason": f"{who.full_name} chose another bank"},
        headers=rm.headers,
    )
    assert lost.is_success, lost.text
    return opportunity_id


async def test_an_erased_members_household_name_and_lost_reasons_are_forgotten(
    bank: Bank,
) -> None:
    rm = bank.staff("rm-0001")
    erased, kept = person(bank.tag, 1), person(bank.tag, 2)
    customers = bank.clients["customer"]
    for who in (erased, kept):
        await register_and_work(bank, who, rm)
    household = f"HH-{bank.tag}"

    async def group() -> dict[str, Any]:
        # Taken when used: tokens live 5 minutes, the test may take longer.
        answer = await customers.get(f"/groups/{household}", headers=bank.staff("rm-0001").headers)
        body: dict[str, Any] = answer.json() if answer.status_code == 200 else {}
        return body

    async def named(name: str) -> bool:
        return (await group()).get("group_name") == name

    # One after the other: the group takes the name of the last member's event applied.
    await join(bank, kept, household, f"{kept.full_name} family", rm)
    await eventually(partial(named, f"{kept.full_name} family"), "the group was named")
    await join(bank, erased, household, f"{erased.full_name} household", rm)
    await eventually(partial(named, f"{erased.full_name} household"), "the group was renamed")
    left = await customers.post(
        f"/customers/{erased.customer_id}/groups/{household}/leave",
        json={"left_on": "2026-06-30", "reason": f"{erased.full_name} moved to {erased.street}"},
        headers=rm.headers,
    )
    assert left.is_success, left.text
    opportunity_id = await lose_a_deal(bank, erased, rm)

    async def worked_into_the_views() -> bool:
        history = [entry["event"] for entry in (await group()).get("history", [])]
        document = (
            await bank.handles["customer"]
            .database["customers"]
            .find_one({"_id": erased.customer_id})
        )
        deals = (document or {}).get("opportunities", {}).values()
        lost = [deal for deal in deals if deal.get("opportunity_id") == opportunity_id]
        return history == ["joined", "joined", "left"] and lost[:1] != [] and not lost[0]["open"]

    await eventually(worked_into_the_views, "the views knew the household and the lost deal")

    await erase(bank, erased, bank.staff("dp-0001"))
    await eventually(partial(forgotten, bank, erased), "every view forgot the erased customer")
    assert (await group())["group_name"] == ERASED
    for when in ("after the erasure", "after rebuilding the views"):
        assert await forgotten(bank, erased), when
        text = (await stored_text(bank)).lower()
        assert all(trace.lower() in text for trace in kept.traces), when
        shown = await group()
        assert shown["group_id"] == household, when
        # A rebuild applies both joinings in one batch: either may name the group.
        assert shown["group_name"] in (ERASED, f"{kept.full_name} family"), when
        assert [m["customer_id"] for m in shown["current_members"]] == [kept.customer_id]
        assert [m["customer_id"] for m in shown["past_members"]] == [erased.customer_id]
        assert "group_named_by" not in shown
        if when == "after the erasure":
            await rebuild_views(bank)
