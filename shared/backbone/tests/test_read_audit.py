"""Recording reads of personal data: what a read's event says, and no answer without it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from crm_backbone.access import reach_for
from crm_backbone.callers import Caller
from crm_backbone.http import Problem
from crm_backbone.organisation import Position
from crm_backbone.principal import Principal
from crm_backbone.read_audit import PersonalDataReads, ReadAudit, ReadRecorder, RecordedReads
from crm_events.audit import MAX_CUSTOMERS_PER_READ, PersonalDataRead
from crm_events.envelope import Envelope
from crm_events.organisation import Role
from hypothesis import given
from hypothesis import strategies as st

NOW = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)
ENDPOINT = "GET /customers/{customer_id}/view"


def staff_caller(role: Role, staff_id: str = "RM-0001", branch_id: str | None = None) -> Caller:
    principal = Principal(
        subject="3f2c-u-1", client_id="crm-console", staff_id=staff_id, roles=frozenset({role})
    )
    reach = reach_for(principal, Position(staff_id=staff_id, role=role, branch_id=branch_id))
    return Caller(principal.actor, reach, principal.client_id, "corr-7", principal)


def reads(caller: Caller, recorder: ReadRecorder) -> PersonalDataReads:
    return PersonalDataReads(
        recorder, caller, ENDPOINT, "/crm/customer", new_id=lambda: "read-1", clock=lambda: NOW
    )


async def test_a_read_names_the_reader_the_client_the_customers_and_the_endpoint() -> None:
    recorder = RecordedReads()
    caller = staff_caller(Role.RELATIONSHIP_MANAGER, branch_id="BR-001")
    await reads(caller, recorder).record(["C2", "C1", "C2"])
    assert recorder.reads == [
        Envelope.new(
            PersonalDataRead(
                customer_ids=["C2", "C1"], endpoint=ENDPOINT, staff_id="RM-0001", masked=False
            ),
            "read-1",
            1,
            actor="3f2c-u-1",
            source="/crm/customer",
            client="crm-console",
            correlation_id="corr-7",
            event_id="read-1",
            time=NOW,
        )
    ]


@given(st.lists(st.sampled_from(["C1", "C2", "C3"]), max_size=6))
async def test_a_read_records_each_customer_shown_once_and_nothing_when_none_is(
    shown: list[str],
) -> None:
    recorder = RecordedReads()
    await reads(staff_caller(Role.ANALYST, "HO-0001"), recorder).record(shown)
    if not shown:
        assert recorder.reads == []
        return
    (read,) = recorder.reads
    assert isinstance(read.data, PersonalDataRead)
    assert read.data.customer_ids == list(dict.fromkeys(shown))
    assert read.data.masked  # the analyst sees personal data masked, and is recorded


async def test_a_read_of_more_customers_than_an_event_names_is_recorded_in_several() -> None:
    recorder = RecordedReads()
    shown = [f"C{n}" for n in range(MAX_CUSTOMERS_PER_READ + 2)]
    caller = staff_caller(Role.ANALYST, "HO-0001")
    await PersonalDataReads(recorder, caller, ENDPOINT, "/crm/customer").record(shown)
    named = [read.data.customer_ids for read in recorder.reads]
    assert [len(ids) for ids in named] == [MAX_CUSTOMERS_PER_READ, 2]
    assert [customer for ids in named for customer in ids] == shown
    assert len({read.id for read in recorder.reads}) == 2


async def test_a_read_kafka_does_not_acknowledge_is_refused_with_a_503() -> None:
    audit = ReadAudit("127.0.0.1:1", within_s=3.0)
    for _ in range(2):  # the second read tries to connect again, and fails again
        with pytest.raises(Problem) as refused:
            await reads(staff_caller(Role.ANALYST, "HO-0001"), audit).record(["C1"])
        assert (refused.value.status, refused.value.kind) == (503, "audit-unavailable")
        assert "C1" not in refused.value.detail
    await audit.close()
