"""EvalRun resilience end to end (issue 8's acceptance): a judge that fails mid-run or is down from
the start never yields Passed; an operator killed (kill -9) while the Job runs or while it gates
leads to one Job and one decision; Kueue holds a second EvalRun's Job until the first one's quota
is free. The real control plane, the local runner, MLflow and S3, as in test_eval_run.py."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from shinsa.devcluster.cluster import free_port
from shinsa.devcluster.kueue import RunningKueue
from shinsa.devcluster.model_endpoints import JUDGE_FAULT_ANNOTATION
from tests.support.eval_runs import (
    FINAL,
    Created,
    condition,
    create_run,
    deploy,
    eval_run,
    events_of,
    get_run,
    wait_phase,
)
from tests.support.kueue import cluster_queue, local_queue, queues_applied, resource_flavor, workload_of
from tests.support.kueue import condition as workload_condition
from tests.support.operator import (
    InProcessOperator,
    OperatorProcess,
    no_in_process_operator,
    operator_settings,
)
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e

BUCKET = "evalruns-resilience"
QUESTIONS = 8
MINIMUM = {"rules": [{"type": "minimum", "benchmark": "mt-bench", "threshold": 1.0}]}


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
    # The evaluator's own one-line account (its termination log), not the tail of its JSON log.
    assert "too many failed requests for the scores to be trusted" in job["message"], job
    assert "{" not in job["message"], job
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


# -- an operator killed -----------------------------------------------------------------------------


def _evaluations_of(mlflow_server: str, uid: str) -> list[str]:
    """The MLflow runs an evaluator logged for the EvalRun `uid` (any experiment)."""
    import mlflow

    tracking = mlflow.MlflowClient(mlflow_server)
    experiments = [e.experiment_id for e in tracking.search_experiments()]
    found = tracking.search_runs(experiments, f"tags.`shinsa.evalrun.uid` = '{uid}'")
    return [r.info.run_id for r in found]


def test_an_operator_killed_while_the_job_runs_and_while_gating_makes_one_job_and_one_decision(
    kube: client.ApiClient, namespace: str, crds: list[str], bucket: str, mlflow_server: str, s3_server: str,
    dataset: Path, evaluator_env: None, tmp_path: Path,
) -> None:  # fmt: skip
    settings = operator_settings(mlflow_tracking_uri=mlflow_server, s3_endpoint_url=s3_server)
    operator = OperatorProcess(settings, namespace, tmp_path / "operator.log")
    gates = {
        "baseline": {"evalRunRef": {"name": "baseline"}},
        "minPairs": QUESTIONS,
        "rules": [{"type": "superiority", "benchmark": "mt-bench", "metric": "score"}],
    }
    caught_gating = False
    # The session's in-process operator would be a second one: it waits while this test runs.
    with no_in_process_operator(), Created(kube, namespace) as created:
        operator.start()
        try:
            deploy(kube, namespace, "judge")
            deploy(kube, namespace, "champion")
            deploy(kube, namespace, "better", quality=2)
            create_run(kube, namespace, eval_run("baseline", "champion", dataset, bucket, ns=namespace))
            wait_phase(kube, namespace, "baseline", {"Succeeded"}, timeout_s=240)
            create_run(
                kube, namespace, eval_run("candidate", "better", dataset, bucket, ns=namespace, gates=gates)
            )

            # kill -9 while the evaluator runs, then a new operator.
            batch = client.BatchV1Api(kube)

            def running() -> bool:
                jobs = batch.list_namespaced_job(
                    namespace, label_selector="shinsa.dev/eval-run=candidate"
                ).items
                return bool(jobs and jobs[0].status and jobs[0].status.active)

            eventually(running, timeout_s=120, what="the candidate's evaluator to run")
            operator.kill()
            assert (get_run(kube, namespace, "candidate")["status"]["phase"]) == "Running"
            operator.start()

            # kill -9 again if it can be caught Gating (the gates take about a second).
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline:
                phase = (get_run(kube, namespace, "candidate").get("status") or {}).get("phase")
                if phase == "Gating":
                    operator.kill()
                    caught_gating = True
                    operator.start()
                    break
                if phase in FINAL:
                    break
                time.sleep(0.05)
            run = wait_phase(kube, namespace, "candidate", FINAL, timeout_s=120)
            time.sleep(2)  # a late second decision or Job would show by now
        finally:
            operator.stop()
    print(f"caught Gating: {caught_gating}")

    status = run["status"]
    assert status["phase"] == "Succeeded" and status["decision"] == "Passed", status
    assert condition(run, "GatesEvaluated")["reason"] == "Passed"
    assert condition(run, "JobComplete")["status"] == "True"
    # One Job per run ever created, one pod of the candidate's (the evaluator was never restarted).
    assert {name: len(uids) for name, uids in created.jobs.items()} == {
        "baseline-eval": 1,
        "candidate-eval": 1,
    }
    pods = [name for name in created.pods if name.startswith("candidate-eval-")]
    assert len(pods) == 1 and len(created.pods[pods[0]]) == 1, created.pods
    # One decision: one GatesEvaluated event, and the status as of it.
    decisions = [
        e for e in events_of(kube, namespace, "candidate") if e.reason in ("Passed", "Failed", "Inconclusive")
    ]
    assert len(decisions) == 1 and (decisions[0].count or 1) == 1, decisions
    (row,) = status["gates"]
    assert row["verdict"] == "Passed" and row["n"] == QUESTIONS
    # One evaluation in MLflow, tagged with that decision and its baseline's run.
    import mlflow

    candidate_uid = run["metadata"]["uid"]
    assert _evaluations_of(mlflow_server, candidate_uid) == [status["mlflowRunId"]]
    tags = mlflow.MlflowClient(mlflow_server).get_run(status["mlflowRunId"]).data.tags
    baseline = get_run(kube, namespace, "baseline")["status"]
    assert tags["shinsa.gate.decision"] == "Passed"
    assert tags["shinsa.gate.baseline_run_id"] == baseline["mlflowRunId"]


# -- Kueue quota -----------------------------------------------------------------------------------

# An evaluation Job's default request (render/job.py DEFAULT_REQUESTS): the quota admits one at a time.
EVAL_CPU, EVAL_MEMORY = "250m", "512Mi"


@pytest.fixture
def one_eval_queue(kube: client.ApiClient, kueue: RunningKueue, namespace: str) -> Iterator[str]:
    """A ClusterQueue whose CPU and memory quota is one evaluation Job's request, and the LocalQueue
    `evals` for it in the test's namespace. Kueue's webhooks stay for the rest of the session."""
    suffix = uuid.uuid4().hex[:6]
    flavor, queue = f"evaluators-{suffix}", f"one-eval-{suffix}"
    objects = [
        resource_flavor(flavor),
        cluster_queue(queue, flavor, gpus=0, cpu=EVAL_CPU, memory=EVAL_MEMORY),
        local_queue("evals", namespace, queue),
    ]
    with queues_applied(kube, objects, queue):
        yield "evals"


def test_a_second_eval_run_waits_for_kueue_quota_then_runs(
    kube: client.ApiClient, namespace: str, operator: InProcessOperator, bucket: str, mlflow_server: str,
    dataset: Path, evaluator_env: None, one_eval_queue: str,
) -> None:  # fmt: skip
    deploy(kube, namespace, "judge")
    deploy(kube, namespace, "candidate")
    job = {"queueName": one_eval_queue}
    create_run(kube, namespace, eval_run("first", "candidate", dataset, bucket, ns=namespace, job=job))

    def job_complete(name: str, reason: str | None = None) -> dict[str, Any] | None:
        run = get_run(kube, namespace, name)
        found = [c for c in (run.get("status") or {}).get("conditions") or [] if c["type"] == "JobComplete"]
        if not found or (reason is not None and found[0]["reason"] != reason):
            return None
        return dict(found[0])

    eventually(lambda: job_complete("first", "JobRunning"), timeout_s=120, what="first to run")
    create_run(kube, namespace, eval_run("second", "candidate", dataset, bucket, ns=namespace, job=job))
    # While the first holds the quota, the second's Job is suspended by Kueue and its status says so.
    waiting = eventually(lambda: job_complete("second", "QuotaPending"), timeout_s=60, what="second to queue")
    assert one_eval_queue in str(waiting["message"]), waiting
    second_job = client.BatchV1Api(kube).read_namespaced_job("second-eval", namespace)
    assert second_job.spec.suspend is True
    reserved = workload_condition(workload_of(kube, namespace, second_job), "QuotaReserved")
    assert reserved and reserved["status"] == "False" and "insufficient unused quota" in reserved["message"]
    assert get_run(kube, namespace, "second")["status"]["phase"] == "Running"
    assert job_complete("first", "JobRunning")

    first = wait_phase(kube, namespace, "first", FINAL, timeout_s=180)
    second = wait_phase(kube, namespace, "second", FINAL, timeout_s=240)
    assert first["status"]["phase"] == "Succeeded", first["status"]
    assert second["status"]["phase"] == "Succeeded", second["status"]
    # The second ran only after the first had finished: Kueue held it until the quota was free.
    first_done = client.BatchV1Api(kube).read_namespaced_job("first-eval", namespace).status.completion_time
    second_started = client.BatchV1Api(kube).read_namespaced_job("second-eval", namespace).status.start_time
    assert second_started >= first_done, (first_done, second_started)
    reasons = [e.reason for e in events_of(kube, namespace, "second")]
    assert "QuotaPending" in reasons, reasons
