"""Promotion end to end: a Passed EvalRun moves the alias the serving ModelDeployment follows, and
it rolls; Failed moves nothing; a PromotionPolicy decides who may promote with which gates; a
rollback with `shinsa promote` moves the alias back and the deployment follows. Real control
plane, MLflow registry, S3 and evaluation Jobs run by the local runner."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from mlflow import MlflowClient

from shinsa.registry.promotion import history
from tests.support.eval_runs import (
    GROUP,
    VERSION,
    condition,
    create_run,
    deploy,
    eval_run,
    get_run,
    wait_phase,
)
from tests.support.fault_proxy import fault_proxy
from tests.support.operator import (
    InProcessOperator,
    OperatorProcess,
    no_in_process_operator,
    operator_settings,
)
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e

BUCKET = "promotion-e2e"
QUESTIONS = 24
CANDIDATE_URI = "hf://Qwen/Qwen3-8B"
CHAMPION_URI = "hf://llm-jp/llm-jp-4-8b"
REVISION = "0123456789abcdef0123456789abcdef01234567"
SUPERIORITY = {"type": "superiority", "benchmark": "mt-bench", "metric": "score"}
DONE = {"Succeeded", "Failed", "Incomplete"}


def _policy(kube: client.ApiClient, model: str, namespaces: list[str]) -> None:
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "PromotionPolicy",
        "metadata": {"name": model},
        "spec": {"registeredModel": model, "namespaces": namespaces, "requiredRules": [SUPERIORITY]},
    }
    client.CustomObjectsApi(kube).create_cluster_custom_object(GROUP, VERSION, "promotionpolicies", body)


def _register_champion(registry: Any, model: str) -> None:
    """`model` with its first version, CHAMPION_URI, as @champion."""
    registry.create_registered_model(model)
    registry.set_registered_model_alias(
        model, "champion", registry.create_model_version(model, CHAMPION_URI).version
    )


def _registry_state(registry: Any, model: str) -> tuple[list[str], dict[str, str]]:
    versions = sorted(v.version for v in registry.search_model_versions(f"name = '{model}'"))
    return versions, dict(registry.get_registered_model(model).aliases)


def _served_version(kube: client.ApiClient, namespace: str, name: str) -> str | None:
    md = client.CustomObjectsApi(kube).get_namespaced_custom_object(
        GROUP, VERSION, namespace, "modeldeployments", name
    )
    return ((md.get("status") or {}).get("registeredModel") or {}).get("version")


def test_a_passed_candidate_is_promoted_the_follower_rolls_and_a_rollback_brings_it_back(
    kube: client.ApiClient, namespace: str, operator: InProcessOperator, bucket: str, mlflow_server: str,
    dataset: Path, evaluator_env: None, registry: MlflowClient,
) -> None:  # fmt: skip

    model = f"chat-{namespace}"
    _register_champion(registry, model)
    _policy(kube, model, [namespace])

    deploy(kube, namespace, "judge")
    deploy(kube, namespace, "production", uri=f"models:/{model}@champion")
    deploy(kube, namespace, "better", quality=2, uri=CANDIDATE_URI, revision=REVISION)
    deploy(kube, namespace, "worse", quality=-2, uri=CANDIDATE_URI)
    create_run(kube, namespace, eval_run("champion-eval", "production", dataset, bucket, ns=namespace))
    wait_phase(kube, namespace, "champion-eval", {"Succeeded"}, timeout_s=240)

    gates = {"baseline": {"mlflowModel": f"{model}@champion"}, "rules": [SUPERIORITY]}
    promote = {"registeredModel": model, "alias": "champion"}
    create_run(kube, namespace, eval_run("worse-eval", "worse", dataset, bucket, ns=namespace,
                                         gates=gates, promote=promote))  # fmt: skip
    worse = wait_phase(kube, namespace, "worse-eval", DONE, timeout_s=240)
    assert worse["status"]["decision"] == "Failed"
    assert condition(worse, "Promoted")["status"] == "False"
    assert condition(worse, "Promoted")["reason"] == "NotPassed"
    assert _registry_state(registry, model) == (["1"], {"champion": "1"})

    create_run(kube, namespace, eval_run("better-eval", "better", dataset, bucket, ns=namespace,
                                         gates=gates, promote=promote))  # fmt: skip
    better = wait_phase(kube, namespace, "better-eval", DONE, timeout_s=240)
    status = better["status"]
    assert status["decision"] == "Passed", status
    promoted = condition(better, "Promoted")
    assert (promoted["status"], promoted["reason"]) == ("True", "Promoted"), promoted
    assert {k: v for k, v in status["promotion"].items() if k != "rolled"} == {
        "model": model, "version": "2", "alias": "champion", "previousVersion": "1",
        "followers": [f"{namespace}/production"],
    }  # fmt: skip
    assert _registry_state(registry, model) == (["1", "2"], {"champion": "2"})
    version = registry.get_model_version(model, "2")
    assert version.source == CANDIDATE_URI and version.tags["shinsa.model.revision"] == REVISION
    assert version.tags["shinsa.evalrun.name"] == "better-eval"
    assert version.tags["shinsa.evalrun.uid"] == better["metadata"]["uid"]
    assert version.run_id == status["mlflowRunId"]  # the version links to the evaluation's run
    # The run reads as history in MLflow: what was evaluated, at which revision, by which EvalRun.
    run_tags = registry.get_run(status["mlflowRunId"]).data.tags
    assert run_tags["shinsa.model.revision"] == REVISION and run_tags["shinsa.evalrun.name"] == "better-eval"
    assert run_tags["shinsa.gate.decision"] == "Passed"
    assert float(version.tags["shinsa.score.mt-bench"]) == pytest.approx(
        status["scores"]["mt-bench"]["mean"], abs=1e-3
    )

    # The production deployment follows the alias without a spec change, at the evaluated revision.
    eventually(lambda: _served_version(kube, namespace, "production") == "2", timeout_s=60,
               what="production to roll to version 2")  # fmt: skip
    # ... and the EvalRun notes that it did.
    eventually(
        lambda: get_run(kube, namespace, "better-eval")["status"]["promotion"].get("rolled")
        == [f"{namespace}/production"],
        timeout_s=60, what="the EvalRun to name the follower that rolled",
    )  # fmt: skip
    template = client.AppsV1Api(kube).read_namespaced_deployment("production", namespace).spec.template
    served = next(c for c in template.spec.containers if c.name == "vllm")
    args = [*(served.command or []), *(served.args or [])]
    assert CANDIDATE_URI.removeprefix("hf://") in args and args[args.index("--revision") + 1] == REVISION

    # Rolled back with the CLI: the alias returns to version 1, recorded with who and why.
    shinsa = [str(Path(sys.executable).parent / "shinsa"), "promote"]
    env_uri = ["--tracking-uri", mlflow_server]
    rollback = [*shinsa, "rollback", model, "--alias", "champion", "--reason", "latency", "--by", "oncall"]
    subprocess.run([*rollback, *env_uri], check=True, capture_output=True, text=True)
    assert _registry_state(registry, model) == (["1", "2"], {"champion": "1"})
    eventually(lambda: _served_version(kube, namespace, "production") == "1", timeout_s=60,
               what="production to roll back to version 1")  # fmt: skip
    shown = subprocess.run([*shinsa, "history", model, "--alias", "champion", "-o", "json", *env_uri],
                           check=True, capture_output=True, text=True).stdout  # fmt: skip
    moves = [(m["kind"], m.get("previous"), m["version"], m["by"]) for m in json.loads(shown)]
    assert moves == [("promote", "1", "2", f"{namespace}/better-eval"), ("rollback", "2", "1", "oncall")]
    assert json.loads(shown)[-1]["reason"] == "latency"


def test_no_tenant_outside_the_policy_and_no_weaker_gate_promotes_whatever_the_scores(
    kube: client.ApiClient, namespace: str, operator: InProcessOperator, bucket: str, mlflow_server: str,
    dataset: Path, evaluator_env: None, registry: MlflowClient,
) -> None:  # fmt: skip

    governed, ungoverned = f"governed-{namespace}", f"free-{namespace}"
    for model in (governed, ungoverned):
        _register_champion(registry, model)
    _policy(kube, governed, ["some-other-team"])

    deploy(kube, namespace, "judge")
    deploy(kube, namespace, "better", quality=2, uri=CANDIDATE_URI)
    # A huge margin against no baseline at all: it passes, and it must not be enough.
    weak = {"rules": [{"type": "minimum", "benchmark": "mt-bench", "threshold": 1.0}]}
    for name, model in (("outsider", governed), ("no-policy", ungoverned)):
        promote = {"registeredModel": model, "alias": "champion"}
        create_run(kube, namespace, eval_run(name, "better", dataset, bucket, ns=namespace, gates=weak,
                                             promote=promote))  # fmt: skip
    for name, model, says in (
        ("outsider", governed, f"namespace {namespace} is not one of some-other-team"),
        ("no-policy", ungoverned, f"no PromotionPolicy governs registered model {ungoverned}"),
    ):
        run = wait_phase(kube, namespace, name, DONE, timeout_s=240)
        assert run["status"]["decision"] == "Passed", run["status"]
        refused = condition(run, "Promoted")
        assert (refused["status"], refused["reason"]) == ("False", "Forbidden")
        assert says in refused["message"]
        assert "promotion" not in run["status"]
        assert _registry_state(registry, model) == (["1"], {"champion": "1"})


SET_ALIAS = ("POST", "/api/2.0/mlflow/registered-models/alias")


def test_an_operator_killed_between_creating_the_version_and_moving_the_alias_moves_it_once(
    kube: client.ApiClient, namespace: str, crds: list[str], bucket: str, mlflow_server: str, s3_server: str,
    dataset: Path, tmp_path: Path, evaluator_env: None, registry: MlflowClient,
) -> None:  # fmt: skip

    model = f"chat-{namespace}"
    _register_champion(registry, model)
    _policy(kube, model, [namespace])

    # MLflow behind a proxy that refuses to move aliases: the operator creates the version, then
    # cannot finish; it is killed there, and a new one finds the version and the recorded move.
    with fault_proxy(mlflow_server) as proxy, no_in_process_operator():
        settings = operator_settings(mlflow_tracking_uri=proxy.url, s3_endpoint_url=s3_server)
        operator = OperatorProcess(settings, namespace, tmp_path / "operator.log")
        operator.start()
        try:
            deploy(kube, namespace, "judge")
            deploy(kube, namespace, "production", uri=f"models:/{model}@champion")
            deploy(kube, namespace, "better", quality=2, uri=CANDIDATE_URI)
            create_run(
                kube, namespace, eval_run("champion-eval", "production", dataset, bucket, ns=namespace)
            )
            wait_phase(kube, namespace, "champion-eval", {"Succeeded"}, timeout_s=240)
            proxy.refuse(*SET_ALIAS)
            gates = {"baseline": {"mlflowModel": f"{model}@champion"}, "rules": [SUPERIORITY]}
            promote = {"registeredModel": model, "alias": "champion"}
            create_run(kube, namespace, eval_run("better-eval", "better", dataset, bucket, ns=namespace,
                                                 gates=gates, promote=promote))  # fmt: skip

            def stuck() -> dict[str, Any] | None:
                run = client.CustomObjectsApi(kube).get_namespaced_custom_object(
                    GROUP, VERSION, namespace, "evalruns", "better-eval"
                )
                promoted = [
                    c for c in (run.get("status") or {}).get("conditions", []) if c["type"] == "Promoted"
                ]
                return run if promoted and promoted[0]["reason"] == "RegistryUnavailable" else None

            waiting = eventually(stuck, timeout_s=240, what="the promotion to wait for the registry")
            assert waiting["status"]["phase"] == "Promoting"
            assert _registry_state(registry, model) == (["1", "2"], {"champion": "1"})  # created, not moved
            assert proxy.refusals >= 1
            operator.kill()
            proxy.allow_all()
            operator.start()
            run = wait_phase(kube, namespace, "better-eval", DONE, timeout_s=120)
            time.sleep(2)  # a second version or move would show by now
        finally:
            operator.stop()

    assert condition(run, "Promoted")["reason"] == "Promoted", run["status"]
    assert run["status"]["promotion"]["version"] == "2"
    assert _registry_state(registry, model) == (["1", "2"], {"champion": "2"})
    moves = [(m.kind, m.version) for m in history(mlflow_server, model=model, alias="champion")]
    assert moves == [("promote", "2")]
