"""The contact-log service's events: a customer's last contacts and open tasks."""

from __future__ import annotations

from collections.abc import Iterator

from crm_backbone.projection import Handler, ViewUpdate
from crm_events import contact_log as cl
from crm_events.registry import EventPayload
from crm_events.topics import CONTACTLOG_EVENTS

from crm_customer.views.documents import LAST_CONTACTS, Event, entry, flat, of_customer, plain

TOPIC = CONTACTLOG_EVENTS


def contact_logged(e: Event) -> Iterator[ViewUpdate]:
    d = e.data
    assert isinstance(d, cl.ContactLogged)
    contact = plain(d.model_dump(exclude={"customer_id", "content"})) | {
        "contact_id": e.aggregateid
    }
    yield of_customer(
        d.customer_id,
        e,
        {
            "$push": {
                "contacts": {
                    "$each": [contact],
                    "$sort": {"started_at": -1, "contact_id": 1},
                    "$slice": LAST_CONTACTS,
                }
            },
            "$max": {"last_contact_at": d.started_at},
            "$inc": {"contact_count": 1},
        },
    )


def activity_scheduled(e: Event) -> Iterator[ViewUpdate]:
    d = e.data
    assert isinstance(d, cl.ActivityScheduled)
    if d.customer_id is None:
        return
    task = d.model_dump(
        include={"category", "description", "priority", "due_at", "assignee_id"}
    ) | {"activity_id": e.aggregateid}
    yield of_customer(d.customer_id, e, {"$set": flat(entry("tasks", e), task)})


def activity_rescheduled(e: Event) -> Iterator[ViewUpdate]:
    d = e.data
    assert isinstance(d, cl.ActivityRescheduled)
    if d.customer_id is not None:
        yield of_customer(d.customer_id, e, {"$set": {f"{entry('tasks', e)}.due_at": d.due_at}})


def activity_ended(e: Event) -> Iterator[ViewUpdate]:
    d = e.data
    assert isinstance(d, cl.ActivityCompleted | cl.ActivityCancelled)
    if d.customer_id is not None:
        yield of_customer(d.customer_id, e, {"$unset": {entry("tasks", e): ""}})


HANDLERS: dict[type[EventPayload], Handler] = {
    cl.ContactLogged: contact_logged,
    cl.ActivityScheduled: activity_scheduled,
    cl.ActivityRescheduled: activity_rescheduled,
    cl.ActivityCompleted: activity_ended,
    cl.ActivityCancelled: activity_ended,
}
