"""The resource models accept the manifests users write and reject bad ones, naming the field."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from shinsa.api import (
    DEFAULT_VLLM_IMAGE,
    READY,
    Backend,
    BenchmarkName,
    ConditionStatus,
    EvalRun,
    ModelDeployment,
    ModelDeploymentPhase,
    get_condition,
    set_condition,
)

pytestmark = pytest.mark.unit

SHA = "0123456789abcdef0123456789abcdef01234567"
CM_REF = {"configMapKeyRef": {"name": "c", "key": "k"}}

MOE = {
    "apiVersion": "shinsa.dev/v1alpha1",
    "kind": "ModelDeployment",
    "metadata": {"name": "llm-jp-4-32b-a3b", "namespace": "models"},
    "spec": {
        "model": {
            "uri": "hf://llm-jp/llm-jp-4-32b-a3b-thinking",
            "revision": SHA,
            "trustRemoteCode": True,
            "servedName": "llm-jp-4-32b-a3b-thinking",
        },
        "serving": {
            "maxModelLen": 65536,
            "dtype": "bfloat16",
            "reasoningParser": "openai_gptoss",
            "extraArgs": ["--enable-prefix-caching"],
            "env": [
                {"name": "VLLM_LOGGING_LEVEL", "value": "INFO"},
                {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf", "key": "token"}}},
            ],
        },
        "resources": {"gpu": {"product": "NVIDIA-H100-80GB-HBM3", "count": 2, "targetConcurrency": 8}},
        "parallelism": {"tensor": 1, "data": 2, "expert": 2},
        "scheduling": {
            "nodeSelector": {"pool": "gpu"},
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
            "queueName": "gpu-queue",
        },
    },
}

EVAL = {
    "apiVersion": "shinsa.dev/v1alpha1",
    "kind": "EvalRun",
    "metadata": {"name": "llm-jp-4-8b-candidate"},
    "spec": {
        "model": {"deploymentRef": {"name": "llm-jp-4-8b"}},
        "benchmarks": [
            {"name": "mt-bench-ja", "dataset": {"uri": "s3://datasets/mt-bench-ja"}},
            {
                "name": "answer-carefully",
                "dataset": {"uri": "pvc://eval-data/answer-carefully-v2"},
                "sampling": {"temperature": 0.0, "reasoningEffort": "medium"},
            },
            {"name": "long-context", "dataset": {"uri": "/data/long"}, "contextLengths": [8192, 32768]},
        ],
        "judges": [
            {
                "name": "gpt",
                "endpoint": "https://api.openai.com/v1",
                "model": "gpt-5.4-2026-03-05",
                "apiKeySecretRef": {"name": "openai", "key": "api-key"},
            }
        ],
        "mlflow": {"trackingUri": "http://mlflow.mlops:5000", "experiment": "llm-jp-4"},
        "gates": {
            "baseline": {"evalRunRef": {"name": "llm-jp-4-8b-production"}},
            "rules": [
                {"benchmark": "mt-bench-ja", "maxRegression": 0.1},
                {"benchmark": "answer-carefully", "metric": "score", "maxRegression": 0.05, "minScore": 3.5},
            ],
        },
        "promote": {
            "registeredModel": "llm-jp-4-8b",
            "alias": "production",
            "targetDeployment": "llm-jp-4-8b",
        },
    },
}


def _with(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of `body` with the dotted `path` set to `value` (or removed when value is ...)."""
    out = copy.deepcopy(body)
    *parents, leaf = path.split(".")
    node = out
    for part in parents:
        node = node.setdefault(part, {})
    if value is ...:
        node.pop(leaf, None)
    else:
        node[leaf] = value
    return out


def test_model_deployment_example_parses_with_defaults() -> None:
    md = ModelDeployment.model_validate(MOE)
    assert md.spec.model.trust_remote_code is True
    assert md.spec.serving.engine == "vllm"
    assert md.spec.serving.image == DEFAULT_VLLM_IMAGE
    assert md.spec.serving.gpu_memory_utilization == 0.9
    assert md.spec.resources.gpu.memory_gib is None
    assert md.spec.replicas == 1
    assert md.spec.backend is Backend.DEPLOYMENT
    assert md.spec.serving.env[1].value_from is not None
    assert md.status.conditions == []


def test_minimal_model_deployment() -> None:
    md = ModelDeployment.model_validate(
        {
            "spec": {
                "model": {"uri": "models:/llm-jp-4-8b@production"},
                "resources": {"gpu": {"memoryGiB": 40}},
            }
        }
    )
    assert md.api_version == "shinsa.dev/v1alpha1"
    assert md.spec.resources.gpu.target_concurrency == 1
    assert md.spec.scheduling.node_selector == {}


def test_snake_case_names_are_accepted_in_python() -> None:
    md = ModelDeployment.model_validate(
        {"spec": {"model": {"uri": "pvc://weights/llm-jp-4-8b"}, "resources": {"gpu": {"memory_gib": 80}}}}
    )
    assert md.spec.resources.gpu.memory_gib == 80
    assert md.to_k8s()["spec"]["resources"]["gpu"]["memoryGiB"] == 80


def test_round_trip_through_the_wire_format() -> None:
    md = ModelDeployment.model_validate(MOE)
    wire = md.to_k8s()
    assert "trust_remote_code" not in str(wire)
    assert wire["spec"]["model"]["trustRemoteCode"] is True
    assert "maxModelLen" in wire["spec"]["serving"] and "ropeScaling" not in wire["spec"]["serving"]
    assert ModelDeployment.model_validate(wire) == md


def test_parses_a_body_as_the_api_server_returns_it() -> None:
    body = copy.deepcopy(MOE)
    body["metadata"].update(
        uid="5c8a", generation=3, resourceVersion="1234", creationTimestamp="2026-01-02T03:04:05Z",
        managedFields=[{"manager": "kubectl"}], finalizers=["shinsa.dev/cleanup"],
    )  # fmt: skip
    body["status"] = {
        "observedGeneration": 3,
        "phase": "Ready",
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "ReplicasReady",
                "message": "",
                "lastTransitionTime": "2026-01-02T03:05:00Z",
                "observedGeneration": 3,
            }
        ],
        "plan": {"layout": {"tensor": 1, "data": 2}, "why": ["weights 60 GiB"]},
        "gpus": 2,
        "kopf": {"progress": {}},
    }
    md = ModelDeployment.from_body(body)
    assert md.metadata.generation == 3
    assert md.status.phase is ModelDeploymentPhase.READY
    ready = get_condition(md.status.conditions, READY)
    assert ready is not None and ready.status is ConditionStatus.TRUE
    assert md.status.plan == {"layout": {"tensor": 1, "data": 2}, "why": ["weights 60 GiB"]}


@pytest.mark.parametrize(
    ("path", "value", "names"),
    [
        ("spec.model.uri", "http://example.com/model", "uri"),
        ("spec.model.uri", "hf://just-a-name", "uri"),
        ("spec.model.revision", ..., "spec.model.revision"),
        ("spec.model.revision", "main", "spec.model.revision"),
        ("spec.model.revision", SHA.upper(), "spec.model.revision"),
        ("spec.serving.engine", "tgi", "engine"),
        ("spec.serving.dtype", "int4", "dtype"),
        ("spec.serving.gpuMemoryUtilization", 1.2, "gpuMemoryUtilization"),
        ("spec.serving.maxModelLen", 0, "maxModelLen"),
        ("spec.serving.ropeScaling", {"type": "yarn", "factor": 1}, "factor"),
        ("spec.serving.ropeScaling", {"type": "dynamic", "factor": 4}, "type"),
        ("spec.serving.extraArg", ["--x"], "extraArg"),
        ("spec.serving.env", [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}], "spec.serving.env"),
        ("spec.serving.env", [{"name": "A", "value": "1", "valueFrom": CM_REF}], "valueFrom"),
        ("spec.serving.env", [{"name": "A", "valueFrom": {}}], "secretKeyRef"),
        ("spec.resources.gpu", {"product": "NVIDIA-H100-80GB-HBM3", "memoryGiB": 80}, "memoryGiB"),
        ("spec.resources.gpu", {"count": 2}, "memoryGiB"),
        ("spec.resources.gpu.targetConcurrency", 0, "targetConcurrency"),
        ("spec.parallelism", {"tensor": 2, "expert": 4}, "spec.parallelism.expert"),
        ("spec.parallelism", {"expert": 8}, "spec.parallelism.expert"),
        ("spec.parallelism", {"nodes": 2}, "spec.backend"),
        ("spec.replicas", -1, "replicas"),
        ("spec.backend", "statefulset", "backend"),
        ("spec.scheduling.tolerations", [{"operator": "Maybe"}], "operator"),
        ("metadata.name", "m" * 64, "metadata.name"),
    ],
)  # fmt: skip
def test_model_deployment_rejects_bad_specs_naming_the_field(path: str, value: Any, names: str) -> None:
    with pytest.raises(ValidationError) as err:
        ModelDeployment.model_validate(_with(MOE, path, value))
    assert names in str(err.value)


@pytest.mark.parametrize(
    "parallelism",
    [
        {"tensor": 8, "expert": 8},
        {"tensor": 2, "data": 4, "expert": 8},
        {"data": 4, "expert": 1},
        {"tensor": 4},
    ],
)
def test_expert_parallel_layouts_vllm_can_run(parallelism: dict[str, int]) -> None:
    ModelDeployment.model_validate(_with(MOE, "spec.parallelism", parallelism))


def test_multi_node_replicas_need_a_leaderworkerset() -> None:
    body = _with(_with(MOE, "spec.parallelism", {"tensor": 8, "nodes": 2}), "spec.backend", "leaderworkerset")
    assert ModelDeployment.model_validate(body).spec.backend is Backend.LEADERWORKERSET


def test_remote_code_off_needs_no_pinned_revision() -> None:
    body = _with(_with(MOE, "spec.model.trustRemoteCode", False), "spec.model.revision", ...)
    assert ModelDeployment.model_validate(body).spec.model.revision is None


def test_eval_run_example_parses_with_defaults() -> None:
    run = EvalRun.model_validate(EVAL)
    assert run.spec.repeats == 3
    assert run.spec.concurrency == 16
    assert run.spec.max_error_rate == 0.05
    assert run.spec.benchmarks[0].name is BenchmarkName.MT_BENCH_JA
    assert run.spec.gates is not None and run.spec.gates.confidence == 0.95
    assert run.spec.gates.rules[0].metric == "score"
    assert EvalRun.model_validate(run.to_k8s()) == run


def test_eval_run_against_an_external_endpoint() -> None:
    body = _with(EVAL, "spec.model", {"endpoint": "http://judge-double:8000/v1", "servedName": "qwen3-8b"})
    body = _with(_with(body, "spec.gates", ...), "spec.promote", ...)
    run = EvalRun.model_validate(body)
    assert run.spec.model.endpoint == "http://judge-double:8000/v1"
    assert run.spec.mlflow.experiment == "llm-jp-4"


@pytest.mark.parametrize(
    ("path", "value", "names"),
    [
        ("spec.model", {}, "deploymentRef"),
        ("spec.model", {"deploymentRef": {"name": "a"}, "endpoint": "http://x/v1", "servedName": "a"},
         "deploymentRef"),
        ("spec.model", {"endpoint": "http://x/v1"}, "spec.model.servedName"),
        ("spec.model", {"endpoint": "ftp://x", "servedName": "a"}, "endpoint"),
        ("spec.benchmarks", [], "benchmarks"),
        ("spec.benchmarks", [{"name": "mmlu", "dataset": {"uri": "/d"}}], "name"),
        ("spec.benchmarks", [{"name": "mt-bench", "dataset": {"uri": "relative/path"}}], "uri"),
        ("spec.benchmarks", [{"name": "mt-bench-ja", "dataset": {"uri": "/d"}, "contextLengths": [8192]}],
         "contextLengths"),
        ("spec.benchmarks", [{"name": "mt-bench-ja", "dataset": {"uri": "/a"}},
                             {"name": "mt-bench-ja", "dataset": {"uri": "/b"}}], "spec.benchmarks"),
        ("spec.judges", [], "judges"),
        ("spec.repeats", 11, "repeats"),
        ("spec.repeats", 0, "repeats"),
        ("spec.maxErrorRate", 1.5, "maxErrorRate"),
        ("spec.gates", ..., "spec.gates"),
        ("spec.gates.baseline", {}, "evalRunRef"),
        ("spec.gates.rules", [{"benchmark": "mt-bench", "maxRegression": 0.1}], "spec.benchmarks"),
        ("spec.gates.rules", [{"benchmark": "mt-bench-ja", "maxRegression": -1}], "maxRegression"),
        ("spec.gates.confidence", 1.0, "confidence"),
        ("spec.promote.alias", "not an alias", "alias"),
    ],
)  # fmt: skip
def test_eval_run_rejects_bad_specs_naming_the_field(path: str, value: Any, names: str) -> None:
    with pytest.raises(ValidationError) as err:
        EvalRun.model_validate(_with(EVAL, path, value))
    assert names in str(err.value)


def test_set_condition_moves_the_transition_time_only_on_a_status_change() -> None:
    t0 = datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)
    conditions = set_condition([], READY, False, "Planning", "planning GPUs", observed_generation=1, now=t0)
    assert conditions[0].last_transition_time == t0.replace(microsecond=0)

    same = set_condition(conditions, READY, ConditionStatus.FALSE, "Loading", "loading weights",
                         now=t0 + timedelta(minutes=1))  # fmt: skip
    assert same[0].last_transition_time == conditions[0].last_transition_time
    assert same[0].reason == "Loading"

    flipped = set_condition(same, READY, True, "ReplicasReady", now=t0 + timedelta(minutes=2))
    assert flipped[0].last_transition_time == (t0 + timedelta(minutes=2)).replace(microsecond=0)

    both = set_condition(flipped, "Planned", True, "Planned", now=t0)
    assert [c.type for c in both] == [READY, "Planned"]
    assert conditions[0].reason == "Planning", "the input list must not be modified"


def test_conditions_serialise_as_kubernetes_expects() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    (cond,) = set_condition([], READY, True, "ReplicasReady", "2/2 replicas ready", now=now)
    assert cond.to_k8s() == {
        "type": "Ready",
        "status": "True",
        "reason": "ReplicasReady",
        "message": "2/2 replicas ready",
        "lastTransitionTime": "2026-01-01T12:00:00Z",
    }


def test_condition_reasons_follow_the_kubernetes_pattern() -> None:
    with pytest.raises(ValidationError, match="reason"):
        set_condition([], READY, True, "not camel case")
