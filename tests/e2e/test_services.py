"""The MLflow and S3 servers the suite starts are real servers, used through their real clients."""

from __future__ import annotations

import boto3
import pytest
from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.e2e


def test_mlflow_server_records_runs_metrics_and_artifacts(mlflow_server: str, tmp_path) -> None:
    client = MlflowClient(tracking_uri=mlflow_server)
    experiment_id = client.create_experiment("fixture-check")
    run = client.create_run(experiment_id)
    client.log_metric(run.info.run_id, "mt-bench/mean", 7.5)
    note = tmp_path / "note.txt"
    note.write_text("hello")
    client.log_artifact(run.info.run_id, str(note))
    client.set_terminated(run.info.run_id)

    fetched = client.get_run(run.info.run_id)
    assert fetched.data.metrics["mt-bench/mean"] == 7.5
    assert [a.path for a in client.list_artifacts(run.info.run_id)] == ["note.txt"]


def test_s3_server_stores_and_returns_objects(s3_server: str) -> None:
    s3 = boto3.client("s3", endpoint_url=s3_server)
    s3.create_bucket(Bucket="datasets")
    s3.put_object(Bucket="datasets", Key="mt-bench/question.jsonl", Body=b'{"question_id": 1}\n')
    listed = s3.list_objects_v2(Bucket="datasets", Prefix="mt-bench/")
    assert [o["Key"] for o in listed["Contents"]] == ["mt-bench/question.jsonl"]
    body = s3.get_object(Bucket="datasets", Key="mt-bench/question.jsonl")["Body"].read()
    assert body == b'{"question_id": 1}\n'
