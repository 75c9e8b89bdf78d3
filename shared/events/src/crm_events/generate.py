"""Generate the JSON Schemas and AsyncAPI documents from the code; never edit them by hand.

``python -m crm_events.generate`` writes ``schemas/<type>.v<N>.json`` (every registered
version), ``asyncapi/<service>.json`` (AsyncAPI 3.0) and ``personal-data.md`` (the fields
treated as personal data) under shared/events;
``--check`` writes nothing, lists stale files and exits 1 if there are any.
"""

import argparse
import json
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

from pydantic.json_schema import models_json_schema

from crm_events.envelope import CONTENT_TYPE, HEADERS, REQUIRED_HEADERS, Envelope
from crm_events.personal import declared_fields, sealable_schema
from crm_events.registry import EventPayload, registry
from crm_events.topics import (
    DEAD_LETTER,
    DEAD_LETTER_HEADERS,
    SUBSCRIPTIONS,
    Service,
    Topic,
    written_by,
)

ROOT = Path(__file__).resolve().parents[2]
GENERATED_DIRS = ("schemas", "asyncapi")
KAFKA_BINDING = "0.5.0"
JsonObject = dict[str, Any]


def event_schema(model: type[EventPayload]) -> JsonObject:
    """Standalone JSON Schema (2020-12) of one payload version."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"urn:bank-crm:event:{model.event_type}:v{model.schema_version}",
        **sealable_schema(model, model.model_json_schema()),
        "x-event-type": model.event_type,
        "x-schema-version": model.schema_version,
    }


def _header_schema() -> JsonObject:
    """Kafka headers of the envelope, every value a string, derived from ``Envelope``."""
    attributes = Envelope.model_json_schema()["properties"]
    properties: JsonObject = {}
    for name, header in HEADERS.items():
        schema = {k: v for k, v in attributes[name].items() if k not in ("title", "default")}
        if "anyOf" in schema:  # optional: a header present holds a value, never null
            (present,) = [s for s in schema.pop("anyOf") if s.get("type") != "null"]
            schema |= present
        if schema.get("type") == "integer":
            schema |= {"type": "string", "pattern": "^[1-9][0-9]*$"}
            schema.pop("exclusiveMinimum", None)
        properties[header] = schema
    return {
        "type": "object",
        "description": "CloudEvents 1.0 attributes, Kafka binary content mode",
        "properties": properties,
        "required": list(REQUIRED_HEADERS.values()),
    }


def _message(model: type[EventPayload], payload: JsonObject) -> JsonObject:
    return {
        "name": model.event_type,
        "title": f"{model.__name__} v{model.schema_version}",
        "summary": (model.__doc__ or model.__name__).strip().splitlines()[0],
        "contentType": CONTENT_TYPE,
        "headers": {
            "allOf": [
                {"$ref": "#/components/schemas/CloudEventHeaders"},
                {
                    "type": "object",
                    "properties": {
                        "ce_type": {"const": model.event_type},
                        "ce_schemaversion": {"const": str(model.schema_version)},
                    },
                },
            ]
        },
        "payload": payload,
        "correlationId": {"$ref": "#/components/correlationIds/correlationid"},
        "bindings": {
            "kafka": {
                "key": {"type": "string", "description": "Aggregate id"},
                "bindingVersion": KAFKA_BINDING,
            }
        },
    }


def _dead_letter_message() -> JsonObject:
    return {
        "name": "deadletter",
        "title": "Dead letter",
        "summary": "An unreadable record as received, with why it was set aside",
        "headers": {
            "type": "object",
            "properties": {
                name: {"type": "string", "description": text}
                for name, text in DEAD_LETTER_HEADERS.items()
            },
            "required": list(DEAD_LETTER_HEADERS),
        },
        "payload": {"description": "The original record value, unchanged"},
    }


def _channel(topic: Topic, messages: list[str]) -> JsonObject:
    return {
        "address": topic.name,
        "description": topic.description,
        "messages": {name: {"$ref": f"#/components/messages/{name}"} for name in messages},
        "bindings": {
            "kafka": {
                "topic": topic.name,
                "partitions": topic.partitions,
                "topicConfiguration": {
                    "cleanup.policy": [topic.cleanup_policy],
                    "retention.ms": topic.retention_ms,
                },
                "bindingVersion": KAFKA_BINDING,
            }
        },
    }


def asyncapi_document(service: Service) -> JsonObject:
    """AsyncAPI 3.0 document: what ``service`` sends and receives, on which topics."""
    receives = SUBSCRIPTIONS.get(service, ())
    sends = written_by(service)
    topics = list(dict.fromkeys(sends + receives))
    models = [registry.model(t) for topic in topics for t in topic.event_types()]
    refs, definitions = models_json_schema(
        [(model, "validation") for model in models],
        ref_template="#/components/schemas/{model}",
    )
    for model in models:
        name = refs[(model, "validation")]["$ref"].rsplit("/", 1)[-1]
        definitions["$defs"][name] = sealable_schema(model, definitions["$defs"][name])
    messages = {m.event_type: _message(m, refs[(m, "validation")]) for m in models}
    if DEAD_LETTER in topics:
        messages["deadletter"] = _dead_letter_message()

    def names(topic: Topic) -> list[str]:
        return ["deadletter"] if topic is DEAD_LETTER else topic.event_types()

    def operation(action: str, topic: Topic) -> JsonObject:
        return {
            "action": action,
            "channel": {"$ref": f"#/channels/{topic.name}"},
            "messages": [{"$ref": f"#/channels/{topic.name}/messages/{n}"} for n in names(topic)],
        }

    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": f"{service.value} events",
            "version": version("crm-events"),
            "description": f"Events the {service.value} service produces and consumes "
            f"(CloudEvents source {service.source}). Generated by crm_events.generate.",
        },
        "defaultContentType": CONTENT_TYPE,
        "channels": {topic.name: _channel(topic, names(topic)) for topic in topics},
        "operations": {
            **{f"send.{topic.name}": operation("send", topic) for topic in sends},
            **{f"receive.{topic.name}": operation("receive", topic) for topic in receives},
        },
        "components": {
            "schemas": {"CloudEventHeaders": _header_schema(), **definitions.get("$defs", {})},
            "messages": messages,
            "correlationIds": {
                "correlationid": {
                    "description": "Correlation id of the flow",
                    "location": "$message.header#/ce_correlationid",
                }
            },
        },
    }


PERSONAL_DATA_DOC = Path("personal-data.md")


def personal_data_table() -> str:
    """The fields of every current payload that hold personal data, as a Markdown table."""
    lines = [
        "# Personal data in the contracts",
        "",
        "Generated by `python -m crm_events.generate` from the `Personal` markers of",
        "`crm_events` (`crm_events.personal.personal_fields`); never edit by hand. Each field",
        "is sealed whole under its data subject's key in the event store and on the CRM's",
        "topics; once the key is destroyed it reads as its erased form. The data subject is",
        "the envelope's aggregate id unless a subject field is named.",
        "",
        "| Event type | Data subject | Field | Kind | Erased form |",
        "|---|---|---|---|---|",
    ]
    for event_type in registry.event_types():
        model = registry.model(event_type)
        subject = f"`{model.subject_field}`" if model.subject_field else "aggregate id"
        lines += [
            f"| `{event_type}` | {subject} | `{field.name}` | {field.kind.value} "
            f"| `{json.dumps(field.erased, ensure_ascii=False)}` |"
            for field in declared_fields(model)
        ]
    return "\n".join(lines) + "\n"


def _dump(document: JsonObject) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def expected_files() -> dict[Path, str]:
    """Every generated file (path relative to shared/events) and its content."""
    files = {
        Path("schemas", f"{t}.v{v}.json"): _dump(event_schema(registry.model(t, v)))
        for t in registry.event_types()
        for v in registry.versions(t)
    }
    files.update(
        {Path("asyncapi", f"{s.value}.json"): _dump(asyncapi_document(s)) for s in Service}
    )
    files[PERSONAL_DATA_DOC] = personal_data_table()
    return files


def _stale(root: Path, expected: dict[Path, str]) -> list[Path]:
    differing = [
        path
        for path, text in expected.items()
        if not (root / path).is_file() or (root / path).read_text(encoding="utf-8") != text
    ]
    unexpected = [
        path.relative_to(root)
        for folder in GENERATED_DIRS
        for path in sorted((root / folder).glob("*.json"))
        if path.relative_to(root) not in expected
    ]
    return differing + unexpected


def stale_files(root: Path = ROOT) -> list[Path]:
    """Generated files that are missing, differ or should not exist."""
    return _stale(root, expected_files())


def write(root: Path = ROOT) -> list[Path]:
    """Bring the generated files up to date; returns those written or removed."""
    expected = expected_files()
    stale = _stale(root, expected)
    for path in stale:
        target = root / path
        if path in expected:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(expected[path], encoding="utf-8")
        else:
            target.unlink()
    return stale


def main(argv: list[str] | None = None) -> int:
    """Command line: generate, or with ``--check`` report stale files and exit 1."""
    parser = argparse.ArgumentParser(prog="python -m crm_events.generate", description=__doc__)
    parser.add_argument("--check", action="store_true", help="only list stale files")
    parser.add_argument("--root", type=Path, default=ROOT, help="shared/events directory")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files(args.root)
        for path in stale:
            print(f"stale: {path}")
        if stale:
            print("run: python -m crm_events.generate", file=sys.stderr)
        return 1 if stale else 0
    for path in write(args.root):
        print(f"updated: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
