"""The team calendar's read side: which listed activities of a person overlap (the
domain's overlap rule, over the activities' documents), and the calendar's example."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import JsonValue

from crm_contactlog.domain import ActivityStatus, BusyTime, Slot, clashes, slot_of


def overlaps_of(person_id: str, activities: Sequence[Mapping[str, Any]]) -> dict[str, list[str]]:
    """For each of the person's ``activities`` (documents of ``activities``), the other
    ones whose time it overlaps, in order of start: a double booking confirmed, or raced."""
    held = {doc["_id"]: _held(doc) for doc in activities}
    busy = [BusyTime(person_id, key, slot) for key, slot in held.items() if slot]
    return {
        key: [c.activity_id for c in clashes(key, [person_id], slot, busy)]
        for key, slot in held.items()
    }


def _held(activity: Mapping[str, Any]) -> Slot | None:
    """The time an activity's document holds: its slot while it is scheduled."""
    if activity["status"] != ActivityStatus.SCHEDULED.value:
        return None
    return slot_of(activity["started_at"], activity.get("ended_at"))


CALENDAR_EXAMPLES: list[JsonValue] = [
    {
        "person_id": "RM-0043",
        "starts_from": "2026-11-25T00:00:00+08:00",
        "starts_before": "2026-11-26T00:00:00+08:00",
        "items": [
            {
                "activity_id": "ACT-19c2",
                "version": 1,
                "customer_id": None,
                "category": "meeting",
                "description": "Weekly pipeline review",
                "priority": "normal",
                "status": "scheduled",
                "done": False,
                "due_at": "2026-11-25T11:00:00+08:00",
                "started_at": "2026-11-25T10:00:00+08:00",
                "ended_at": "2026-11-25T11:00:00+08:00",
                "assignee_id": "RM-0042",
                "participant_ids": ["RM-0043"],
                "role": "participant",
                "overlaps": ["ACT-7d01"],
            },
            {
                "activity_id": "ACT-7d01",
                "version": 1,
                "customer_id": "C00012345",
                "category": "visit",
                "description": "Wealth plan review at the customer's office",
                "priority": "high",
                "status": "scheduled",
                "done": False,
                "due_at": "2026-11-25T11:30:00+08:00",
                "started_at": "2026-11-25T10:30:00+08:00",
                "ended_at": "2026-11-25T11:30:00+08:00",
                "assignee_id": "RM-0043",
                "participant_ids": [],
                "role": "assignee",
                "overlaps": ["ACT-19c2"],
            },
        ],
    }
]
"""The OpenAPI example of a person's calendar."""
