"""The options several ``crm-ops`` commands share: where the servers and the topics are."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from crm_backbone.credentials import OPS
from crm_backbone.settings import ServiceSettings
from crm_backbone.topic_names import TopicNames
from pymongo import AsyncMongoClient


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


def mongo_client(
    mongo_uri: str, namespace: str = "crm", **options: Any
) -> AsyncMongoClient[dict[str, Any]]:
    """A client of the server of ``mongo_uri`` as ``crm-ops``'s own user of the namespace
    (``crm_ops``), when its password is configured (``CRM_MONGO_PASSWORD``, or
    ``CRM_SECRETS_DIR`` as ``crm-infra`` writes it); else as ``mongo_uri`` says."""
    settings = ServiceSettings(mongo_uri=mongo_uri, namespace=namespace)
    return AsyncMongoClient(settings.mongo_client_uri(OPS), **options)
