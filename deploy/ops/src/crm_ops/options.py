"""The options several ``crm-ops`` commands share: where the servers are."""

from __future__ import annotations

from typing import Annotated

import typer

Bootstrap = Annotated[
    str, typer.Option(envvar="CRM_KAFKA_BOOTSTRAP", help="Kafka bootstrap servers")
]
MongoUri = Annotated[str, typer.Option(envvar="CRM_MONGO_URI", help="MongoDB URI")]
DEFAULT_KAFKA = "127.0.0.1:19092"
DEFAULT_MONGO = "mongodb://127.0.0.1:27117/?replicaSet=rs0"
