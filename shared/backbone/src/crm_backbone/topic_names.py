"""One deployment's topic names: the contract's names behind the deployment's prefix.

The contract (``crm_events.topics``) names each topic once, for every deployment. A
deployment sharing a Kafka cluster with others (the benchmark, the fault suite, a test, a
sandbox) sets ``CRM_TOPIC_PREFIX`` (``ServiceSettings.topic_prefix``): its services
subscribe, publish, dead-letter and create topics under the prefixed names, and so do
``crm-ops`` and the simulator given the same prefix. The AsyncAPI documents keep the
contract's names.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from crm_events.topics import DEAD_LETTER, TOPICS, TopicSpec, topic_for, topic_specs

TOPIC_NAME_CHARACTERS = re.compile(r"[A-Za-z0-9._-]*")
"""What Kafka allows in a topic name."""
TOPIC_NAME_MAX_LENGTH = 249
LONGEST_CONTRACT_NAME = max(len(topic.name) for topic in TOPICS)


@dataclass(frozen=True)
class TopicNames:
    """Where a deployment's topics are; ``TopicNames()`` is the contract's own names."""

    prefix: str = ""

    def __post_init__(self) -> None:
        if not TOPIC_NAME_CHARACTERS.fullmatch(self.prefix):
            raise ValueError(
                f"a topic prefix may hold only letters, digits, '.', '_' and '-': {self.prefix!r}"
            )
        if len(self.prefix) + LONGEST_CONTRACT_NAME > TOPIC_NAME_MAX_LENGTH:
            raise ValueError(
                f"a topic prefix of {len(self.prefix)} characters makes topic names longer "
                f"than Kafka's {TOPIC_NAME_MAX_LENGTH}"
            )

    def __call__(self, topic: str) -> str:
        """The deployment's name of the contract's topic ``topic``."""
        return self.prefix + topic

    def of(self, topics: Iterable[str]) -> list[str]:
        """The deployment's names of the contract's ``topics``, in their order."""
        return [self(topic) for topic in topics]

    def of_event(self, event_type: str) -> str:
        """The deployment's topic that carries ``event_type`` (the relay's route)."""
        return self(topic_for(event_type).name)

    @property
    def dead_letter(self) -> str:
        return self(DEAD_LETTER.name)

    def specs(
        self, only: Iterable[str] | None = None, *, replication_factor: int = 1
    ) -> list[TopicSpec]:
        """Creation specs of the contract's topics (those named in ``only``, if given)
        under the deployment's names: partitions and settings as the contract says."""
        chosen = None if only is None else set(only)
        return [
            spec._replace(name=self(spec.name))
            for spec in topic_specs(replication_factor)
            if chosen is None or spec.name in chosen
        ]


CONTRACT_NAMES = TopicNames()
"""The contract's own names: a deployment without a prefix."""
