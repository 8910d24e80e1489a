"""EvalRun end to end: the real control plane, the local runner running the evaluation Job's
`shinsa eval run`, the ModelDeployments' stand-in endpoints as model and judge, real MLflow and S3."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from shinsa.devcluster.cluster import LocalCluster, tool_bin_dir
from tests.support.browser import rendered
from tests.support.eval_runs import (
    GROUP,
    VERSION,
    condition,
    create_run,
    deploy,
    eval_run,
    wait_phase,
)
from tests.support.operator import InProcessOperator

pytestmark = pytest.mark.e2e

BUCKET = "evalruns-e2e"
QUESTIONS = 24


def test_an_eval_run_waits_for_its_deployment_runs_its_job_and_reports_scores(
    kube: client.ApiClient,
    namespace: str,
    operator: InProcessOperator,
    cluster: LocalCluster,
    bucket: str,
    mlflow_server: str,
    dataset: Path,
    evaluator_env: None,
) -> None:
    # The run exists before its deployment: it waits, naming what for.
    create_run(kube, namespace, eval_run("first", "candidate", dataset, bucket, ns=namespace))
    waiting = wait_phase(kube, namespace, "first", {"WaitingForTarget"}, timeout_s=60)
    target = condition(waiting, "TargetReady")
    assert target["status"] == "False" and target["reason"] == "WaitingForDeployment"
    assert "candidate" in target["message"]

    deploy(kube, namespace, "judge")
    deploy(kube, namespace, "candidate")
    run = wait_phase(kube, namespace, "first", {"Succeeded", "Failed", "Incomplete"}, timeout_s=240)
    status = run["status"]
    assert status["phase"] == "Succeeded", status
    assert condition(run, "TargetReady")["reason"] == "DeploymentReady"
    assert condition(run, "JobComplete")["status"] == "True"
    score = status["scores"]["mt-bench"]
    assert score["n"] == QUESTIONS and 1 <= score["mean"] <= 10
    assert status["mlflowRunId"]

    # One Job, with the evaluator's command line and the Job settings of the spec and the operator.
    jobs = client.BatchV1Api(kube).list_namespaced_job(namespace).items
    assert [j.metadata.name for j in jobs] == [status["jobName"]]
    container = jobs[0].spec.template.spec.containers[0]
    assert container.args[:4] == ["eval", "run", "--config", "/etc/shinsa/evalrun.yaml"]
    assert container.termination_message_policy == "FallbackToLogsOnError"
    assert jobs[0].metadata.owner_references[0].name == "first"

    # MLflow has the run the status names.
    import mlflow

    logged = mlflow.MlflowClient(mlflow_server).get_run(status["mlflowRunId"])
    assert logged.data.tags["shinsa.status"] == "Succeeded"

    # kubectl get er shows the columns filled (EN = mt-bench's mean; JA empty without mt-bench-ja).
    header, row = subprocess.run(
        [str(tool_bin_dir() / "kubectl"), "--kubeconfig", str(cluster.kubeconfig), "-n", namespace,
         "get", "er", "first"],
        capture_output=True, text=True, check=True,
    ).stdout.splitlines()  # fmt: skip
    # Columns by their header's position: an empty cell (JA here) is blank, not a word.
    starts = [header.index(name) for name in header.split()]
    cells = {
        name: row[start:end].strip()
        for name, start, end in zip(header.split(), starts, [*starts[1:], None], strict=True)
    }
    assert cells["MODEL"] == "candidate" and cells["PHASE"] == "Succeeded" and cells["JA"] == ""
    assert float(cells["EN"]) == pytest.approx(score["mean"], abs=0.01)


def test_the_gates_pass_a_clearly_better_candidate_and_fail_a_clearly_worse_one(
    kube: client.ApiClient, namespace: str, operator: InProcessOperator, bucket: str, mlflow_server: str,
    dataset: Path, evaluator_env: None,
) -> None:  # fmt: skip
    deploy(kube, namespace, "judge")
    deploy(kube, namespace, "champion")
    deploy(kube, namespace, "better", quality=2)
    deploy(kube, namespace, "worse", quality=-2)
    create_run(kube, namespace, eval_run("baseline", "champion", dataset, bucket, ns=namespace))
    wait_phase(kube, namespace, "baseline", {"Succeeded"}, timeout_s=240)
    gates = {
        "baseline": {"evalRunRef": {"name": "baseline"}},
        "minPairs": 20,
        "rules": [{"type": "superiority", "benchmark": "mt-bench", "metric": "score"}],
    }
    for name in ("better", "worse"):
        create_run(
            kube, namespace, eval_run(f"{name}-eval", name, dataset, bucket, ns=namespace, gates=gates)
        )
    better = wait_phase(kube, namespace, "better-eval", {"Succeeded", "Failed", "Incomplete"}, timeout_s=240)
    worse = wait_phase(kube, namespace, "worse-eval", {"Succeeded", "Failed", "Incomplete"}, timeout_s=240)
    assert better["status"]["decision"] == "Passed", better["status"]
    assert worse["status"]["decision"] == "Failed", worse["status"]
    assert condition(better, "GatesEvaluated")["reason"] == "Passed"
    (row,) = worse["status"]["gates"]
    assert row["verdict"] == "Failed" and row["n"] == QUESTIONS and row["observed"] < 0 and row["explanation"]


def test_a_champion_alias_baseline_is_the_latest_evaluation_of_the_version_it_points_at(
    kube: client.ApiClient, namespace: str, operator: InProcessOperator, bucket: str, mlflow_server: str,
    dataset: Path, evaluator_env: None, tmp_path: Path,
) -> None:  # fmt: skip
    import mlflow

    registry = mlflow.MlflowClient(tracking_uri=mlflow_server, registry_uri=mlflow_server)
    model = f"chat-{namespace}"  # one MLflow server serves the whole session
    registry.create_registered_model(model)
    champion = registry.create_model_version(model, source="hf://llm-jp/llm-jp-4-8b")
    registry.set_registered_model_alias(model, "champion", champion.version)

    deploy(kube, namespace, "judge")
    deploy(kube, namespace, "serving", uri=f"models:/{model}@champion")
    deploy(kube, namespace, "candidate", quality=2)
    # The champion's evaluation is found by the version the deployment resolved, not by name.
    create_run(kube, namespace, eval_run("champion-eval", "serving", dataset, bucket, ns=namespace))
    evaluated = wait_phase(kube, namespace, "champion-eval", {"Succeeded"}, timeout_s=240)["status"]
    tags = registry.get_run(evaluated["mlflowRunId"]).data.tags
    assert (tags["shinsa.model.registered_name"], tags["shinsa.model.version"]) == (model, champion.version)

    gates = {
        "baseline": {"mlflowModel": f"{model}@champion"},
        "minPairs": 20,
        "rules": [{"type": "superiority", "benchmark": "mt-bench", "metric": "score"}],
    }
    create_run(
        kube, namespace, eval_run("challenger", "candidate", dataset, bucket, ns=namespace, gates=gates)
    )
    run = wait_phase(kube, namespace, "challenger", {"Succeeded", "Failed", "Incomplete"}, timeout_s=240)
    status = run["status"]
    assert status["decision"] == "Passed", status
    assert status["baseline"] == f"mlflowModel {model}@champion"
    decided = registry.get_run(status["mlflowRunId"]).data.tags
    assert decided["shinsa.gate.decision"] == "Passed"
    assert decided["shinsa.gate.baseline_run_id"] == evaluated["mlflowRunId"]

    # The run page the status links to, in a real browser: MLflow's UI shows the run, its
    # decision tag and its scores (a screenshot stays with the test's output).
    experiment = registry.get_run(status["mlflowRunId"]).info.experiment_id
    assert (
        status["mlflowRunUrl"] == f"{mlflow_server}/#/experiments/{experiment}/runs/{status['mlflowRunId']}"
    )
    page = rendered(status["mlflowRunUrl"], screenshot=tmp_path / "mlflow-run.png")
    assert "challenger" in page  # the run is named after its EvalRun
    assert "shinsa.gate.decision" in page and "Passed" in page
    assert "mt-bench" in page


def test_a_baseline_that_does_not_exist_is_inconclusive_saying_why(
    kube: client.ApiClient, namespace: str, operator: InProcessOperator, bucket: str, mlflow_server: str,
    dataset: Path, evaluator_env: None,
) -> None:  # fmt: skip
    deploy(kube, namespace, "judge")
    deploy(kube, namespace, "candidate", quality=2)
    gates = {"baseline": {"evalRunRef": {"name": "nowhere"}},
             "rules": [{"type": "superiority", "benchmark": "mt-bench", "metric": "score"}]}  # fmt: skip
    create_run(kube, namespace, eval_run("lonely", "candidate", dataset, bucket, ns=namespace, gates=gates))
    run = wait_phase(kube, namespace, "lonely", {"Succeeded", "Failed", "Incomplete"}, timeout_s=240)
    assert run["status"]["decision"] == "Inconclusive"
    assert "nowhere" in condition(run, "GatesEvaluated")["message"]


def test_the_spec_is_immutable_and_a_bad_spec_is_refused_naming_the_field(
    kube: client.ApiClient, namespace: str, crds: list[str], dataset: Path
) -> None:
    bad = eval_run("bad", "candidate", dataset, BUCKET, ns=namespace)
    bad["spec"]["job"] = {"backoffLimit": 99}
    with pytest.raises(ApiException) as refused:
        create_run(kube, namespace, bad)
    assert "spec.job.backoffLimit" in str(refused.value.body)

    create_run(kube, namespace, eval_run("fixed", "candidate", dataset, BUCKET, ns=namespace))
    with pytest.raises(ApiException) as immutable:
        client.CustomObjectsApi(kube).patch_namespaced_custom_object(
            GROUP, VERSION, namespace, "evalruns", "fixed", {"spec": {"repeats": 2}}
        )
    assert "create a new EvalRun" in str(immutable.value.body)
