"""Every endpoint of the book, as a row of the access matrix: how to call it about one of
the test customers, and what kind of endpoint it is.

A row's ``prepare`` builds the call for the customer ``label``; a command that changes
its record for good (a stage, a merge) gets a record of its own, made first by the
service's own account (``World.seed``), so every caller meets the record in the same state.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from tests.integration.access_matrix import HANDED_TO, OWNERS, Kind


@dataclass(frozen=True)
class Call:
    path: str
    body: Mapping[str, Any] | None = None
    params: Mapping[str, str] = field(default_factory=dict)


class World(Protocol):
    """The services under test and the records made for the matrix."""

    @property
    def run(self) -> str:
        """A marker of this run, in names and products the lists are filtered by."""
        ...

    @property
    def customers(self) -> Mapping[str, str]:
        """The test customer of each label."""
        ...

    @property
    def records(self) -> Mapping[tuple[str, str], str]:
        """Records made at setup, per (kind, label): opportunity, need, contact, activity,
        group."""
        ...

    async def seed(self, service: str, method: str, path: str, body: Any = None) -> Any:
        """Call as the service's own account; the answer's JSON (fails unless 2xx)."""
        ...

    async def fresh_customer(self, label: str) -> str:
        """A new customer with the owners of ``label``."""
        ...

    def unique(self, prefix: str) -> str: ...


@dataclass(frozen=True)
class Row:
    service: str
    method: str
    template: str
    kind: Kind
    prepare: Callable[[World, str], Awaitable[Call]]
    listed: Callable[[Any, World], frozenset[str]] | None = None
    """For a list: the test customers (labels) its answer shows."""
    counted: Callable[[Any], int] | None = None
    """For a list of figures: how many of the test customers' records it counts."""
    within: Callable[[str], frozenset[str]] | None = None
    """For a list called about each customer: the test customers it may show at most."""


def _path(template: str, **ids: str) -> str:
    return template.format(**ids)


def new_id(answer: Any) -> str:
    """The id a creating command answers (``customer_id``, ``opportunity_id``, ...)."""
    (key,) = [k for k in answer if k == "id" or k.endswith("_id")]
    return str(answer[key])


def _labels_of(world: World, customer_ids: set[str]) -> frozenset[str]:
    return frozenset(label for label, cid in world.customers.items() if cid in customer_ids)


def _items(answer: Any) -> list[Any]:
    return list(answer["items"] if isinstance(answer, dict) else answer)


Body = Mapping[str, Any] | Callable[[World, str], Mapping[str, Any]]
Step = tuple[str, str, Body]
"""A step before a command: method, sub-path of the record, body."""


def _body(body: Body | None, world: World, label: str) -> Mapping[str, Any] | None:
    return body(world, label) if callable(body) else body


def _on_fresh(
    service: str,
    create: str,
    body: Callable[[World, str], Mapping[str, Any]],
    template: str,
    command: Body | None,
    before: tuple[Step, ...] = (),
) -> Callable[[World, str], Awaitable[Call]]:
    """A command on a record made for it: ``create`` with ``body``, then the ``before``
    steps by the service's own account."""

    async def prepare(world: World, label: str) -> Call:
        record = new_id(await world.seed(service, "POST", create, body(world, label)))
        path = template.format(id=record)
        base = path.rsplit("/", 1)[0]
        for method, step, step_body in before:
            await world.seed(service, method, base + step, _body(step_body, world, label))
        return Call(path, _body(command, world, label))

    return prepare


def _to_manager(world: World, label: str) -> Mapping[str, Any]:
    return {"manager_id": OWNERS[label].manager_id, "reason": "matrix"}


def _create(
    path: str, body: Callable[[World, str], Mapping[str, Any]]
) -> Callable[[World, str], Awaitable[Call]]:
    async def prepare(world: World, label: str) -> Call:
        return Call(path, body(world, label))

    return prepare


def _record_read(kind: str, template: str) -> Callable[[World, str], Awaitable[Call]]:
    async def prepare(world: World, label: str) -> Call:
        return Call(template.format(id=world.records[kind, label]))

    return prepare


# Customer service ---------------------------------------------------------------------------


def _customer_read(template: str) -> Callable[[World, str], Awaitable[Call]]:
    async def prepare(world: World, label: str) -> Call:
        return Call(_path(template, customer_id=world.customers[label]))

    return prepare


def _on_fresh_customer(
    template: str, body: Callable[[World, str, str], Awaitable[Mapping[str, Any]]]
) -> Callable[[World, str], Awaitable[Call]]:
    async def prepare(world: World, label: str) -> Call:
        customer_id = await world.fresh_customer(label)
        return Call(_path(template, customer_id=customer_id), await body(world, label, customer_id))

    return prepare


def _fixed(body: Mapping[str, Any]) -> Callable[[World, str, str], Awaitable[Mapping[str, Any]]]:
    async def make(world: World, label: str, customer_id: str) -> Mapping[str, Any]:
        return body

    return make


async def _group_join(world: World, label: str, customer_id: str) -> Mapping[str, Any]:
    return {
        "group_id": world.unique("HH"),
        "group_type": "household",
        "group_name": "Matrix household",
        "role": "head",
        "joined_on": "2026-01-01",
    }


async def _leave_call(world: World, label: str) -> Call:
    customer_id = await world.fresh_customer(label)
    joined = await _group_join(world, label, customer_id)
    await world.seed("customer", "POST", f"/customers/{customer_id}/groups", joined)
    return Call(
        f"/customers/{customer_id}/groups/{joined['group_id']}/leave", {"left_on": "2026-02-01"}
    )


async def _relate(world: World, label: str, customer_id: str) -> Mapping[str, Any]:
    partner = await world.fresh_customer(label)
    return {"related_customer_id": partner, "relationship_type": "spouse"}


async def _end_relationship(world: World, label: str) -> Call:
    customer_id = await world.fresh_customer(label)
    related = await _relate(world, label, customer_id)
    await world.seed("customer", "POST", f"/customers/{customer_id}/relationships", related)
    return Call(
        f"/customers/{customer_id}/relationships/end", {**related, "ended_on": "2026-02-01"}
    )


async def _merge(world: World, label: str, customer_id: str) -> Mapping[str, Any]:
    duplicate = await world.fresh_customer(label)
    return {"duplicate_customer_id": duplicate, "reason": "matrix", "merged_on": "2026-11-23"}


async def _group_read(world: World, label: str) -> Call:
    return Call(f"/groups/{world.records['group', label]}")


async def _group_exposure(world: World, label: str) -> Call:
    return Call(f"/groups/{world.records['group', label]}/exposure")


async def _value_analysis(world: World, label: str) -> Call:
    return Call("/analysis/value")


async def _reviews(world: World, label: str) -> Call:
    """The test customers' segment is high and their value none: each is proposed."""
    return Call("/analysis/segment-reviews", params={"limit": "500"})


async def _league(world: World, label: str) -> Call:
    """Every reader of the book gets the league; which rows it shows: test_manager_performance."""
    return Call("/performance", params={"period": "month", "group_by": "manager"})


async def _search(world: World, label: str) -> Call:
    return Call("/customers", params={"name": f"Matrix {world.run}", "limit": "50"})


async def _churn_worklist(world: World, label: str) -> Call:
    """The test customers are active and have no transaction: each shows that signal."""
    return Call("/worklists/churn", params={"name": f"Matrix {world.run}", "limit": "50"})


async def _cross_sell_worklist(world: World, label: str) -> Call:
    return Call("/worklists/cross-sell", params={"name": f"Matrix {world.run}", "limit": "50"})


def _searched(answer: Any, world: World) -> frozenset[str]:
    return _labels_of(world, {item["customer_id"] for item in _items(answer)})


def _registration(world: World, label: str) -> Mapping[str, Any]:
    owners = OWNERS[label]
    return {
        "customer_id": world.unique("C"),
        "customer_type": "individual",
        "name": {"full_name": f"Placed {world.run} {label}"},
        "branch_id": owners.branch_id,
        "manager_id": owners.manager_id,
    }


async def _handed_over(world: World, label: str, customer_id: str) -> Mapping[str, Any]:
    to = HANDED_TO[label]
    return {"manager_id": to.manager_id, "branch_id": to.branch_id}


CUSTOMER_ROWS = [
    Row("customer", "POST", "/customers", Kind.PLACE, _create("/customers", _registration)),
    Row(
        "customer",
        "PUT",
        "/customers/{customer_id}/manager",
        Kind.REASSIGN,
        _on_fresh_customer("/customers/{customer_id}/manager", _handed_over),
    ),
    Row(
        "customer",
        "GET",
        "/customers/{customer_id}",
        Kind.READ,
        _customer_read("/customers/{customer_id}"),
    ),
    Row(
        "customer",
        "GET",
        "/customers/{customer_id}/view",
        Kind.READ,
        _customer_read("/customers/{customer_id}/view"),
    ),
    Row("customer", "GET", "/customers", Kind.LIST, _search, _searched),
    Row("customer", "GET", "/worklists/churn", Kind.LIST, _churn_worklist, _searched),
    Row("customer", "GET", "/worklists/cross-sell", Kind.LIST, _cross_sell_worklist),
    Row("customer", "GET", "/groups/{group_id}", Kind.READ, _group_read),
    Row(
        "customer",
        "GET",
        "/customers/{customer_id}/exposure",
        Kind.READ,
        _customer_read("/customers/{customer_id}/exposure"),
    ),
    Row("customer", "GET", "/groups/{group_id}/exposure", Kind.READ, _group_exposure),
    Row(
        "customer",
        "GET",
        "/customers/{customer_id}/value",
        Kind.READ,
        _customer_read("/customers/{customer_id}/value"),
    ),
    Row("customer", "GET", "/analysis/value", Kind.LIST, _value_analysis),
    Row("customer", "GET", "/analysis/segment-reviews", Kind.LIST, _reviews, _searched),
    Row("customer", "GET", "/performance", Kind.LIST, _league),
    Row(
        "customer",
        "PATCH",
        "/customers/{customer_id}/profile",
        Kind.COMMAND,
        _on_fresh_customer("/customers/{customer_id}/profile", _fixed({"email": "m@example.com"})),
    ),
    Row(
        "customer",
        "POST",
        "/customers/{customer_id}/status",
        Kind.COMMAND,
        _on_fresh_customer(
            "/customers/{customer_id}/status", _fixed({"status": "active", "reason": "matrix"})
        ),
    ),
    Row(
        "customer",
        "POST",
        "/customers/{customer_id}/segment",
        Kind.COMMAND,
        _on_fresh_customer(
            "/customers/{customer_id}/segment", _fixed({"value_band": "high", "reason": "matrix"})
        ),
    ),
    Row(
        "customer",
        "PUT",
        "/customers/{customer_id}/consent/{channel}",
        Kind.COMMAND,
        _on_fresh_customer(
            "/customers/{customer_id}/consent/sms", _fixed({"opted_in": False, "reason": "matrix"})
        ),
    ),
    Row(
        "customer",
        "POST",
        "/customers/{customer_id}/groups",
        Kind.COMMAND,
        _on_fresh_customer("/customers/{customer_id}/groups", _group_join),
    ),
    Row(
        "customer",
        "POST",
        "/customers/{customer_id}/groups/{group_id}/leave",
        Kind.COMMAND,
        _leave_call,
    ),
    Row(
        "customer",
        "POST",
        "/customers/{customer_id}/relationships",
        Kind.COMMAND,
        _on_fresh_customer("/customers/{customer_id}/relationships", _relate),
    ),
    Row(
        "customer",
        "POST",
        "/customers/{customer_id}/relationships/end",
        Kind.COMMAND,
        _end_relationship,
    ),
    Row(
        "customer",
        "POST",
        "/customers/{customer_id}/merge",
        Kind.COMMAND,
        _on_fresh_customer("/customers/{customer_id}/merge", _merge),
    ),
    Row(
        "customer",
        "POST",
        "/customers/{customer_id}/erasure",
        Kind.ERASURE,
        _on_fresh_customer(
            "/customers/{customer_id}/erasure",
            _fixed({"legal_basis": "pipl_art47_3_consent_withdrawn", "reason": "matrix"}),
        ),
    ),
]


# Opportunity service ------------------------------------------------------------------------

SETUP_PRODUCT_PREFIX = "MX-SETUP-"


def opportunity_body(world: World, label: str, product: str) -> dict[str, Any]:
    owners = OWNERS[label]
    return {
        "title": "Matrix mortgage",
        "products": [product],
        "expected_value": {"amount": "100000.00", "currency": "CNY"},
        "expected_close_date": "2027-03-31",
        "customer_id": world.customers[label],
        "manager_id": owners.manager_id,
        "branch_id": owners.branch_id,
        "source": "relationship_manager",
    }


def need_body(world: World, label: str) -> dict[str, Any]:
    return {
        "customer_id": world.customers[label],
        "kind": "complaint",
        "summary": "Card fee charged twice",
        "content": "The annual fee appears twice.",
        "severity": "medium",
        "urgency": "high",
        "channel": "phone",
        "sla_due_at": "2026-11-25T18:00:00+08:00",
    }


def _new_opportunity(world: World, label: str) -> dict[str, Any]:
    return opportunity_body(world, label, f"MX-NEW-{world.run}")


async def _pipeline(world: World, label: str) -> Call:
    return Call("/pipeline", params={"product": f"{SETUP_PRODUCT_PREFIX}{world.run}"})


def _open_count(answer: Any) -> int:
    return int(answer["open"]["count"])


async def _opportunity_list(world: World, label: str) -> Call:
    return Call("/opportunities", params={"limit": "500"})


async def _sla_board(world: World, label: str) -> Call:
    return Call("/complaints/sla")


def _sla_listed(answer: Any, world: World) -> frozenset[str]:
    shown = {
        item["customer_id"]
        for state in ("breached", "due_soon", "on_track")
        for item in answer[state]
    }
    return _labels_of(world, shown)


def _opportunity_command(template: str, body: Body) -> Callable[[World, str], Awaitable[Call]]:
    return _on_fresh(
        "opportunity", "/opportunities", _new_opportunity, "/opportunities/{id}" + template, body
    )


def _need_command(
    template: str, body: Body, before: tuple[Step, ...] = ()
) -> Callable[[World, str], Awaitable[Call]]:
    return _on_fresh("opportunity", "/needs", need_body, "/needs/{id}" + template, body, before)


OWNED: tuple[Step, ...] = (("PUT", "/owner", _to_manager),)
RESOLVED: tuple[Step, ...] = (("POST", "/resolve", {"resolution": "refunded"}),)


def lead_body(world: World, label: str) -> dict[str, Any]:
    """A prospect's lead in the book of ``label``'s owners."""
    owners = OWNERS[label]
    return {
        "contact_name": "Zhao Min",
        "phone": "+86 139 5555 0101",
        "source": "walk_in",
        "products_of_interest": ["MORTGAGE-30Y"],
        "branch_id": owners.branch_id,
        "manager_id": owners.manager_id,
    }


def _qualified_for(world: World, label: str) -> Mapping[str, Any]:
    return {"customer_id": world.customers[label], "notes": "budget confirmed"}


CONVERSION = {
    "title": "Matrix mortgage",
    "products": ["MORTGAGE-30Y"],
    "expected_value": {"amount": "100000.00", "currency": "CNY"},
    "expected_close_date": "2027-03-31",
}


def _lead_command(
    template: str, body: Body, before: tuple[Step, ...] = ()
) -> Callable[[World, str], Awaitable[Call]]:
    return _on_fresh("opportunity", "/leads", lead_body, "/leads/{id}" + template, body, before)


async def _lead_queue(world: World, label: str) -> Call:
    return Call("/leads", params={"branch_id": OWNERS[label].branch_id, "limit": "500"})


def _queued(answer: Any, world: World) -> frozenset[str]:
    leads = {lead_id: label for (kind, label), lead_id in world.records.items() if kind == "lead"}
    return frozenset(leads[item["lead_id"]] for item in answer["items"] if item["lead_id"] in leads)


def _same_branch(label: str) -> frozenset[str]:
    return frozenset(
        other for other, owners in OWNERS.items() if owners.branch_id == OWNERS[label].branch_id
    )


LEAD_ROWS = [
    Row("opportunity", "POST", "/leads", Kind.PLACE, _create("/leads", lead_body)),
    Row("opportunity", "GET", "/leads/{lead_id}", Kind.READ, _record_read("lead", "/leads/{id}")),
    Row(
        "opportunity",
        "GET",
        "/leads",
        Kind.LIST,
        _lead_queue,
        listed=_queued,
        within=_same_branch,
    ),
    Row(
        "opportunity",
        "POST",
        "/leads/{lead_id}/qualify",
        Kind.COMMAND,
        _lead_command("/qualify", _qualified_for),
    ),
    Row(
        "opportunity",
        "PUT",
        "/leads/{lead_id}/manager",
        Kind.COMMAND,
        _lead_command("/manager", _to_manager),
    ),
    Row(
        "opportunity",
        "POST",
        "/leads/{lead_id}/convert",
        Kind.COMMAND,
        _lead_command("/convert", CONVERSION, (("POST", "/qualify", _qualified_for),)),
    ),
    Row(
        "opportunity",
        "POST",
        "/leads/{lead_id}/disqualify",
        Kind.COMMAND,
        _lead_command("/disqualify", {"reason": "already served elsewhere"}),
    ),
]

OPPORTUNITY_ROWS = [
    *LEAD_ROWS,
    Row(
        "opportunity",
        "PUT",
        "/opportunities/{opportunity_id}/manager",
        Kind.COMMAND,
        _opportunity_command("/manager", _to_manager),
    ),
    Row(
        "opportunity",
        "PUT",
        "/needs/{need_id}/owner",
        Kind.COMMAND,
        _need_command("/owner", _to_manager),
    ),
    Row(
        "opportunity",
        "POST",
        "/opportunities",
        Kind.COMMAND,
        _create("/opportunities", _new_opportunity),
    ),
    Row(
        "opportunity",
        "GET",
        "/opportunities/{opportunity_id}",
        Kind.READ,
        _record_read("opportunity", "/opportunities/{id}"),
    ),
    Row(
        "opportunity",
        "POST",
        "/opportunities/{opportunity_id}/stage",
        Kind.COMMAND,
        _opportunity_command("/stage", {"stage": "proposal"}),
    ),
    Row(
        "opportunity",
        "PUT",
        "/opportunities/{opportunity_id}/probability",
        Kind.COMMAND,
        _opportunity_command("/probability", {"probability": 70, "reason": "matrix"}),
    ),
    Row(
        "opportunity",
        "PUT",
        "/opportunities/{opportunity_id}/expected-value",
        Kind.COMMAND,
        _opportunity_command(
            "/expected-value", {"expected_value": {"amount": "90000.00", "currency": "CNY"}}
        ),
    ),
    Row("opportunity", "GET", "/pipeline", Kind.LIST, _pipeline, counted=_open_count),
    Row("opportunity", "GET", "/opportunities", Kind.LIST, _opportunity_list, _searched),
    Row("opportunity", "POST", "/needs", Kind.COMMAND, _create("/needs", need_body)),
    Row("opportunity", "GET", "/needs/{need_id}", Kind.READ, _record_read("need", "/needs/{id}")),
    Row(
        "opportunity",
        "POST",
        "/needs/{need_id}/status",
        Kind.COMMAND,
        _need_command("/status", {"status": "in_progress"}, OWNED),
    ),
    Row(
        "opportunity",
        "POST",
        "/needs/{need_id}/resolve",
        Kind.COMMAND,
        _need_command("/resolve", {"resolution": "refunded"}),
    ),
    Row(
        "opportunity",
        "POST",
        "/needs/{need_id}/reopen",
        Kind.COMMAND,
        _need_command("/reopen", {"reason": "not received"}, RESOLVED),
    ),
    Row(
        "opportunity",
        "POST",
        "/needs/{need_id}/confirm",
        Kind.COMMAND,
        _need_command("/confirm", {"satisfied": True}, RESOLVED),
    ),
    Row("opportunity", "GET", "/complaints/sla", Kind.LIST, _sla_board, _sla_listed),
]


# Contact-log service ------------------------------------------------------------------------


def contact_body(world: World, label: str) -> dict[str, Any]:
    return {
        "customer_id": world.customers[label],
        "category": "phone",
        "summary": "Time deposit maturing",
        "called": True,
        "outcome": "interested",
        "manager_id": OWNERS[label].manager_id,
        "started_at": "2026-11-23T10:00:00+08:00",
    }


def activity_body(world: World, label: str) -> dict[str, Any]:
    return {
        "customer_id": world.customers[label],
        "category": "visit",
        "description": "Review the wealth plan",
        "due_at": "2026-11-25T15:00:00+08:00",
        "assignee_id": OWNERS[label].manager_id,
    }


def _activity_command(
    template: str, body: Mapping[str, Any]
) -> Callable[[World, str], Awaitable[Call]]:
    return _on_fresh(
        "contact-log", "/activities", activity_body, "/activities/{id}" + template, body
    )


async def _timeline(world: World, label: str) -> Call:
    return Call(f"/customers/{world.customers[label]}/timeline")


async def _task_list(world: World, label: str) -> Call:
    return Call(f"/managers/{OWNERS[label].manager_id}/tasks")


async def _calendar(world: World, label: str) -> Call:
    """The calendar of the customer's manager: answered as their task list is."""
    period = {
        "starts_from": "2026-11-01T00:00:00+08:00",
        "starts_before": "2026-12-01T00:00:00+08:00",
    }
    return Call("/activities", params={"person": OWNERS[label].manager_id} | period)


CONTACT_LOG_ROWS = [
    Row("contact-log", "POST", "/contacts", Kind.COMMAND, _create("/contacts", contact_body)),
    Row(
        "contact-log",
        "GET",
        "/contacts/{contact_id}",
        Kind.READ,
        _record_read("contact", "/contacts/{id}"),
    ),
    Row("contact-log", "POST", "/activities", Kind.COMMAND, _create("/activities", activity_body)),
    Row(
        "contact-log",
        "GET",
        "/activities/{activity_id}",
        Kind.READ,
        _record_read("activity", "/activities/{id}"),
    ),
    Row(
        "contact-log",
        "POST",
        "/activities/{activity_id}/reschedule",
        Kind.COMMAND,
        _activity_command("/reschedule", {"due_at": "2026-11-27T17:00:00+08:00"}),
    ),
    Row(
        "contact-log",
        "POST",
        "/activities/{activity_id}/complete",
        Kind.COMMAND,
        _activity_command("/complete", {"remarks": "done"}),
    ),
    Row(
        "contact-log",
        "POST",
        "/activities/{activity_id}/cancel",
        Kind.COMMAND,
        _activity_command("/cancel", {"reason": "customer cancelled"}),
    ),
    Row("contact-log", "GET", "/customers/{customer_id}/timeline", Kind.READ, _timeline),
    Row("contact-log", "GET", "/managers/{manager_id}/tasks", Kind.READ, _task_list),
    Row("contact-log", "GET", "/activities", Kind.READ, _calendar),
]

# Campaign service ---------------------------------------------------------------------------


def campaign_body(world: World, label: str) -> dict[str, Any]:
    """A campaign of the branch of ``label``'s customer."""
    owners = OWNERS[label]
    return {
        "campaign_id": world.unique("CMP"),
        "name": "Matrix campaign",
        "kind": "sms",
        "products": ["WM-GROWTH"],
        "channels": ["sms", "phone"],
        "target_segments": [{"value_band": "high"}],
        "criteria": {"branch_ids": [owners.branch_id]},
        "owner_manager_ids": [owners.manager_id],
        "budget": {"amount": "5000.00", "currency": "CNY"},
        "planned_start": "2026-03-01",
        "planned_end": "2026-03-31",
    }


SCHEDULED: tuple[Step, ...] = (
    (
        "POST",
        "/schedule",
        {"starts_at": "2026-03-01T09:00:00+08:00", "ends_at": "2026-03-31T18:00:00+08:00"},
    ),
)


def _campaign_command(
    template: str, body: Body | None, before: tuple[Step, ...] = ()
) -> Callable[[World, str], Awaitable[Call]]:
    return _on_fresh(
        "campaign", "/campaigns", campaign_body, "/campaigns/{id}" + template, body, before
    )


RESPONSE_SETUP: tuple[Step, ...] = (*SCHEDULED, ("POST", "/start", {}))


async def _response(world: World, label: str) -> Call:
    """A customer's answer to the campaign that targets the four test customers."""
    return Call(
        f"/campaigns/{world.records['targeting', label]}/responses",
        {
            "customer_id": world.customers[label],
            "channel": "phone",
            "stage": "contacted",
            "occurred_at": "2026-03-02T10:00:00+08:00",
        },
    )


async def _audit(world: World, label: str) -> Call:
    return Call("/audit", params={"customer_id": world.customers[label]})


async def _campaigns(world: World, label: str) -> Call:
    return Call("/campaigns", params={"limit": "100"})


CAMPAIGN_ROWS = [
    Row("campaign", "POST", "/campaigns", Kind.MANAGE, _create("/campaigns", campaign_body)),
    Row("campaign", "GET", "/campaigns", Kind.SHARED, _campaigns),
    Row(
        "campaign",
        "GET",
        "/campaigns/{campaign_id}",
        Kind.SHARED,
        _record_read("campaign", "/campaigns/{id}"),
    ),
    Row(
        "campaign",
        "GET",
        "/campaigns/{campaign_id}/funnel",
        Kind.SHARED,
        _record_read("campaign", "/campaigns/{id}/funnel"),
    ),
    Row(
        "campaign",
        "GET",
        "/campaigns/{campaign_id}/daily",
        Kind.SHARED,
        _record_read("campaign", "/campaigns/{id}/daily"),
    ),
    Row(
        "campaign",
        "POST",
        "/campaigns/{campaign_id}/schedule",
        Kind.MANAGE,
        _campaign_command("/schedule", SCHEDULED[0][2]),
    ),
    Row(
        "campaign",
        "POST",
        "/campaigns/{campaign_id}/start",
        Kind.MANAGE,
        _campaign_command("/start", {}, SCHEDULED),
    ),
    Row(
        "campaign",
        "POST",
        "/campaigns/{campaign_id}/cancel",
        Kind.MANAGE,
        _campaign_command("/cancel", {"reason": "matrix"}),
    ),
    Row(
        "campaign",
        "POST",
        "/campaigns/{campaign_id}/complete",
        Kind.MANAGE,
        _campaign_command("/complete", {}, RESPONSE_SETUP),
    ),
    Row("campaign", "POST", "/campaigns/{campaign_id}/responses", Kind.COMMAND, _response),
    Row("customer", "GET", "/audit", Kind.AUDIT, _audit),
]


async def _consumers(world: World, label: str) -> Call:
    return Call("/ops/consumers")


OPERATIONS_ROWS = [
    Row(service, "GET", "/ops/consumers", Kind.OPS, _consumers)
    for service in ("customer", "opportunity", "contact-log", "campaign")
]

ROWS = [*CUSTOMER_ROWS, *OPPORTUNITY_ROWS, *CONTACT_LOG_ROWS, *CAMPAIGN_ROWS, *OPERATIONS_ROWS]
