"""Test helpers: an API served on a real socket or called in process, its problems and
OpenAPI document checked, hand-written upstream records."""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
import uvicorn
from aiokafka import AIOKafkaProducer
from crm_backbone.kafka_acls import ADMIN, principal_of
from crm_backbone.settings import ServiceSettings
from crm_events.topics import TOPICS
from fastapi import FastAPI


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[str]:
    """Serve ``app`` (lifespan included) on a free loopback port; its base URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("the server stopped before it started")
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


def cloudevent(
    event_type: str,
    subject: str,
    version: int,
    data: dict[str, Any],
    *,
    source: str = "/bank/core-banking",
    schema_version: int = 1,
) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """A record in CloudEvents binary mode, written by hand as an upstream system would."""
    event_id = str(uuid.uuid4())
    headers = {
        "ce_specversion": "1.0",
        "ce_id": event_id,
        "ce_source": source,
        "ce_type": event_type,
        "ce_time": datetime.now(UTC).isoformat(),
        "ce_subject": subject,
        "content-type": "application/json",
        "ce_aggregateid": subject,
        "ce_aggregateversion": str(version),
        "ce_correlationid": event_id,
        "ce_causationid": event_id,
        "ce_actor": "upstream-test",
        "ce_schemaversion": str(schema_version),
    }
    return (
        subject.encode(),
        json.dumps(data).encode(),
        [(name, value.encode()) for name, value in headers.items()],
    )


async def produce_plain(
    bootstrap: str,
    records: list[tuple[str, tuple[bytes, bytes, list[tuple[str, bytes]]]]],
    *,
    name: Callable[[str], str] | None = None,
) -> None:
    """Send ``(topic, (key, value, headers))`` records with bare aiokafka producers, in
    order, each as the principal owning its contract topic (the admin for a topic outside
    the contract); ``name`` gives the deployment's name of each contract topic (a test's
    own prefix)."""
    settings = ServiceSettings()
    owners = {topic.name: topic.owner for topic in TOPICS}
    producers: dict[str, AIOKafkaProducer] = {}
    try:
        for topic, (key, value, headers) in records:
            owner = owners.get(topic)
            principal = ADMIN if owner is None else principal_of(owner)
            if principal not in producers:
                producers[principal] = AIOKafkaProducer(
                    bootstrap_servers=bootstrap,
                    acks="all",
                    **settings.kafka_client_options(principal),
                )
                await producers[principal].start()
            await producers[principal].send_and_wait(
                topic if name is None else name(topic), value=value, key=key, headers=headers
            )
    finally:
        for producer in producers.values():
            await producer.stop()


@asynccontextmanager
async def in_process(
    app: FastAPI, close: Callable[[], Awaitable[None]], headers: dict[str, str] | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """A client calling ``app`` in this process (no socket, no lifespan); ``close`` after."""
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(
            transport=transport, base_url="http://service", headers=headers
        ) as client:
            yield client
    finally:
        await close()


def assert_problem(response: httpx.Response, status: int, kind: str) -> dict[str, Any]:
    """Assert ``response`` is an RFC 9457 problem document of ``kind``; its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["type"] == f"/problems/{kind}"
    assert body["status"] == status
    assert body["detail"]
    return body


def assert_documented(
    spec: Mapping[str, Any],
    path: str,
    method: str = "get",
    problems: Mapping[int, str] | None = None,
) -> None:
    """Assert the OpenAPI document ``spec`` documents the operation ``method path``: a
    summary and a description; an example of its answer, of each query parameter and of
    its body; the problem documents 401, 403 and 422, and those of ``problems`` (status ->
    the kind its example names)."""
    operation = spec["paths"][path][method]
    name = f"{method.upper()} {path}"
    assert operation.get("summary"), name
    assert operation.get("description"), name
    answers = [a for status, a in operation["responses"].items() if status.startswith("2")]
    assert answers, name
    for answer in answers:
        assert _has_example(spec, answer["content"]["application/json"]), f"{name}: answer"
    for parameter in operation.get("parameters", []):
        if parameter["in"] == "query":
            assert _has_example(spec, parameter), f"{name}: {parameter['name']}"
    if "requestBody" in operation:
        assert _has_example(spec, operation["requestBody"]["content"]["application/json"]), name
    kinds = problems or {}
    for status in (401, 403, 422, *kinds):
        documented = operation["responses"][str(status)]["content"]["application/problem+json"]
        if status in kinds:
            assert documented["example"]["type"] == f"/problems/{kinds[status]}", name


def _has_example(spec: Mapping[str, Any], described: Mapping[str, Any]) -> bool:
    """Whether ``described`` (a schema, parameter or media type) or the schema it names
    (through ``$ref``, ``schema``, ``anyOf``, ``allOf``) holds an example."""
    if described.get("example") is not None or described.get("examples"):
        return True
    if "$ref" in described:
        *_, component = described["$ref"].split("/")
        return _has_example(spec, spec["components"]["schemas"][component])
    named = [described["schema"]] if "schema" in described else []
    named += [*described.get("anyOf", []), *described.get("allOf", [])]
    return any(_has_example(spec, schema) for schema in named)
