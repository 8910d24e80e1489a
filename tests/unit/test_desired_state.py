"""desired_state turns a ModelDeployment's spec into a plan: `resources.gpu.count` and `spec.parallelism`
are combined rather than one overriding the other, `expert: 1` turns expert parallelism off, and a spec
whose fields contradict each other is refused naming them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from shinsa.api import ModelDeployment
from shinsa.controllers.desired import SpecProblem, desired_state, plan_request
from shinsa.planner import Architecture, Plan, load_config_json, lookup_model
from tests.support.manifests import model_deployment

pytestmark = pytest.mark.unit

GPUS_PER_NODE = 8

# The shape of Qwen/Qwen3-8B's config.json as published: 40,960 positions, no rope_scaling.
QWEN3_8B = Path(__file__).parent / "fixtures" / "configs" / "qwen3-8b"


def dense(gpu: dict[str, Any] | None = None, **spec: Any) -> tuple[ModelDeployment, Architecture]:
    md = model_deployment("hf://llm-jp/llm-jp-4-8b-base", name="model", gpu=gpu, **spec)
    return md, lookup_model("llm-jp-4-8b").architecture


def moe(gpu: dict[str, Any] | None = None, **spec: Any) -> tuple[ModelDeployment, Architecture]:
    md = model_deployment("hf://Qwen/Qwen3-30B-A3B", name="model", gpu=gpu, **spec)
    return md, lookup_model("qwen3-30b-a3b").architecture


def planned(md_and_arch: tuple[ModelDeployment, Architecture]) -> Plan:
    md, arch = md_and_arch
    return desired_state(md, arch, GPUS_PER_NODE, md.spec.model.uri).plan


def refused(md_and_arch: tuple[ModelDeployment, Architecture]) -> SpecProblem:
    md, arch = md_and_arch
    with pytest.raises(SpecProblem) as caught:
        desired_state(md, arch, GPUS_PER_NODE, md.spec.model.uri)
    return caught.value


def flag_value(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


# --- resources.gpu.count alone ------------------------------------------------------------------------------


def test_count_alone_reaches_the_planner_as_the_gpus_per_replica() -> None:
    md, arch = dense({"count": 4})
    request = plan_request(md, arch, GPUS_PER_NODE, md.spec.model.uri)
    assert request.gpu_count == 4
    assert (request.tensor_parallel, request.data_parallel, request.expert_parallel) == (None, None, None)


def test_count_alone_splits_a_dense_model_by_tensor_parallelism() -> None:
    result = planned(dense({"count": 4}))
    assert (result.layout, result.gpus_per_replica) == ("TP4", 4)


def test_count_alone_spreads_a_moe_model_over_data_and_expert_parallel_ranks() -> None:
    result = planned(moe({"count": 4}))
    assert (result.layout, result.gpus_per_replica, result.expert_parallel) == ("DP4+EP", 4, 4)
    assert "--enable-expert-parallel" in result.vllm_args


def test_a_count_no_layout_can_use_is_refused_naming_the_count() -> None:
    problem = refused(dense({"count": 3}))  # 32 attention heads do not split 3 ways
    assert problem.reason == "PlanFailed"
    assert problem.message.startswith("spec.resources.gpu.count: ")
    assert "TP3" in problem.message


# --- expert: 1 ----------------------------------------------------------------------------------------------


def test_expert_1_is_passed_to_the_planner_as_a_pin() -> None:
    md, arch = moe(parallelism={"expert": 1})
    assert plan_request(md, arch, GPUS_PER_NODE, md.spec.model.uri).expert_parallel == 1


def test_expert_1_keeps_a_moe_model_that_needs_several_gpus_off_expert_parallelism() -> None:
    # Without the pin, this much concurrency is served with data + expert parallelism.
    unpinned = planned(moe({"targetConcurrency": 64}))
    assert "--enable-expert-parallel" in unpinned.vllm_args

    result = planned(moe({"targetConcurrency": 64}, parallelism={"expert": 1}))
    assert result.gpus_per_replica > 1
    assert result.expert_parallel == 1
    assert "+EP" not in result.layout
    assert "--enable-expert-parallel" not in result.vllm_args


def test_expert_1_with_a_count_uses_that_many_gpus_without_expert_parallelism() -> None:
    result = planned(moe({"count": 4}, parallelism={"expert": 1}))
    assert (result.layout, result.gpus_per_replica, result.expert_parallel) == ("TP4", 4, 1)
    assert "--enable-expert-parallel" not in result.vllm_args


# --- count and pins together --------------------------------------------------------------------------------


def test_count_fills_the_dimension_the_pins_leave_open() -> None:
    result = planned(dense({"count": 4}, parallelism={"tensor": 1}))
    assert (result.tensor_parallel, result.data_parallel, result.gpus_per_replica) == (1, 4, 4)
    assert flag_value(result.vllm_args, "--data-parallel-size") == "4"

    result = planned(dense({"count": 4}, parallelism={"tensor": 2}))
    assert (result.layout, result.gpus_per_replica) == ("DP2xTP2", 4)


def test_count_agreeing_with_every_pin_plans_exactly_that_layout() -> None:
    result = planned(moe({"count": 4}, parallelism={"tensor": 1, "data": 4, "expert": 4}))
    assert (result.layout, result.gpus_per_replica, result.expert_parallel) == ("DP4+EP", 4, 4)


def test_count_contradicting_the_pinned_sizes_names_both_fields() -> None:
    problem = refused(dense({"count": 4}, parallelism={"tensor": 1, "data": 1}))
    assert problem.reason == "PlanFailed"
    fields, _, detail = problem.message.partition(": ")
    assert fields.split(", ") == [
        "spec.resources.gpu.count",
        "spec.parallelism.tensor",
        "spec.parallelism.data",
    ]
    assert "4 GPU(s)" in detail and "is 1" in detail


def test_count_that_a_pinned_size_does_not_divide_names_both_fields() -> None:
    problem = refused(dense({"count": 6}, parallelism={"tensor": 4}))
    assert problem.message.startswith("spec.resources.gpu.count, spec.parallelism.tensor: ")
    assert "not a multiple" in problem.message


def test_count_fills_the_sizes_an_expert_size_leaves_open() -> None:
    result = planned(moe({"count": 4}, parallelism={"expert": 4}))
    assert (result.layout, result.gpus_per_replica, result.data_parallel, result.expert_parallel) == (
        "DP4+EP",
        4,
        4,
        4,
    )
    result = planned(moe({"count": 4}, parallelism={"tensor": 2, "expert": 4}))
    assert (result.layout, result.gpus_per_replica, result.expert_parallel) == ("DP2xTP2+EP", 4, 4)


def test_count_contradicting_the_expert_size_names_both_fields() -> None:
    # tensor 2 divides count 4 and the spec allows expert 2 (tensor * data with data unset), so only the
    # planner's expert check sees that data is filled to 2 and the expert group must span all 4 GPUs.
    problem = refused(moe({"count": 4}, parallelism={"tensor": 2, "expert": 2}))
    assert problem.reason == "PlanFailed"
    fields, _, detail = problem.message.partition(": ")
    assert fields.split(", ") == ["spec.resources.gpu.count", "spec.parallelism.expert"]
    assert "expert 2" in detail and "4 GPU(s)" in detail


# --- Qwen3 context from its own config.json -----------------------------------------------------------------


@pytest.fixture
def qwen3_8b_from_config() -> Architecture:
    return load_config_json(QWEN3_8B)


def test_a_qwen3_config_defaults_to_its_32768_token_native_context(
    qwen3_8b_from_config: Architecture,
) -> None:
    md = model_deployment("s3://models/qwen3-8b", name="model")
    result = desired_state(md, qwen3_8b_from_config, GPUS_PER_NODE, md.spec.model.uri).plan
    assert result.max_model_len == 32768
    assert flag_value(result.vllm_args, "--max-model-len") == "32768"
    assert "--hf-overrides" not in result.vllm_args


def test_a_qwen3_config_is_not_served_past_32768_without_yarn(qwen3_8b_from_config: Architecture) -> None:
    md = model_deployment("s3://models/qwen3-8b", name="model", serving={"maxModelLen": 40960})
    with pytest.raises(SpecProblem) as caught:
        desired_state(md, qwen3_8b_from_config, GPUS_PER_NODE, md.spec.model.uri)
    assert caught.value.message.startswith("spec.serving.maxModelLen: ")
    assert "32,768" in caught.value.message


def test_a_qwen3_config_with_yarn_factor_4_serves_131072_tokens(qwen3_8b_from_config: Architecture) -> None:
    md = model_deployment(
        "s3://models/qwen3-8b",
        name="model",
        serving={"maxModelLen": 131072, "ropeScaling": {"type": "yarn", "factor": 4}},
    )
    result = desired_state(md, qwen3_8b_from_config, GPUS_PER_NODE, md.spec.model.uri).plan
    assert result.max_model_len == 131072
    assert flag_value(result.vllm_args, "--max-model-len") == "131072"
    overrides = json.loads(flag_value(result.vllm_args, "--hf-overrides"))
    assert overrides == {
        "rope_scaling": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}
    }
    assert not any("YaRN" in warning for warning in result.warnings)
