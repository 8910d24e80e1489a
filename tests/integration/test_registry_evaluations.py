"""The operator's evaluation-results adapter against the real MLflow and S3 servers: evaluations run
by the engine against the OpenAI double, logged to MLflow and uploaded to S3, read back; baselines
by run id and by a registered model's alias; the gate decision recorded on the candidate's run."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest

from shinsa.api.eval_run import EvalRunPhase, EvalRunStatus
from shinsa.api.gates import BaselineRef, GatePolicy
from shinsa.devcluster.cluster import free_port
from shinsa.evaluation.config import parse_config
from shinsa.evaluation.mlflow_log import (
    TAG_EVALRUN_NAME,
    TAG_EVALRUN_NAMESPACE,
    TAG_EVALRUN_UID,
    TAG_MODEL_VERSION,
    TAG_REGISTERED_MODEL,
)
from shinsa.evaluation.progress import JsonLinesReporter
from shinsa.evaluation.results import RunResults
from shinsa.evaluation.runner import RunResult, run_evaluation
from shinsa.gates import evaluate_gates
from shinsa.registry.evaluations import (
    GATE_TAGS,
    GATES_ARTIFACT,
    TAG_GATE_BASELINE_RUN_ID,
    TAG_GATE_DECISION,
    TAG_GATE_RULES,
    ResultsNotFound,
    ResultsStore,
    ResultsUnavailable,
    ResultsUnreadable,
    fetch_mlflow_results,
    fetch_results,
    fetch_s3_results,
    mlflow_run_url,
    record_decision,
    resolve_baseline,
)
from support.openai_server import FakeOpenAI

pytestmark = pytest.mark.e2e

BUCKET = "shinsa-results"
SECRET = "sk-planted-never-log-this-4242424242"


@pytest.fixture
def bucket(s3_server: str) -> str:
    s3 = boto3.client("s3", endpoint_url=s3_server)
    if BUCKET not in {b["Name"] for b in s3.list_buckets().get("Buckets", [])}:
        s3.create_bucket(Bucket=BUCKET)
    return BUCKET


@pytest.fixture
def store(mlflow_server: str, s3_server: str, bucket: str) -> ResultsStore:
    return ResultsStore(tracking_uri=mlflow_server, s3_endpoint_url=s3_server)


def evaluate(
    make_spec: Any,
    tmp_path: Path,
    store: ResultsStore,
    name: str,
    tags: dict[str, str],
    *,
    experiment: str = "shinsa-registry-test",
    **overrides: Any,
) -> tuple[RunResult, str]:
    """One evaluation by the engine (mt-bench, one repeat), logged to MLflow with `tags` and
    uploaded to S3; returns its result and results URI."""
    results_uri = f"s3://{BUCKET}/{name}-{uuid.uuid4().hex[:8]}/results"
    spec = make_spec(
        repeats=1,
        mlflow={"trackingUri": store.tracking_uri, "experiment": experiment},
        engine={"outputDir": str(tmp_path / name), "resultsUri": results_uri, "mlflowTags": tags},
        **overrides,
    )
    spec["engine"]["judgeApiKeyEnv"] = {"judge-a": "TEST_JUDGE_KEY"}
    result = asyncio.run(run_evaluation(parse_config(spec), reporter=JsonLinesReporter(every_s=60)))
    assert result.mlflow_run_id is not None
    return result, results_uri


def decide(candidate: RunResults, baseline: RunResults) -> dict[str, Any]:
    policy = GatePolicy.model_validate(
        {
            "minPairs": 5,
            "rules": [
                {"type": "minimum", "benchmark": "mt-bench", "threshold": 1},
                {"type": "nonInferiority", "benchmark": "mt-bench", "margin": 0.5},
                {"type": "maxErrorRate", "limit": 0.05},
            ],
        }
    )
    return evaluate_gates(policy, candidate, baseline, draws=500).model_dump(mode="json")


def test_results_from_s3_and_mlflow_read_back_equal_and_the_decision_is_recorded_once(
    make_spec: Any, store: ResultsStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("TEST_JUDGE_KEY", SECRET)
    tags = {TAG_EVALRUN_NAMESPACE: "team-a", TAG_EVALRUN_NAME: "nightly", TAG_EVALRUN_UID: str(uuid.uuid4())}
    result, results_uri = evaluate(make_spec, tmp_path, store, "candidate", tags)
    run_id = result.mlflow_run_id
    assert run_id is not None

    from_s3 = fetch_s3_results(results_uri, endpoint_url=store.s3_endpoint_url)
    from_mlflow = fetch_mlflow_results(run_id, tracking_uri=str(store.tracking_uri))
    assert from_s3 == result.results
    assert from_mlflow == result.results
    assert fetch_results(store, results_uri=results_uri, mlflow_run_id=run_id) == result.results
    # A Job that wrote nothing to S3: its MLflow run is read instead.
    assert (
        fetch_results(store, results_uri=f"s3://{BUCKET}/nothing-here/", mlflow_run_id=run_id)
        == result.results
    )

    # An EvalRun baseline, read through the status the controller looks up.
    seen = EvalRunStatus(phase=EvalRunPhase.SUCCEEDED, results_uri=results_uri, mlflow_run_id=run_id)
    by_ref = resolve_baseline(
        BaselineRef.model_validate({"evalRunRef": {"name": "nightly"}}),
        "team-a",
        lambda ns, name: seen if (ns, name) == ("team-a", "nightly") else None,
        store,
    )
    assert by_ref == result.results
    by_run = resolve_baseline(BaselineRef(mlflow_run_id=run_id), "team-a", lambda ns, name: None, store)
    assert by_run == result.results

    client = MlflowClient(tracking_uri=store.tracking_uri)
    run = client.get_run(run_id)
    assert {k: run.data.tags[k] for k in tags} == tags
    url = mlflow_run_url(str(store.tracking_uri), run.info.experiment_id, run_id)
    assert url == f"{store.tracking_uri}/#/experiments/{run.info.experiment_id}/runs/{run_id}"

    # The decision, twice (a retried reconcile): the same tags, one gates.json.
    made = decide(from_s3, by_run)
    for _ in range(2):
        record_decision(
            run_id, made, run_id, tracking_uri=str(store.tracking_uri), baseline=f"MLflow run {run_id}"
        )
        after = client.get_run(run_id).data.tags
        assert after[TAG_GATE_DECISION] == made["decision"]
        assert after[TAG_GATE_RULES].startswith("0 minimum mt-bench/score=")
        assert after[TAG_GATE_BASELINE_RUN_ID] == run_id
    first = {k: v for k, v in after.items() if k in GATE_TAGS}
    record_decision(
        run_id, made, run_id, tracking_uri=str(store.tracking_uri), baseline=f"MLflow run {run_id}"
    )
    assert {k: v for k, v in client.get_run(run_id).data.tags.items() if k in GATE_TAGS} == first
    paths = [a.path for a in client.list_artifacts(run_id)]
    assert paths.count(GATES_ARTIFACT) == 1
    gates = json.loads(
        Path(client.download_artifacts(run_id, GATES_ARTIFACT, str(tmp_path / "g"))).read_text()
    )
    assert gates["decision"] == made["decision"] and gates["rules"] == made["rules"]
    assert gates["baseline_run_id"] == run_id

    # Decided again without a baseline: the link to the old one goes.
    record_decision(run_id, made, None, tracking_uri=str(store.tracking_uri))
    assert TAG_GATE_BASELINE_RUN_ID not in client.get_run(run_id).data.tags

    # The planted key is in none of the run's tags, params, artifacts, nor the uploaded results.
    final = client.get_run(run_id)
    assert SECRET not in json.dumps([final.data.tags, final.data.params])
    artifacts = Path(client.download_artifacts(run_id, "", str(tmp_path / "all")))
    files = [p for p in artifacts.rglob("*") if p.is_file()]
    assert any(p.name == GATES_ARTIFACT for p in files) and any(p.name == "scores.json" for p in files)
    s3 = boto3.client("s3", endpoint_url=store.s3_endpoint_url)
    prefix = results_uri.removeprefix(f"s3://{BUCKET}/")
    uploaded = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix)["Contents"]]
    assert uploaded
    for path in files:
        assert SECRET.encode() not in path.read_bytes(), path
    for key in uploaded:
        assert SECRET.encode() not in s3.get_object(Bucket=BUCKET, Key=key)["Body"].read(), key


def test_missing_and_unreadable_results_say_which(store: ResultsStore, bucket: str) -> None:
    s3 = boto3.client("s3", endpoint_url=store.s3_endpoint_url)
    with pytest.raises(ResultsNotFound, match=f"s3://{BUCKET}/no/such/run/scores.json: no such object"):
        fetch_s3_results(f"s3://{BUCKET}/no/such/run/", endpoint_url=store.s3_endpoint_url)
    with pytest.raises(ResultsNotFound, match=r"s3://no-such-bucket-shinsa/scores\.json"):
        fetch_s3_results("s3://no-such-bucket-shinsa", endpoint_url=store.s3_endpoint_url)
    s3.put_object(Bucket=BUCKET, Key="broken/scores.json", Body=b"{not json")
    with pytest.raises(ResultsUnreadable, match=f"s3://{BUCKET}/broken/scores.json: not JSON"):
        fetch_s3_results(f"s3://{BUCKET}/broken", endpoint_url=store.s3_endpoint_url)
    s3.put_object(Bucket=BUCKET, Key="old/scores.json", Body=b'{"schema_version": 99}')
    with pytest.raises(ResultsUnreadable, match="schema_version 99"):
        fetch_s3_results(f"s3://{BUCKET}/old/", endpoint_url=store.s3_endpoint_url)

    missing = uuid.uuid4().hex
    with pytest.raises(ResultsNotFound, match=f"MLflow run {missing}: not found") as exc:
        resolve_baseline(BaselineRef(mlflow_run_id=missing), "ns", lambda ns, name: None, store)
    assert exc.value.source == f"MLflow run {missing}"

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=store.tracking_uri)
    experiment = client.get_experiment_by_name("shinsa-registry-other") or client.get_experiment(
        client.create_experiment("shinsa-registry-other")
    )
    other = client.create_run(experiment.experiment_id)
    with pytest.raises(ResultsUnreadable, match=f"MLflow run {other.info.run_id} is not the parent run"):
        fetch_mlflow_results(other.info.run_id, tracking_uri=str(store.tracking_uri))
    client.set_tag(other.info.run_id, "shinsa.kind", "evaluation")
    with pytest.raises(ResultsNotFound, match=f"MLflow run {other.info.run_id} has no scores.json artifact"):
        fetch_mlflow_results(other.info.run_id, tracking_uri=str(store.tracking_uri))


def test_a_model_alias_baseline_is_the_latest_succeeded_evaluation_of_the_version_behind_it(
    make_spec: Any,
    openai_double: FakeOpenAI,
    store: ResultsStore,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("TEST_JUDGE_KEY", SECRET)
    client = MlflowClient(tracking_uri=store.tracking_uri, registry_uri=store.tracking_uri)
    name = f"llm-jp-4-8b-{uuid.uuid4().hex[:8]}"
    client.create_registered_model(name)
    for _ in range(3):
        client.create_model_version(name, source=f"s3://models/{name}")
    client.set_registered_model_alias(name, "champion", "1")
    client.set_registered_model_alias(name, "unevaluated", "3")

    def of(version: str) -> dict[str, str]:
        return {TAG_REGISTERED_MODEL: name, TAG_MODEL_VERSION: version}

    older, _ = evaluate(make_spec, tmp_path, store, "v1-older", of("1"))
    # Version 2's evaluation is in another experiment: the search covers them all.
    v2, _ = evaluate(make_spec, tmp_path, store, "v2", of("2"), experiment="shinsa-registry-test-2")
    newer, _ = evaluate(make_spec, tmp_path, store, "v1-newer", of("1"))
    # The newest evaluation of version 1 is Incomplete (m1's judgments fail): it is skipped.
    openai_double.add_fault("status", status=500, count=1000, target="judge", item="/m1/")
    incomplete, _ = evaluate(make_spec, tmp_path, store, "v1-incomplete", of("1"), retries=1)
    openai_double.reset()
    assert incomplete.status == "Incomplete"
    assert older.status == v2.status == newer.status == "Succeeded"

    def baseline(model: str) -> RunResults:
        return resolve_baseline(BaselineRef(mlflow_model=model), "ns", lambda ns, n: None, store)

    chosen = baseline(f"{name}@champion")
    assert chosen.mlflow_run_id == newer.mlflow_run_id
    assert chosen == newer.results

    client.set_registered_model_alias(name, "champion", "2")
    assert baseline(f"{name}@champion").mlflow_run_id == v2.mlflow_run_id

    with pytest.raises(ResultsNotFound, match=f"mlflowModel {name}@nosuch: not found") as exc:
        baseline(f"{name}@nosuch")
    assert exc.value.source == f"mlflowModel {name}@nosuch"
    with pytest.raises(ResultsNotFound, match="mlflowModel no-such-model@champion: not found"):
        baseline("no-such-model@champion")
    with pytest.raises(
        ResultsNotFound, match=f"is version 3 of {name}, and MLflow holds no Succeeded evaluation"
    ):
        baseline(f"{name}@unevaluated")


def test_servers_that_do_not_answer_are_retryable(monkeypatch: pytest.MonkeyPatch) -> None:
    # MLflow's client would retry a refused connection for minutes by default; the operator
    # configures one quick attempt (OperatorSettings.mlflow_client_environment).
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    down = f"http://127.0.0.1:{free_port()}"
    store = ResultsStore(tracking_uri=down, s3_endpoint_url=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(
        ResultsUnavailable, match=f"MLflow run abc123: MLflow at {down} did not answer"
    ) as exc:
        resolve_baseline(BaselineRef(mlflow_run_id="abc123"), "ns", lambda ns, n: None, store)
    assert exc.value.retryable
    with pytest.raises(ResultsUnavailable, match="mlflowModel m@champion: MLflow at"):
        resolve_baseline(BaselineRef(mlflow_model="m@champion"), "ns", lambda ns, n: None, store)
    with pytest.raises(ResultsUnavailable, match="MLflow run abc123"):
        record_decision("abc123", {"decision": "Passed", "rules": []}, None, tracking_uri=down)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    with pytest.raises(ResultsUnavailable, match=f"s3://{BUCKET}/run/scores.json: S3 did not answer"):
        fetch_s3_results(f"s3://{BUCKET}/run/", endpoint_url=store.s3_endpoint_url)
