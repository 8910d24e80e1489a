"""EvalRun resilience end to end (issue 8's acceptance): a judge that fails mid-run or is down from
the start never yields Passed; an operator killed (kill -9) while the Job runs or while it gates
leads to one Job and one decision; Kueue holds a second EvalRun's Job until the first one's quota
is free. The real control plane, the local runner, MLflow and S3, as in test_eval_run.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from kubernetes import client

from shinsa.devcluster.cluster import free_port
from shinsa.devcluster.model_endpoints import JUDGE_FAULT_ANNOTATION
from tests.support.eval_runs import (
    FINAL,
    condition,
    create_bucket,
    create_evaluator_env,
    create_run,
    deploy,
    eval_run,
    events_of,
    wait_phase,
    write_dataset,
)
from tests.support.operator import InProcessOperator

pytestmark = pytest.mark.e2e

BUCKET = "evalruns-resilience"
QUESTIONS = 8
MINIMUM = {"rules": [{"type": "minimum", "benchmark": "mt-bench", "threshold": 1.0}]}


@pytest.fixture(scope="module")
def bucket(s3_server: str) -> str:
    return create_bucket(BUCKET)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("mt-bench"), QUESTIONS)


@pytest.fixture
def evaluator_env(kube: client.ApiClient, namespace: str, bucket: str) -> None:
    create_evaluator_env(kube, namespace)


# -- a judge that fails -----------------------------------------------------------------------------


def test_a_judge_that_fails_during_the_run_makes_it_incomplete_never_passed(
    kube: client.ApiClient, namespace: str, operator: InProcessOperator, bucket: str, mlflow_server: str,
    dataset: Path, evaluator_env: None,
) -> None:  # fmt: skip
    # The judge's stand-in lists its models (the evaluator's preflight passes) and answers every
    # judgment 500: the run gets its answers and none of its ratings.
    deploy(kube, namespace, "judge", annotations={JUDGE_FAULT_ANNOTATION: "500"})
    deploy(kube, namespace, "candidate")
    body = eval_run(
        "flaky", "candidate", dataset, bucket, ns=namespace, gates=MINIMUM, job={"backoffLimit": 0}
    )
    create_run(kube, namespace, body)
    run = wait_phase(kube, namespace, "flaky", FINAL, timeout_s=180)
    status = run["status"]
    assert status["phase"] == "Incomplete", status
    assert status.get("decision") in (None, "Inconclusive"), status
    job = condition(run, "JobComplete")
    assert job["status"] == "False" and job["reason"] == "Incomplete", job
    assert "exit code 3" in job["message"] and "maxErrorRate" in job["message"], job
    gates = condition(run, "GatesEvaluated")
    assert gates["status"] == "False" and gates["reason"] == "NotEvaluated", gates
    reasons = [e.reason for e in events_of(kube, namespace, "flaky")]
    assert "Incomplete" in reasons and "Passed" not in reasons, reasons


def test_a_judge_that_is_down_from_the_start_fails_the_preflight_never_passed(
    kube: client.ApiClient, namespace: str, operator: InProcessOperator, bucket: str, mlflow_server: str,
    dataset: Path, evaluator_env: None,
) -> None:  # fmt: skip
    deploy(kube, namespace, "candidate")
    # Nothing listens there: the preflight's GET /models is refused before any evaluation request.
    # Exit 1 is retried by the Job (backoffLimit): none here, to be quick.
    down = f"http://127.0.0.1:{free_port()}/v1"
    body = eval_run(
        "judgeless", "candidate", dataset, bucket, ns=namespace, gates=MINIMUM, job={"backoffLimit": 0}
    )
    body["spec"]["judges"][0]["endpoint"] = down
    create_run(kube, namespace, body)
    run = wait_phase(kube, namespace, "judgeless", FINAL, timeout_s=180)
    status = run["status"]
    assert status["phase"] == "Failed", status
    assert status.get("decision") in (None, "Inconclusive"), status
    job = condition(run, "JobComplete")
    assert job["status"] == "False" and job["reason"] == "JobFailed", job
    assert "exit code 1" in job["message"] and down in job["message"], job
    reasons = [e.reason for e in events_of(kube, namespace, "judgeless")]
    assert "Passed" not in reasons, reasons
