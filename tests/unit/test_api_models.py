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
    GateRuleType,
    ModelDeployment,
    ModelDeploymentPhase,
    get_condition,
    set_condition,
)
from tests.support.api_cases import (
    BAD_EVAL_RUNS,
    BAD_MODEL_DEPLOYMENTS,
    EVAL,
    GOOD_EVAL_RUNS,
    GOOD_MODEL_DEPLOYMENTS,
    MOE,
    with_value,
)

pytestmark = pytest.mark.unit


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


@pytest.mark.parametrize(("path", "value", "names"), BAD_MODEL_DEPLOYMENTS)
def test_model_deployment_rejects_bad_specs_naming_the_field(path: str, value: Any, names: str) -> None:
    with pytest.raises(ValidationError) as err:
        ModelDeployment.model_validate(with_value(MOE, path, value))
    assert names in str(err.value)


@pytest.mark.parametrize(("path", "value"), GOOD_MODEL_DEPLOYMENTS)
def test_expert_parallel_layouts_vllm_can_run(path: str, value: Any) -> None:
    ModelDeployment.model_validate(with_value(MOE, path, value))


def test_count_fills_unset_sizes_so_expert_may_equal_it() -> None:
    body = with_value(with_value(MOE, "spec.resources.gpu.count", 4), "spec.parallelism", {"expert": 4})
    parallelism = ModelDeployment.model_validate(body).spec.parallelism
    assert parallelism is not None and parallelism.expert == 4


@pytest.mark.parametrize(
    ("gpu_count", "parallelism"),
    [
        (None, {"expert": 4}),  # no count to fill tensor * data
        (4, {"tensor": 1, "data": 2, "expert": 4}),  # both sizes pinned: count fills nothing
        (4, {"tensor": 2, "expert": 8}),  # neither tensor * data nor the count
    ],
)
def test_expert_contradicting_tensor_data_and_count_names_the_fields(
    gpu_count: int | None, parallelism: dict[str, int]
) -> None:
    body = with_value(
        with_value(MOE, "spec.resources.gpu.count", ... if gpu_count is None else gpu_count),
        "spec.parallelism",
        parallelism,
    )
    with pytest.raises(ValidationError) as err:
        ModelDeployment.model_validate(body)
    assert "spec.parallelism.expert" in str(err.value)
    assert "spec.resources.gpu.count" in str(err.value)


def test_multi_node_replicas_need_a_leaderworkerset() -> None:
    body = with_value(
        with_value(MOE, "spec.parallelism", {"tensor": 8, "nodes": 2}), "spec.backend", "leaderworkerset"
    )
    assert ModelDeployment.model_validate(body).spec.backend is Backend.LEADERWORKERSET


def test_remote_code_off_needs_no_pinned_revision() -> None:
    body = with_value(with_value(MOE, "spec.model.trustRemoteCode", False), "spec.model.revision", ...)
    assert ModelDeployment.model_validate(body).spec.model.revision is None


def test_eval_run_example_parses_with_defaults() -> None:
    run = EvalRun.model_validate(EVAL)
    assert run.spec.concurrency == 16
    assert run.spec.max_error_rate == 0.05
    assert run.spec.retries == 4
    assert run.spec.benchmarks[0].name is BenchmarkName.MT_BENCH_JA
    assert run.spec.sampling.reasoning_effort == "minimal"
    assert run.spec.gates is not None and run.spec.gates.confidence == 0.95
    assert run.spec.gates.rules[0].type is GateRuleType.NON_INFERIORITY
    assert run.spec.gates.rules[0].metric_name == "score"
    assert run.spec.gates.rules[3].benchmark is None  # maxErrorRate checks the whole run
    assert run.spec.judges[0].temperature is None and run.spec.judges[0].max_tokens == 2048
    assert EvalRun.model_validate(run.to_k8s()) == run


def test_a_judge_without_temperature_stays_without_one_through_the_wire_format() -> None:
    # null is a value of its own (send no temperature), not "unset, take the default 0".
    run = EvalRun.model_validate(EVAL)
    wire = run.to_k8s()["spec"]["judges"][0]
    assert wire["temperature"] is None
    assert "reasoningEffort" not in wire  # an unset field with a None default is still left out
    defaulted = with_value(EVAL, "spec.judges", [{"name": "j", "endpoint": "http://j/v1", "model": "m"}])
    assert EvalRun.model_validate(defaulted).spec.judges[0].temperature == 0.0


def test_long_context_alone_needs_no_judge() -> None:
    body = with_value(EVAL, "spec.judges", ...)
    body = with_value(with_value(body, "spec.gates", ...), "spec.promote", ...)
    body = with_value(body, "spec.benchmarks", [{"name": "long-context", "dataset": {"uri": "/d"}}])
    assert EvalRun.model_validate(body).spec.judges == []


def test_the_judge_free_benchmarks_are_the_engines_rule_scored_ones() -> None:
    from shinsa.api.eval_run import RULE_SCORED_BENCHMARKS
    from shinsa.evaluation.benchmarks import known_benchmarks

    registry = known_benchmarks()
    assert set(registry) == set(BenchmarkName)
    assert {n for n, cls in registry.items() if not cls.needs_judge} == RULE_SCORED_BENCHMARKS


def test_eval_run_against_an_external_endpoint() -> None:
    body = with_value(
        EVAL, "spec.model", {"endpoint": "http://judge-double:8000/v1", "servedName": "qwen3-8b"}
    )
    body = with_value(with_value(body, "spec.gates", ...), "spec.promote", ...)
    run = EvalRun.model_validate(body)
    assert run.spec.model.endpoint == "http://judge-double:8000/v1"
    assert run.spec.mlflow.experiment == "llm-jp-4"


@pytest.mark.parametrize(("path", "value"), GOOD_EVAL_RUNS)
def test_eval_run_variants_are_accepted(path: str, value: Any) -> None:
    run = EvalRun.model_validate(with_value(EVAL, path, value))
    assert EvalRun.model_validate(run.to_k8s()) == run


@pytest.mark.parametrize(("path", "value", "names"), BAD_EVAL_RUNS)
def test_eval_run_rejects_bad_specs_naming_the_field(path: str, value: Any, names: str) -> None:
    with pytest.raises(ValidationError) as err:
        EvalRun.model_validate(with_value(EVAL, path, value))
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
