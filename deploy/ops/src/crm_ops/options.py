"""The options several ``crm-ops`` commands share: where the servers and the topics are."""

from __future__ import annotations

from typing import Annotated

import typer
from crm_backbone.topic_names import TopicNames


def _kafka_accepts(prefix: str) -> str:
    try:
        TopicNames(prefix)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    return prefix


Bootstrap = Annotated[
    str, typer.Option(envvar="CRM_KAFKA_BOOTSTRAP", help="Kafka bootstrap servers")
]
MongoUri = Annotated[str, typer.Option(envvar="CRM_MONGO_URI", help="MongoDB URI")]
TopicPrefix = Annotated[
    str,
    typer.Option(
        envvar="CRM_TOPIC_PREFIX",
        callback=_kafka_accepts,
        help="Prefix of the deployment's topic names (its services' CRM_TOPIC_PREFIX)",
    ),
]
DEFAULT_KAFKA = "127.0.0.1:19092"
DEFAULT_MONGO = "mongodb://127.0.0.1:27117/?replicaSet=rs0"
