"""EvalRun e2e helpers shared by the EvalRun tests: the ModelDeployments whose stand-ins serve as
model and judge, EvalRun bodies, the S3 bucket and credentials their Jobs use, and the lookups of
what the API server reports about a run."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import ClientError
from kubernetes import client, watch

from shinsa.devcluster.model_endpoints import ANSWER_QUALITY_ANNOTATION
from shinsa.devcluster.services import S3_ACCESS_KEY, S3_SECRET_KEY
from tests.support.operator import EVALUATOR_ENV_SECRET
from tests.support.waiting import eventually

GROUP, VERSION = "shinsa.dev", "v1alpha1"
FINAL = {"Succeeded", "Failed", "Incomplete"}


def create_bucket(name: str) -> str:
    """The bucket `name` on the session's S3 server (already there is fine)."""
    try:
        boto3.client("s3").create_bucket(Bucket=name)
    except ClientError as exc:
        if exc.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise
    return name


def create_evaluator_env(kube: client.ApiClient, namespace: str) -> None:
    """The Secret the operator's evaluation Jobs take their S3 credentials from."""
    secret = {
        "metadata": {"name": EVALUATOR_ENV_SECRET},
        "stringData": {"AWS_ACCESS_KEY_ID": S3_ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": S3_SECRET_KEY,
                       "AWS_DEFAULT_REGION": "us-east-1"},
    }  # fmt: skip
    client.CoreV1Api(kube).create_namespaced_secret(namespace, secret)


def write_dataset(root: Path, questions: int) -> Path:
    """An MT-Bench-style question.jsonl of `questions` two-turn questions under `root`. The
    evaluator runs on this machine, so a local path in the config is read as it is."""
    rows = [
        {"question_id": f"q{i}", "category": "writing", "turns": [f"Write about topic {i}.", "Shorter."]}
        for i in range(questions)
    ]
    (root / "question.jsonl").write_text("".join(json.dumps(q) + "\n" for q in rows))
    return root


def _custom(kube: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(kube)


def deploy(
    kube: client.ApiClient,
    namespace: str,
    name: str,
    quality: int = 0,
    annotations: dict[str, str] | None = None,
    uri: str = "hf://llm-jp/llm-jp-4-8b",
    revision: str | None = None,
) -> None:
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ModelDeployment",
        "metadata": {
            "name": name,
            "annotations": {ANSWER_QUALITY_ANNOTATION: str(quality), **(annotations or {})},
        },
        "spec": {
            "model": {"uri": uri, **({"revision": revision} if revision else {})},
            "serving": {"maxModelLen": 8192},
            "resources": {"gpu": {"product": "NVIDIA-H100-80GB-HBM3"}},
        },
    }
    _custom(kube).create_namespaced_custom_object(GROUP, VERSION, namespace, "modeldeployments", body)


def eval_run(name: str, deployment: str, dataset: Path, bucket: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "EvalRun",
        "metadata": {"name": name},
        "spec": {
            "model": {"deploymentRef": {"name": deployment}},
            "benchmarks": [{"name": "mt-bench", "dataset": {"uri": str(dataset)}}],
            # The stand-in of the judge deployment serves the double's judge models.
            "judges": [{"name": "judge-a", "endpoint": f"http://judge.{spec.pop('ns')}.svc:8000/v1",
                        "model": "judge-a"}],
            "repeats": 1,
            "timeoutSeconds": 10,
            "retries": 0,
            "storage": {"bucket": bucket},
            **spec,
        },
    }  # fmt: skip


def create_run(kube: client.ApiClient, namespace: str, body: dict[str, Any]) -> None:
    _custom(kube).create_namespaced_custom_object(GROUP, VERSION, namespace, "evalruns", body)


def get_run(kube: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = _custom(kube).get_namespaced_custom_object(
        GROUP, VERSION, namespace, "evalruns", name
    )
    return found


def wait_phase(
    kube: client.ApiClient, namespace: str, name: str, phases: set[str], timeout_s: float = 180
) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        run = get_run(kube, namespace, name)
        return run if (run.get("status") or {}).get("phase") in phases else None

    try:
        return eventually(probe, timeout_s=timeout_s, what=f"EvalRun {name} in {phases}")
    except AssertionError:
        print(json.dumps(get_run(kube, namespace, name).get("status"), indent=1))
        raise


def condition(run: dict[str, Any], type_: str) -> dict[str, Any]:
    found = [c for c in run["status"]["conditions"] if c["type"] == type_]
    assert found, f"no {type_} condition in {run['status']}"
    return dict(found[0])


def events_of(kube: client.ApiClient, namespace: str, name: str) -> list[client.CoreV1Event]:
    """The Events posted about the EvalRun `name`, oldest first."""
    listed = client.CoreV1Api(kube).list_namespaced_event(
        namespace, field_selector=f"involvedObject.kind=EvalRun,involvedObject.name={name}"
    )
    return sorted(listed.items, key=lambda e: str(e.first_timestamp or e.event_time or ""))


class Created:
    """Watches Jobs and pods in a namespace from now on and keeps the uid of every one that was ever
    ADDED (a watch started before anything exists sees each creation, even of an object deleted soon
    after), by name."""

    def __init__(self, kube: client.ApiClient, namespace: str) -> None:
        self.jobs: dict[str, set[str]] = {}
        self.pods: dict[str, set[str]] = {}
        self._stop = threading.Event()
        batch, core = client.BatchV1Api(kube), client.CoreV1Api(kube)
        self._threads = [
            threading.Thread(
                target=self._follow, args=(batch.list_namespaced_job, namespace, self.jobs), daemon=True
            ),
            threading.Thread(
                target=self._follow, args=(core.list_namespaced_pod, namespace, self.pods), daemon=True
            ),
        ]
        self._started = threading.Barrier(len(self._threads) + 1)

    def __enter__(self) -> Created:
        for thread in self._threads:
            thread.start()
        self._started.wait(timeout=30)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()

    def _follow(self, lister: Any, namespace: str, seen: dict[str, set[str]]) -> None:
        version = lister(namespace).metadata.resource_version
        self._started.wait(timeout=30)
        while not self._stop.is_set():
            for event in watch.Watch().stream(lister, namespace, resource_version=version, timeout_seconds=5):
                obj = event["raw_object"]
                if event["type"] == "ERROR":
                    version = lister(namespace).metadata.resource_version
                    break
                version = obj["metadata"]["resourceVersion"]
                seen.setdefault(obj["metadata"]["name"], set()).add(obj["metadata"]["uid"])
                if self._stop.is_set():
                    break
