"""Generated JSON Schemas and AsyncAPI documents: fresh, and they accept our real records."""

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from crm_events import Envelope, EventPayload, Service, registry, to_kafka
from crm_events.generate import ROOT, main, stale_files, write
from crm_events.topics import SUBSCRIPTIONS
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

VERSIONS = [(t, v) for t in registry.event_types() for v in registry.versions(t)]
VALIDATOR = ROOT / "asyncapi-validator"


def _load(path: str) -> Any:
    return json.loads((ROOT / path).read_text(encoding="utf-8"))


def _validator(document: Any, pointer: str) -> Draft202012Validator:
    """Validator for the schema at ``pointer`` inside ``document`` (refs resolve in it)."""
    return Draft202012Validator({**document, "$ref": f"#{pointer}"})


def test_generated_files_are_fresh() -> None:
    stale = stale_files()
    assert not stale, f"stale: {[str(p) for p in stale]}; run: python -m crm_events.generate"


def test_check_command_passes_on_the_repo() -> None:
    command = [sys.executable, "-m", "crm_events.generate", "--check"]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_check_lists_stale_files_and_write_fixes_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--check", "--root", str(tmp_path)]) == 1
    assert "stale: asyncapi/customer.json" in capsys.readouterr().out

    write(tmp_path)
    (tmp_path / "schemas" / "crm.customer.retired.v1.json").write_text("{}")
    (tmp_path / "asyncapi" / "customer.json").write_text("{}")
    assert {str(p) for p in stale_files(tmp_path)} == {
        "asyncapi/customer.json",
        "schemas/crm.customer.retired.v1.json",
    }
    assert main(["--root", str(tmp_path)]) == 0
    assert main(["--check", "--root", str(tmp_path)]) == 0
    assert not (tmp_path / "schemas" / "crm.customer.retired.v1.json").exists()


@pytest.mark.parametrize(("event_type", "version"), VERSIONS)
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_json_schema_accepts_samples(event_type: str, version: int, data: st.DataObject) -> None:
    schema = _load(f"schemas/{event_type}.v{version}.json")
    Draft202012Validator.check_schema(schema)
    payload = data.draw(st.from_type(registry.model(event_type, version)))
    Draft202012Validator(schema).validate(payload.model_dump(mode="json"))


@pytest.mark.parametrize(
    "change",
    [{"colour": "red"}, {"status": "asleep"}, {"branch_id": ""}, {"name": "Zhang Wei"}],
)
def test_json_schema_rejects_invalid_payloads(change: dict[str, Any]) -> None:
    schema = _load("schemas/crm.customer.registered.v2.json")
    valid = {
        "customer_type": "individual",
        "name": {"full_name": "Zhang Wei"},
        "status": "prospect",
        "branch_id": "SH-002",
    }
    Draft202012Validator(schema).validate(valid)
    assert not Draft202012Validator(schema).is_valid(valid | change)


@pytest.mark.parametrize("service", list(Service))
@settings(max_examples=3, deadline=None)
@given(data=st.data())
def test_asyncapi_accepts_our_records(service: Service, data: st.DataObject) -> None:
    document = _load(f"asyncapi/{service.value}.json")
    for event_type in sorted(set(document["components"]["messages"]) - {"deadletter"}):
        payload: EventPayload = data.draw(st.from_type(registry.model(event_type)))
        record = to_kafka(Envelope.new(payload, "A-1", 3, actor="rm-1", source=service.source))
        headers = {name: value.decode() for name, value in record.headers}
        header_schema = _validator(document, f"/components/messages/{event_type}/headers")
        header_schema.validate(headers)
        assert not header_schema.is_valid(headers | {"ce_type": "crm.other.event"})
        payload_schema = _validator(document, f"/components/messages/{event_type}/payload")
        payload_schema.validate(json.loads(record.value))


def test_asyncapi_operations_follow_the_subscriptions() -> None:
    for service in Service:
        operations = _load(f"asyncapi/{service.value}.json")["operations"].values()
        received = {
            op["channel"]["$ref"].split("/")[-1] for op in operations if op["action"] == "receive"
        }
        assert received == {topic.name for topic in SUBSCRIPTIONS.get(service, ())}
    customer = _load("asyncapi/customer.json")["operations"]
    sends = {"send.crm.customer.events", "send.crm.deadletter", "send.crm.audit.reads"}
    assert {name for name in customer if name.startswith("send.")} == sends
    assert set(customer) - sends == {
        "receive.bank.corebanking.accounts",
        "receive.bank.corebanking.customers",
        "receive.crm.opportunity.events",
        "receive.crm.contactlog.events",
        "receive.crm.campaign.events",
        "receive.bank.hr.organisation",
        "receive.crm.audit.reads",
        "receive.bank.credit.facilities",
        "receive.bank.mis.contribution",
    }


@pytest.mark.skipif(
    shutil.which("node") is None or not (VALIDATOR / "node_modules").is_dir(),
    reason="needs node and `npm ci` in shared/events/asyncapi-validator",
)
def test_asyncapi_parser_accepts_documents() -> None:
    result = subprocess.run(
        ["node", "validate.mjs"], cwd=VALIDATOR, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
