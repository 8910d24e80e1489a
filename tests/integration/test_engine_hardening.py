"""The evaluation engine against hostile servers and data, over real HTTP on loopback and a real
MLflow server: keys a server echoes back are masked everywhere they could land, oversized replies
are item errors, `--json-logs` stays JSON with MLflow on, and bad bytes in a dataset are a dataset
error (issue 12, the evaluation engine)."""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shinsa.evaluation.config import parse_config
from shinsa.evaluation.progress import JsonLinesReporter
from shinsa.evaluation.results import ExitCode
from shinsa.evaluation.runner import run_evaluation
from support.echoing_double import EchoingDouble

pytestmark = pytest.mark.e2e

JUDGE_KEY = "sk-judge-echoed-0123456789abcdef"
MODEL_KEY = "sk-model-echoed-9876543210fedcba"
BODY_SECRET = "tok-extra-body-echoed-55555555"


@pytest.fixture
def openai_double() -> Iterator[EchoingDouble]:
    # Replaces the integration conftest's double, so that `make_spec` points at this one.
    with EchoingDouble() as server:
        yield server


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


@pytest.mark.parametrize("refusing", ["judge", "model"])
def test_a_key_the_server_echoes_is_masked_in_errors_logs_and_artifacts(
    refusing: str,
    mlflow_server: str,
    make_spec: Any,
    openai_double: EchoingDouble,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("TEST_JUDGE_KEY", JUDGE_KEY)
    monkeypatch.setenv("TEST_MODEL_KEY", MODEL_KEY)
    openai_double.refuse_keys_of.add(refusing)
    spec = make_spec(repeats=1, mlflow={"trackingUri": mlflow_server, "experiment": "shinsa-hardening"})
    spec["engine"].update(judgeApiKeyEnv={"judge-a": "TEST_JUDGE_KEY"}, modelApiKeyEnv="TEST_MODEL_KEY")
    section = spec["judges"][0] if refusing == "judge" else spec["model"]
    section["extraBody"] = {"vendor": {"token": BODY_SECRET}}
    log = io.StringIO()

    result = asyncio.run(
        run_evaluation(parse_config(spec), reporter=JsonLinesReporter(stream=log, every_s=0))
    )

    # The server did quote them: the test would pass vacuously otherwise.
    assert result.items and all(i.error for i in result.items)
    error = next(i.error for i in result.items if i.error and "HTTP 401" in i.error)
    assert "Incorrect API key provided: Bearer ***" in error and "***" in error.split("settings")[1]
    assert result.mlflow_run_id is not None
    client = MlflowClient(tracking_uri=mlflow_server)
    artifacts = Path(client.download_artifacts(result.mlflow_run_id, "", str(tmp_path / "artifacts")))
    assert {"items.jsonl", "items_table.json"} <= {p.name for p in _files(artifacts)}
    assert "HTTP 401" in (artifacts / "items_table.json").read_text()
    captured = capfd.readouterr()
    for secret in (JUDGE_KEY, MODEL_KEY, BODY_SECRET):
        assert secret not in log.getvalue() + captured.out + captured.err
        for path in [*_files(artifacts), *_files(result.output_dir)]:
            assert secret.encode() not in path.read_bytes(), path


@pytest.mark.parametrize("target", ["model", "judge"])
def test_a_reply_over_the_cap_is_an_item_error_and_not_stored(
    target: str, make_spec: Any, openai_double: EchoingDouble
) -> None:
    # A server ignoring maxTokens: 1 MB replies once made 8 MB of results for 8 items.
    openai_double.huge_reply_chars[target] = 1_000_000
    spec = make_spec(repeats=1, maxResponseBytes=65536)
    result = asyncio.run(run_evaluation(parse_config(spec), reporter=JsonLinesReporter(every_s=60)))
    # A failed first answer leaves the second turn ungenerated ("not generated: turn 1 failed").
    first_turns = [i for i in result.items if i.turn == 1]
    assert first_turns and all(i.error for i in result.items)
    assert all(i.error and "reply larger than maxResponseBytes (65536 bytes)" in i.error for i in first_turns)
    assert sum(p.stat().st_size for p in _files(result.output_dir)) < 1_000_000


def test_json_logs_stay_json_with_mlflow_on(
    mlflow_server: str, make_spec: Any, manifest_file: Any, tmp_path: Path
) -> None:
    # A fresh experiment, so that MLflow also logs that it creates one.
    spec = make_spec(repeats=1, mlflow={"trackingUri": mlflow_server, "experiment": f"json-{tmp_path.name}"})
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "shinsa.commands.eval",
            "run",
            "--config",
            str(manifest_file(spec)),
            "--json-logs",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert done.returncode == ExitCode.OK, done.stdout + done.stderr
    for stream in (done.stdout, done.stderr):
        for line in stream.splitlines():
            assert isinstance(json.loads(line), dict), line
    events = [json.loads(line) for line in done.stderr.splitlines()]
    # What MLflow said is kept, as JSON.
    assert any("View run" in e["event"] for e in events)
    assert any(e["event"] == "logged to MLflow" for e in events)
