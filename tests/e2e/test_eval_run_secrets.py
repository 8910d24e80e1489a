"""EvalRun end to end, issue 8's acceptance: planted API keys reach the model and the judge and
nothing else the run leaves behind; a deleted evaluator pod is replaced and resumes from the S3
checkpoint without repeating a finished request.

The model and the judge are one OpenAI test double in this process (an `endpoint` target, reached
directly on loopback by the evaluator the local runner runs), so the test sees every request it got:
its item key (`X-Shinsa-Item`) and its Authorization header."""

from __future__ import annotations

import json
import logging
import tempfile
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from shinsa.devcluster.cluster import LocalCluster
from shinsa.evaluation.results import RunResults
from tests.support.eval_runs import (
    Created,
    create_evaluator_env,
    create_run,
    eval_run,
    events_of,
    get_run,
    wait_phase,
)
from tests.support.openai_server import FakeOpenAI
from tests.support.operator import InProcessOperator
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e

BUCKET = "evalruns-secrets"
QUESTIONS = 12
TOTAL = QUESTIONS * 2 * 2  # questions x turns x (generation + one judgment), one repeat
KEYS_SECRET = "planted-keys"
MINIMUM = {"rules": [{"type": "minimum", "benchmark": "mt-bench", "threshold": 1.0}]}
DECISIONS = {"Passed", "Failed", "Inconclusive"}


@pytest.fixture
def double() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(model="candidate", judge_models=("judge-a",), keep_messages=False) as served:
        yield served


def endpoint_run(name: str, namespace: str, double: FakeOpenAI, dataset: Path, **spec: Any) -> dict[str, Any]:
    """An EvalRun of the double as `endpoint`, judged by the double, its keys from KEYS_SECRET."""
    body = eval_run(name, "unused", dataset, BUCKET, ns=namespace, **spec)
    body["spec"]["model"] = {"endpoint": double.url, "servedName": "candidate",
                             "apiKeySecretRef": {"name": KEYS_SECRET, "key": "model"}}  # fmt: skip
    body["spec"]["judges"] = [{"name": "judge-a", "endpoint": double.url, "model": "judge-a",
                               "apiKeySecretRef": {"name": KEYS_SECRET, "key": "judge"}}]  # fmt: skip
    return body


def plant_keys(kube: client.ApiClient, namespace: str) -> dict[str, str]:
    keys = {"model": f"sk-model-{uuid.uuid4().hex}", "judge": f"sk-judge-{uuid.uuid4().hex}"}
    secret = {"metadata": {"name": KEYS_SECRET}, "stringData": keys}
    client.CoreV1Api(kube).create_namespaced_secret(namespace, secret)
    return keys


def as_text(kube: client.ApiClient, objects: Any) -> str:
    return json.dumps(kube.sanitize_for_serialization(objects), sort_keys=True)


def s3_objects(prefix: str) -> dict[str, bytes]:
    s3 = boto3.client("s3")
    found = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        for part in page.get("Contents", []):
            found[part["Key"]] = s3.get_object(Bucket=BUCKET, Key=part["Key"])["Body"].read()
    return found


def run_prefix(run: dict[str, Any]) -> str:
    meta = run["metadata"]
    return f"evalruns/{meta['namespace']}/{meta['name']}/{meta['uid']}/"


def mlflow_texts(tracking_uri: str, run_id: str) -> dict[str, str]:
    """Every param, tag and artifact of the MLflow run `run_id` and its child runs, by where."""
    import mlflow

    mlflow_client = mlflow.MlflowClient(tracking_uri)
    parent = mlflow_client.get_run(run_id)
    children = mlflow_client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{run_id}'"
    )
    texts = {}
    for logged in [parent, *children]:
        rid = logged.info.run_id
        texts[f"{rid} params"] = json.dumps(logged.data.params)
        texts[f"{rid} tags"] = json.dumps(logged.data.tags)
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(mlflow_client.download_artifacts(rid, "", tmp))
            for path in root.rglob("*"):
                if path.is_file():
                    texts[f"{rid} artifact {path.relative_to(root)}"] = path.read_text(errors="replace")
    return texts


def pod_files(cluster: LocalCluster, namespace: str) -> dict[str, str]:
    """Everything the local runner keeps of the namespace's pods: logs, config and results files."""
    pods = cluster.state_dir / "local-runner" / "pods"
    return {
        str(path.relative_to(pods)): path.read_text(errors="replace")
        for path in pods.glob(f"{namespace}_*/**/*")
        if path.is_file()
    }


def evaluator_pod(kube: client.ApiClient, namespace: str, job: str) -> client.V1Pod | None:
    pods = client.CoreV1Api(kube).list_namespaced_pod(
        namespace, label_selector=f"batch.kubernetes.io/job-name={job}"
    )
    running = [p for p in pods.items if p.status.phase == "Running" and not p.metadata.deletion_timestamp]
    return running[0] if running else None


def test_planted_api_keys_reach_the_endpoints_and_nothing_else(
    kube: client.ApiClient,
    namespace: str,
    operator: InProcessOperator,
    cluster: LocalCluster,
    bucket: str,
    mlflow_server: str,
    dataset: Path,
    double: FakeOpenAI,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # More than `shinsa operator run` logs (INFO): at DEBUG kopf logs every status patch it makes.
    caplog.set_level(logging.DEBUG)
    create_evaluator_env(kube, namespace)
    keys = plant_keys(kube, namespace)
    create_run(kube, namespace, endpoint_run("keyed", namespace, double, dataset, gates=MINIMUM))
    run = wait_phase(kube, namespace, "keyed", {"Succeeded", "Failed", "Incomplete"}, timeout_s=240)
    assert run["status"]["phase"] == "Succeeded", run["status"]

    # The keys did their job: each endpoint got its own on every request.
    sent = {(r.target, r.authorization) for r in double.log}
    assert sent == {("model", f"Bearer {keys['model']}"), ("judge", f"Bearer {keys['judge']}")}

    # The Job's container takes them from the Secret, by reference only.
    job_name = run["status"]["jobName"]
    job = client.BatchV1Api(kube).read_namespaced_job(job_name, namespace)
    env = {e.name: e for e in job.spec.template.spec.containers[0].env}
    for variable, key in (("SHINSA_MODEL_API_KEY", "model"), ("SHINSA_JUDGE_API_KEY_JUDGE_A", "judge")):
        assert env[variable].value is None
        assert env[variable].value_from.secret_key_ref.to_dict() == {"name": KEYS_SECRET, "key": key,
                                                                     "optional": None}  # fmt: skip

    core = client.CoreV1Api(kube)
    pods = core.list_namespaced_pod(namespace, label_selector=f"batch.kubernetes.io/job-name={job_name}")
    assert pods.items, "the evaluator's pod is kept after the Job completed"
    where: dict[str, str] = {
        "ConfigMaps": as_text(kube, core.list_namespaced_config_map(namespace).items),
        "Job": as_text(kube, job),
        "pods": as_text(kube, pods.items),
        "events": as_text(kube, core.list_namespaced_event(namespace).items),
        "EvalRun": json.dumps(get_run(kube, namespace, "keyed")),
        "operator log": caplog.text,
    }
    where |= {f"local runner: {path}": text for path, text in pod_files(cluster, namespace).items()}
    where |= {f"MLflow {k}": v for k, v in mlflow_texts(mlflow_server, run["status"]["mlflowRunId"]).items()}
    stored = s3_objects(run_prefix(run))
    where |= {f"s3 {key}": body.decode(errors="replace") for key, body in stored.items()}

    # Each place was really looked at: it holds what the run left there.
    assert "keyed-eval" in where["ConfigMaps"] and "keyed-eval" in where["operator log"]
    assert any(k.startswith("local runner:") and k.endswith(".log") and v for k, v in where.items())
    assert any(k.endswith("scores.json") for k in stored) and any("/checkpoint/" in k for k in stored)
    assert any(" artifact " in k for k in where)
    for name, key in keys.items():
        leaked = [place for place, text in where.items() if key in text]
        assert not leaked, f"the {name} key is in: {leaked}"


def test_a_deleted_evaluator_pod_is_replaced_and_resumes_without_repeating_finished_requests(
    kube: client.ApiClient,
    namespace: str,
    operator: InProcessOperator,
    bucket: str,
    mlflow_server: str,
    dataset: Path,
    double: FakeOpenAI,
) -> None:
    # Two requests at a time, a quarter second each: the run lasts long enough to stop it midway.
    double.latency_s = 0.25
    create_evaluator_env(kube, namespace)
    plant_keys(kube, namespace)
    with Created(kube, namespace) as created:
        create_run(kube, namespace, endpoint_run("resumed", namespace, double, dataset, concurrency=2,
                                                 gates=MINIMUM))  # fmt: skip
        job = "resumed-eval"
        first = eventually(
            lambda: evaluator_pod(kube, namespace, job) if double.count(outcome="ok") >= 12 else None,
            timeout_s=180,
            what="the evaluator midway",
        )
        assert double.requests < TOTAL
        client.CoreV1Api(kube).delete_namespaced_pod(first.metadata.name, namespace)

        def stopped() -> bool:
            try:
                pod = client.CoreV1Api(kube).read_namespaced_pod(first.metadata.name, namespace)
            except ApiException as exc:
                return bool(exc.status == 404)
            return bool(pod.status.phase == "Failed")

        eventually(stopped, timeout_s=60, what="the deleted pod stopped")
        run = get_run(kube, namespace, "resumed")
        # What the stopped evaluator had finished: the checkpoint it flushed on SIGTERM.
        records = s3_objects(run_prefix(run) + "checkpoint/records-")
        finished = {
            "/".join([r["benchmark"], r["question_id"], str(r["turn"]), str(r["repeat"]),
                      r["judge"] or "generation"])
            for body in records.values() for line in body.decode().splitlines() if line.strip()
            for r in [json.loads(line)]
        }  # fmt: skip
        assert 0 < len(finished) < TOTAL

        run = wait_phase(kube, namespace, "resumed", {"Succeeded", "Failed", "Incomplete"}, timeout_s=240)
        assert run["status"]["phase"] == "Succeeded", run["status"]
        assert len(created.pods) == 2, created.pods  # the deleted pod and its replacement

    # Each finished request was sent once, by the first pod; the replacement only sent what was left
    # (and re-sent at most what was in flight when the first one stopped: two slots per endpoint).
    sent = Counter(double.items_requested())
    assert len(sent) == TOTAL
    assert [key for key in finished if sent[key] != 1] == []
    assert sum(count - 1 for count in sent.values()) <= 4
    stored = s3_objects(run_prefix(run) + "results/scores.json")
    (scores,) = stored.values()
    assert RunResults.from_json(scores.decode(), source="scores.json").reused_from_checkpoint > 0

    # The stop did not count against backoffLimit (podFailurePolicy Ignore on exit 143).
    status = client.BatchV1Api(kube).read_namespaced_job(job, namespace).status
    assert not status.failed and status.succeeded == 1
    # One decision, and one event of it.
    assert run["status"]["decision"] in DECISIONS
    decided = [e for e in events_of(kube, namespace, "resumed") if e.reason in DECISIONS]
    assert len(decided) == 1, [(e.reason, e.message) for e in decided]
    assert not [e for e in events_of(kube, namespace, "resumed") if e.reason == "Stopped"]
