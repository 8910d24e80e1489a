"""Evaluation against the real MLflow and S3 servers: logging, S3 datasets and S3 checkpoints."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from typing import Any

import boto3
import pytest

from shinsa.evaluation.config import parse_config
from shinsa.evaluation.progress import JsonLinesReporter
from shinsa.evaluation.runner import RunResult, run_evaluation
from support.openai_server import FakeOpenAI

pytestmark = pytest.mark.e2e


def run(spec: dict[str, Any]) -> RunResult:
    return asyncio.run(run_evaluation(parse_config(spec), reporter=JsonLinesReporter(every_s=60)))


def test_results_are_logged_to_mlflow_without_secrets(
    mlflow_server: str,
    make_spec: Any,
    openai_double: FakeOpenAI,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    from mlflow.tracking import MlflowClient

    secret = "sk-test-never-log-this-0123456789"
    model_secret = "sk-model-never-log-this-9876543210"
    body_secret = "tok-extra-body-never-log-this-5555"
    monkeypatch.setenv("TEST_JUDGE_KEY", secret)
    monkeypatch.setenv("TEST_MODEL_KEY", model_secret)
    spec = make_spec(
        benchmarks=["mt-bench", "answer-carefully"],
        mlflow={"trackingUri": mlflow_server, "experiment": "shinsa-eval-test"},
    )
    spec["engine"].update(judgeApiKeyEnv={"judge-a": "TEST_JUDGE_KEY"}, modelApiKeyEnv="TEST_MODEL_KEY")
    spec["judges"][0]["extraBody"] = {"vendor_token": body_secret}
    log = io.StringIO()
    result = asyncio.run(
        run_evaluation(parse_config(spec), reporter=JsonLinesReporter(stream=log, every_s=0))
    )
    assert result.mlflow_run_id is not None

    client = MlflowClient(tracking_uri=mlflow_server)
    parent = client.get_run(result.mlflow_run_id)
    mt = result.results.benchmarks["mt-bench"]
    assert parent.data.metrics["mt-bench/mean"] == pytest.approx(mt.mean)
    assert parent.data.metrics["mt-bench/score"] == pytest.approx(mt.mean)
    for key in ("std", "ci_low", "ci_high", "error_rate"):
        assert parent.data.metrics[f"mt-bench/{key}"] == pytest.approx(getattr(mt, key))
    assert "mt-bench/category/math/mean" in parent.data.metrics
    assert "answer-carefully/violation_rate" in parent.data.metrics
    assert parent.data.params["model"] == openai_double.model
    assert parent.data.params["repeats"] == "2"
    assert parent.data.params["mt-bench.dataset.digest"].startswith("sha256:")
    assert parent.data.tags["shinsa.status"] == "Succeeded"
    assert parent.data.params["judge/judge-a/model"] == "judge-a"
    assert parent.data.params["judge/judge-a/temperature"] == "0.0"
    assert parent.data.params["judge/judge-a/parse_retries"] == "2"

    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"scores.json", "items.jsonl", "items_table.json", "plots"} <= artifacts

    children = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    assert sorted(c.data.params["repeat"] for c in children) == ["0", "1"]
    per_repeat = {c.data.params["repeat"]: c.data.metrics["mt-bench/mean"] for c in children}
    assert per_repeat["0"] == pytest.approx(mt.per_repeat[0])

    secrets = (secret, model_secret, body_secret)
    logged = json.dumps(
        [parent.data.params, parent.data.tags, [[c.data.params, c.data.tags] for c in children]]
    )
    # Every artifact, the results directory, the JSON log lines and whatever else reached stdout/stderr.
    artifacts_dir = Path(client.download_artifacts(parent.info.run_id, "", str(tmp_path / "artifacts")))
    files = [p for p in [*artifacts_dir.rglob("*"), *result.output_dir.rglob("*")] if p.is_file()]
    assert any(p.name == "config.json" for p in files) and any(p.name == "items_table.json" for p in files)
    captured = capfd.readouterr()
    for value in secrets:
        assert value not in logged
        assert value not in log.getvalue() and value not in captured.out + captured.err
        for path in files:
            assert value.encode() not in path.read_bytes(), path
    config = json.loads((artifacts_dir / "config.json").read_text())
    assert config["engine"]["judgeApiKeyEnv"] == {"judge-a": "TEST_JUDGE_KEY"}
    assert config["judges"][0]["extraBody"] == {"vendor_token": "<not logged>"}


def test_datasets_and_checkpoints_in_s3(
    s3_server: str, make_spec: Any, openai_double: FakeOpenAI, datasets: dict[str, Path]
) -> None:
    s3 = boto3.client("s3", endpoint_url=s3_server)
    s3.create_bucket(Bucket="eval-data")
    for path in datasets["mt-bench"].rglob("*.jsonl"):
        s3.upload_file(str(path), "eval-data", f"mt-bench/{path.relative_to(datasets['mt-bench'])}")

    spec = make_spec(repeats=1, engine={"checkpointUri": "s3://eval-data/checkpoints/run-1"})
    spec["benchmarks"][0]["dataset"]["uri"] = "s3://eval-data/mt-bench"
    first = run(spec)
    assert first.exit_code == 0
    assert first.results.benchmarks["mt-bench"].dataset.uri == "s3://eval-data/mt-bench"
    parts = s3.list_objects_v2(Bucket="eval-data", Prefix="checkpoints/run-1/")["Contents"]
    assert parts

    openai_double.reset()
    second = run(spec)
    assert openai_double.requests == 0
    assert second.results.benchmarks["mt-bench"].mean == first.results.benchmarks["mt-bench"].mean

    # Starting over keeps the old records, moved under a sibling prefix, as a local checkpoint does.
    def records_under(prefix: str) -> set[str]:
        listed = s3.list_objects_v2(Bucket="eval-data", Prefix=prefix).get("Contents", [])
        return {
            line
            for obj in listed
            for line in s3.get_object(Bucket="eval-data", Key=obj["Key"])["Body"].read().decode().splitlines()
        }

    old_records = records_under("checkpoints/run-1/")
    openai_double.reset()
    fresh = asyncio.run(
        run_evaluation(parse_config(spec), resume=False, reporter=JsonLinesReporter(every_s=60))
    )
    assert fresh.exit_code == 0 and openai_double.requests == sum(first.results.requests.values())
    kept = s3.list_objects_v2(Bucket="eval-data", Prefix="checkpoints/run-1.old-")["Contents"]
    assert kept and all(obj["Key"].split("/")[2].startswith("records-") for obj in kept)
    assert records_under("checkpoints/run-1.old-") == old_records
    # What is left under the checkpoint prefix is the fresh run's work alone.
    assert len(records_under("checkpoints/run-1/")) == openai_double.requests
