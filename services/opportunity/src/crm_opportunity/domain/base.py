"""What leads, opportunities and needs share: one id space, and the errors of refused commands."""

from __future__ import annotations

import uuid
from typing import Any

from crm_backbone.aggregate import TracedAggregate, uuid_for

JsonDict = dict[str, Any]


class DomainError(Exception):
    """A command the rules refuse."""


class RuleViolation(DomainError):
    """The command breaks a rule of the domain (HTTP 422)."""


class Conflict(DomainError):
    """The command contradicts the aggregate's current state (HTTP 409)."""


class PipelineAggregate(TracedAggregate):
    """A lead, an opportunity or a need: the three share one id space.

    Consumers know this service's aggregates by source and id alone (an envelope names no
    aggregate type), so two of them must never share an id. The store id is derived from
    the id without the class, and the store refuses a second aggregate with it.
    """

    @classmethod
    def create_id(cls, *_: Any, **kwargs: Any) -> uuid.UUID:
        assert cls.natural_key is not None
        return store_id(str(kwargs[cls.natural_key]))


def store_id(key: str) -> uuid.UUID:
    """The event-store id of the lead, opportunity or need known by ``key``."""
    return uuid_for(PipelineAggregate, key)
