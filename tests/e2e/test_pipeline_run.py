"""`shinsa pipeline run` end to end, as CI runs it: the CLI in a subprocess against the local control
plane, the session operator, real MLflow and S3 and evaluation Jobs. Its exit code is the outcome:
a better candidate is promoted (0), a worse one rejected and torn down (1), one the gates cannot
decide on is inconclusive (3); `--dry-run` applies nothing and a bad file exits 2 naming the field."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from mlflow import MlflowClient

from shinsa.devcluster.cluster import LocalCluster
from shinsa.devcluster.model_endpoints import ANSWER_QUALITY_ANNOTATION
from shinsa.pipeline import PIPELINE_LABEL
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
from tests.support.operator import InProcessOperator

pytestmark = pytest.mark.e2e

BUCKET = "pipeline-e2e"
QUESTIONS = 24
CHAMPION_URI = "hf://llm-jp/llm-jp-4-8b"
CANDIDATE = "hf://Qwen/Qwen3-8B@0123456789abcdef0123456789abcdef01234567"
SUPERIORITY = {"type": "superiority", "benchmark": "mt-bench", "metric": "score"}
GPU = "NVIDIA-H100-80GB-HBM3"
SHINSA = str(Path(sys.executable).parent / "shinsa")


def _definition(namespace: str, model: str, dataset: Path, bucket: str) -> dict[str, Any]:
    """pipelines/promote.yaml's shape, on the dev cluster's stand-ins: the same run settings as the
    EvalRuns of test_promotion.py, so the champion's evaluation is comparable."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "PromotionPipeline",
        "namespace": namespace,
        "registeredModel": model,
        "alias": "champion",
        "candidate": {"spec": {"serving": {"maxModelLen": 8192}, "resources": {"gpu": {"product": GPU}}}},
        "evalRun": {"spec": {
            "benchmarks": [{"name": "mt-bench", "dataset": {"uri": str(dataset)}}],
            "judges": [{"name": "judge-a", "endpoint": f"http://judge.{namespace}.svc:8000/v1",
                        "model": "judge-a"}],
            "repeats": 1, "timeoutSeconds": 10, "retries": 0, "storage": {"bucket": bucket},
            "gates": {"rules": [SUPERIORITY]},
        }},
        "timeouts": {"ready": "2m", "evaluation": "4m"},
    }  # fmt: skip


def _shinsa_pipeline(cluster: LocalCluster, pipeline: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [SHINSA, "pipeline", "run", str(pipeline), "--kubeconfig", str(cluster.kubeconfig), *args]
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, timeout=420)
    print(f"$ {' '.join(args)}  -> {done.returncode} in {time.monotonic() - started:.1f} s")
    print(done.stdout, done.stderr)
    return done


def _registry_state(registry: Any, model: str) -> tuple[list[str], dict[str, str]]:
    versions = sorted(v.version for v in registry.search_model_versions(f"name = '{model}'"))
    return versions, dict(registry.get_registered_model(model).aliases)


def _deployment(kube: client.ApiClient, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        found: dict[str, Any] = client.CustomObjectsApi(kube).get_namespaced_custom_object(
            GROUP, VERSION, namespace, "modeldeployments", name
        )
        return found
    except client.ApiException as exc:
        if exc.status == 404:
            return None
        raise


def test_the_exit_code_is_the_decision_promoted_rejected_and_inconclusive(
    kube: client.ApiClient, cluster: LocalCluster, namespace: str, operator: InProcessOperator,
    bucket: str, mlflow_server: str, dataset: Path, tmp_path: Path, evaluator_env: None,
    registry: MlflowClient,
) -> None:  # fmt: skip

    model = f"chat-{namespace}"
    registry.create_registered_model(model)
    registry.set_registered_model_alias(
        model, "champion", registry.create_model_version(model, CHAMPION_URI).version
    )
    policy = {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "PromotionPolicy", "metadata": {"name": model},
        "spec": {"registeredModel": model, "namespaces": [namespace], "requiredRules": [SUPERIORITY]},
    }  # fmt: skip
    client.CustomObjectsApi(kube).create_cluster_custom_object(GROUP, VERSION, "promotionpolicies", policy)

    deploy(kube, namespace, "judge")
    deploy(kube, namespace, "production", uri=f"models:/{model}@champion")
    create_run(kube, namespace, eval_run("champion-eval", "production", dataset, bucket, ns=namespace))
    wait_phase(kube, namespace, "champion-eval", {"Succeeded"}, timeout_s=240)

    pipeline = tmp_path / "promote.yaml"
    pipeline.write_text(yaml.safe_dump(_definition(namespace, model, dataset, bucket), sort_keys=False))
    quality = f"candidate.annotations[{ANSWER_QUALITY_ANNOTATION}]"

    # Worse: rejected, torn down, the registry as it was. (Before the better one, so that all
    # three are compared against the evaluated version 1.)
    worse = _shinsa_pipeline(
        cluster, pipeline, "--candidate", CANDIDATE, "--name", "worse", "--set", f"{quality}=-2"
    )
    assert worse.returncode == 1, worse.stderr
    assert "rejected: the gates decided Failed" in worse.stdout
    assert "deleted ModelDeployment" in worse.stdout
    assert _deployment(kube, namespace, "worse") is None
    rejected = get_run(kube, namespace, "worse")
    assert rejected["status"]["decision"] == "Failed"
    assert rejected["metadata"]["labels"][PIPELINE_LABEL] == "worse"
    assert _registry_state(registry, model) == (["1"], {"champion": "1"})

    # The same answers as the champion's: a superiority rule cannot pass, and with more pairs asked
    # for than the dataset has the gates cannot decide either way.
    pairs = f"evalRun.spec.gates.minPairs={QUESTIONS + 1}"
    tie = _shinsa_pipeline(cluster, pipeline, "--candidate", CANDIDATE, "--name", "tie",
                           "--set", f"{quality}=0", "--set", pairs)  # fmt: skip
    assert tie.returncode == 3, tie.stderr
    assert "inconclusive: the gates decided Inconclusive" in tie.stdout
    assert _deployment(kube, namespace, "tie") is None
    assert _registry_state(registry, model) == (["1"], {"champion": "1"})

    better = _shinsa_pipeline(
        cluster, pipeline, "--candidate", CANDIDATE, "--name", "better", "--set", f"{quality}=2"
    )
    assert better.returncode == 0, better.stderr
    assert f"promoted: promoted, {model}@champion: version 1 -> 2" in better.stdout
    assert _registry_state(registry, model) == (["1", "2"], {"champion": "2"})
    promoted = get_run(kube, namespace, "better")
    assert condition(promoted, "Promoted")["reason"] == "Promoted"
    assert promoted["status"]["promotion"]["followers"] == [f"{namespace}/production"]
    version = registry.get_model_version(model, "2")
    assert version.source == CANDIDATE.split("@")[0]
    assert version.tags["shinsa.model.revision"] == CANDIDATE.split("@")[1]
    kept = _deployment(kube, namespace, "better")  # teardown: unlessPassed
    assert kept is not None and kept["metadata"]["annotations"][ANSWER_QUALITY_ANNOTATION] == "2"
    assert kept["metadata"]["managedFields"][0]["manager"] == "shinsa-pipeline"


def test_dry_run_applies_nothing_and_a_bad_definition_exits_2_naming_the_field(
    kube: client.ApiClient, cluster: LocalCluster, namespace: str, crds: list[str], tmp_path: Path,
    dataset: Path,
) -> None:  # fmt: skip
    pipeline = tmp_path / "promote.yaml"
    pipeline.write_text(yaml.safe_dump(_definition(namespace, "chat", dataset, "some-bucket")))
    shown = _shinsa_pipeline(cluster, pipeline, "--candidate", CANDIDATE, "--name", "dry", "--dry-run")
    assert shown.returncode == 0, shown.stderr
    kinds = [(d["kind"], d["metadata"]["name"]) for d in yaml.safe_load_all(shown.stdout)]
    assert kinds == [("ModelDeployment", "dry"), ("EvalRun", "dry")]
    custom = client.CustomObjectsApi(kube)
    for plural in ("modeldeployments", "evalruns"):
        assert custom.list_namespaced_custom_object(GROUP, VERSION, namespace, plural)["items"] == []

    bad = _definition(namespace, "chat", dataset, "some-bucket")
    bad["candidate"]["spec"]["replicas"] = -1
    pipeline.write_text(yaml.safe_dump(bad))
    refused = _shinsa_pipeline(cluster, pipeline, "--candidate", CANDIDATE, "--name", "bad")
    assert refused.returncode == 2
    assert (
        f"{pipeline}: candidate.spec.replicas: Input should be greater than or equal to 0" in refused.stderr
    )
    assert custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "modeldeployments")["items"] == []
