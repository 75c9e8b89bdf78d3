"""The organisation contract: a staff position names the unit its role needs and nothing
else, ids are ids, and every HR event travels on the HR topic under its aggregate's key."""

from typing import Any

import pytest
from crm_events import Envelope, from_kafka, to_kafka
from crm_events.common import ID_PATTERN
from crm_events.organisation import BranchOpened, Role, StaffMoved, StaffPlaced
from crm_events.registry import EventPayload
from crm_events.topics import HR_ORGANISATION, SUBSCRIPTIONS, Service, topic_for
from hypothesis import assume, given
from hypothesis import strategies as st
from pydantic import ValidationError

ids = st.from_regex(ID_PATTERN, fullmatch=True)
not_ids = st.one_of(
    st.just(""),
    st.text(min_size=129, max_size=140, alphabet="ab"),
    st.from_regex(r"^[A-Za-z0-9]{1,10}[ /#?%]{1,3}[A-Za-z0-9]{0,10}$", fullmatch=True),
    st.from_regex(r"^[._:@~-][A-Za-z0-9]{0,10}$", fullmatch=True),
)
POSITION_TYPES = (StaffPlaced, StaffMoved)


def _unit_fields(role: Role, unit_id: str) -> dict[str, str]:
    return {f"{role.unit}_id": unit_id} if role.unit else {}


@pytest.mark.parametrize("model", POSITION_TYPES)
@given(role=st.sampled_from(Role), unit_id=ids, reports_to=st.none() | ids)
def test_a_position_in_the_unit_its_role_needs_is_valid(
    model: type[StaffPlaced | StaffMoved], role: Role, unit_id: str, reports_to: str | None
) -> None:
    position = model(role=role, reports_to=reports_to, **_unit_fields(role, unit_id))
    assert (position.branch_id, position.region_id) == (
        unit_id if role.unit == "branch" else None,
        unit_id if role.unit == "region" else None,
    )


@pytest.mark.parametrize("model", POSITION_TYPES)
@given(
    role=st.sampled_from(Role),
    units=st.fixed_dictionaries({}, optional={"branch_id": ids, "region_id": ids}),
)
def test_a_position_naming_another_unit_than_its_role_needs_is_refused(
    model: type[StaffPlaced | StaffMoved], role: Role, units: dict[str, str]
) -> None:
    assume(set(units) != ({f"{role.unit}_id"} if role.unit else set()))  # valid: see above
    with pytest.raises(ValidationError, match=f"a {role.value} position names"):
        model(role=role, **units)


@given(field=st.sampled_from(["branch_id", "reports_to"]), bad=not_ids)
def test_a_position_refuses_what_is_not_an_id(field: str, bad: str) -> None:
    fields: dict[str, Any] = {"role": Role.RELATIONSHIP_MANAGER, "branch_id": "BR-001"}
    with pytest.raises(ValidationError):
        StaffPlaced(**fields | {field: bad})


@given(bad=not_ids)
def test_a_branch_refuses_a_region_that_is_not_an_id(bad: str) -> None:
    with pytest.raises(ValidationError):
        BranchOpened.model_validate(
            {"name": "Shanghai", "region_id": bad, "opened_on": "2020-01-01"}
        )


@given(staff_id=ids, branch_id=ids)
def test_a_placement_travels_on_the_hr_topic_keyed_by_the_staff_id(
    staff_id: str, branch_id: str
) -> None:
    payload: EventPayload = StaffPlaced(role=Role.BRANCH_MANAGER, branch_id=branch_id)
    envelope = Envelope.new(payload, staff_id, 1, actor="hr", source=Service.HR.source)
    record = to_kafka(envelope)
    assert record.key == staff_id.encode()
    assert topic_for(envelope.type) is HR_ORGANISATION
    assert from_kafka(record.key, record.value, record.headers) == envelope


def test_every_service_reads_the_organisation_and_hr_is_an_upstream_system() -> None:
    assert Service.HR.source == "/bank/hr"
    assert HR_ORGANISATION.owner is Service.HR
    assert HR_ORGANISATION.cleanup_policy == "delete"
    assert HR_ORGANISATION.retention_ms == -1
    assert all(HR_ORGANISATION in topics for topics in SUBSCRIPTIONS.values())
    assert {model.event_type for model in POSITION_TYPES} <= set(HR_ORGANISATION.event_types())
