"""Every published example message behaves as its ``expect`` says, through the decoder, the
``civic contract check`` command and the published JSON Schemas."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import pytest

from civic.cli import main
from firmware_contracts.check import check_line
from firmware_contracts.schemas_gen import SCHEMA_DIR, SCHEMAS, render
from firmware_contracts.topics import TopicLayout

EXAMPLES = Path(__file__).resolve().parents[2] / "firmware_contracts" / "examples"
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def _examples(name: str) -> list[dict]:
    return [json.loads(line) for line in (EXAMPLES / name).read_text().splitlines() if line]


ALL = _examples("valid.jsonl") + _examples("invalid.jsonl")


@pytest.mark.parametrize("example", ALL, ids=[e["note"] for e in ALL])
def test_example_gives_expected_result(example: dict) -> None:
    result = check_line(json.dumps(example), layout=TopicLayout(), now=NOW)
    assert result["ok"] == example["expect"]["ok"]
    if result["ok"]:
        assert result["readings"] == example["expect"]["readings"]
    else:
        assert result["reason"] == example["expect"]["reason"]
        assert result["detail"]


def test_committed_schemas_match_models() -> None:
    for name, model in SCHEMAS.items():
        assert (SCHEMA_DIR / name).read_text() == render(model), (
            f"{name} is stale: run python -m firmware_contracts.schemas_gen"
        )


def test_valid_native_examples_pass_published_schema() -> None:
    single = json.loads((SCHEMA_DIR / "telemetry.v1.json").read_text())
    batch = json.loads((SCHEMA_DIR / "telemetry-batch.v1.json").read_text())
    checked = 0
    for example in _examples("valid.jsonl"):
        payload = json.loads(example["payload"])
        if "v" not in payload:
            continue  # network-server uplink shapes are unwrapped by the platform first
        schema = batch if "readings" in payload else single
        jsonschema.validate(payload, schema, format_checker=jsonschema.FormatChecker())
        checked += 1
    assert checked >= 5


def test_out_of_range_examples_fail_published_schema() -> None:
    single = json.loads((SCHEMA_DIR / "telemetry.v1.json").read_text())
    for example in _examples("invalid.jsonl"):
        if example["expect"]["reason"] != "out_of_range":
            continue
        payload = json.loads(example["payload"])
        if "readings" in payload:
            continue
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(payload, single)


def test_contract_check_command(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["contract", "check", str(EXAMPLES / "invalid.jsonl")])
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert status == 1
    assert [x["reason"] for x in lines] == [
        e["expect"]["reason"] for e in _examples("invalid.jsonl")
    ]
    assert main(["contract", "check", str(EXAMPLES / "valid.jsonl")]) == 0
    assert all(json.loads(x)["ok"] for x in capsys.readouterr().out.splitlines())


def test_contract_check_reports_bad_envelope_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text('not json\n{"topic": 1, "payload": "{}"}\n\n')
    assert main(["contract", "check", str(path)]) == 1
    out = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["reason"] for x in out] == ["invalid_json", "schema"]
