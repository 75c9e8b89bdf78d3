"""The customer views' handler sets: each stream's module handles only its own topic's
events, and the projection subscribes to exactly those topics."""

from __future__ import annotations

import pytest
from crm_customer.views import STREAMS, CustomerViews, Stream


@pytest.mark.parametrize("stream", STREAMS, ids=lambda stream: stream.TOPIC.name)
def test_a_stream_module_handles_only_events_of_its_topic(stream: Stream) -> None:
    handled = [model.event_type for model in stream.HANDLERS]
    assert handled
    assert [t for t in handled if not t.startswith(stream.TOPIC.type_prefixes)] == []


def test_the_projection_subscribes_to_its_streams_and_handles_what_they_handle() -> None:
    views = CustomerViews()
    assert CustomerViews.topics == tuple(stream.TOPIC.name for stream in STREAMS)
    handled = sum(len(stream.HANDLERS) for stream in STREAMS)
    assert len(views.handlers()) == handled, "no event type is handled by two streams"
