"""The personal-data read contract: ids only, at least one customer, on the audit topic."""

import pytest
from crm_events.audit import MAX_CUSTOMERS_PER_READ, PersonalDataRead
from crm_events.envelope import Envelope, from_kafka, to_kafka
from crm_events.topics import PERSONAL_DATA_READS, topic_for
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError


@given(st.from_type(PersonalDataRead), st.uuids(), st.sampled_from(["rm-1", None]))
def test_a_read_round_trips_through_kafka(
    read: PersonalDataRead, read_id: object, client: str | None
) -> None:
    envelope = Envelope.new(
        read, str(read_id), 1, actor="u-1", source="/crm/customer", client=client
    )
    record = to_kafka(envelope)
    assert from_kafka(record.key, record.value, record.headers) == envelope
    assert topic_for(envelope.type) is PERSONAL_DATA_READS


@pytest.mark.parametrize(
    "customer_ids",
    [[], ["王芳"], ["C 1"], ["C1"] * (MAX_CUSTOMERS_PER_READ + 1)],
    ids=["none", "a name", "a space", "too many"],
)
def test_a_read_names_one_to_a_thousand_customer_ids(customer_ids: list[str]) -> None:
    with pytest.raises(ValidationError):
        PersonalDataRead(customer_ids=customer_ids, endpoint="GET /customers/{customer_id}")


def test_a_read_holds_no_other_field() -> None:
    with pytest.raises(ValidationError):
        PersonalDataRead.model_validate(
            {"customer_ids": ["C1"], "endpoint": "GET /x", "phone": "13912345678"}
        )
