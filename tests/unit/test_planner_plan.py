"""plan() picks the smallest layout that holds the weights and the requested KV cache, says why, and
refuses what cannot work with a suggestion that would."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import pytest

from shinsa.planner import (
    OWNED_VLLM_FLAGS,
    Plan,
    PlanError,
    PlanRequest,
    RopeScaling,
    load_config_json,
    lookup_model,
    owned_flags_in,
    plan,
    resolve_gpu,
    shell_command,
)
from tests.support.vllm_cli import flag_value, served_model

pytestmark = pytest.mark.unit

CONFIGS = Path(__file__).parent / "fixtures" / "configs"


def request(model: str, gpu: str, **fields: Any) -> PlanRequest:
    preset = lookup_model(model)
    fields.setdefault("served_name", preset.name)
    return PlanRequest(
        architecture=preset.architecture, gpu=resolve_gpu(gpu), model=preset.hf_repo_id, **fields
    )


# --- the layouts the project's models get -------------------------------------------------------------------


def test_llm_jp_4_8b_at_65536_fits_one_h100() -> None:
    result = plan(request("llm-jp-4-8b", "H100-80GB", max_model_len=65536))
    assert (result.layout, result.gpus_per_replica, result.tensor_parallel) == ("TP1", 1, 1)
    assert result.kv_cache_bytes_per_token == 131072
    assert result.max_concurrent_sequences >= 1
    assert flag_value(result.vllm_args, "--tensor-parallel-size") == "1"
    assert flag_value(result.vllm_args, "--max-model-len") == "65536"
    assert 15.5 < result.weights_gib < 16.5


def test_llm_jp_4_32b_a3b_for_four_sequences_on_h100_uses_data_and_expert_parallelism() -> None:
    result = plan(request("llm-jp-4-32b-a3b", "H100-80GB", target_concurrency=4))
    assert result.gpus_per_replica >= 2
    assert result.layout.startswith("DP") and "+EP" in result.layout
    assert result.data_parallel == result.gpus_per_replica == result.expert_parallel
    assert result.tensor_parallel == 1
    assert flag_value(result.vllm_args, "--data-parallel-size") == str(result.data_parallel)
    assert "--enable-expert-parallel" in result.vllm_args
    assert result.max_concurrent_sequences >= 4
    assert result.kv_cache_bytes_per_token == 65536
    # Experts are split over the ranks, the rest is replicated: each GPU holds well under the full model.
    assert result.weights_per_gpu_gib < result.weights_gib / 1.5


def test_llm_jp_4_32b_a3b_for_four_sequences_fits_one_h200() -> None:
    result = plan(request("llm-jp-4-32b-a3b", "H200-141GB", target_concurrency=4))
    assert (result.gpus_per_replica, result.layout) == (1, "TP1")
    assert "--enable-expert-parallel" not in result.vllm_args


def test_the_smaller_layouts_that_did_not_fit_are_named_in_the_reasons() -> None:
    result = plan(request("llm-jp-4-32b-a3b", "H100-80GB", target_concurrency=4))
    assert any(line.startswith("TP1 is too small") for line in result.reasons)
    assert any(line.startswith(f"{result.layout} fits") for line in result.reasons)


def test_max_model_len_defaults_to_the_model_context() -> None:
    assert plan(request("llm-jp-4-8b", "H100-80GB")).max_model_len == 65536
    assert plan(request("qwen3-8b", "H100-80GB")).max_model_len == 32768


def test_a_dense_model_too_big_for_one_gpu_gets_tensor_parallelism_within_the_node() -> None:
    result = plan(request("qwen3-32b", "L4"))
    assert result.layout == f"TP{result.tensor_parallel}"
    assert result.tensor_parallel in (4, 8)
    assert result.nodes_per_replica == 1
    assert result.shm_size_gib > plan(request("qwen3-8b", "H100")).shm_size_gib


def test_more_concurrency_never_plans_fewer_gpus() -> None:
    sizes = [
        plan(request("llm-jp-4-32b-a3b", "H100-80GB", target_concurrency=c)).gpus_per_replica
        for c in (1, 4, 16, 64)
    ]
    assert sizes == sorted(sizes)


# --- several nodes ------------------------------------------------------------------------------------------


def test_more_gpus_than_a_node_holds_spans_nodes_with_leader_and_worker_args() -> None:
    result = plan(request("llm-jp-4-32b-a3b", "L4", gpus_per_node=2, backend="leaderworkerset"))
    assert result.nodes_per_replica > 1
    assert result.gpus_per_node * result.nodes_per_replica == result.gpus_per_replica
    assert result.layout.endswith(f"x{result.nodes_per_replica} nodes")
    local = str(result.data_parallel_local)
    leader, worker = result.leader_args, result.worker_args
    assert result.vllm_args == leader
    for args in (leader, worker):
        assert flag_value(args, "--data-parallel-size") == str(result.data_parallel)
        assert flag_value(args, "--data-parallel-size-local") == local
        assert "--data-parallel-rpc-port" in args
    # vLLM binds the leader's ZMQ sockets on the address as given, and ZMQ cannot bind a DNS name:
    # the leader gets its pod IP, the workers the IP their shell resolved from the leader's name.
    assert flag_value(leader, "--data-parallel-address") == "$(SHINSA_POD_IP)"
    assert flag_value(worker, "--data-parallel-address") == "${SHINSA_LEADER_IP}"
    assert "--headless" in worker and "--headless" not in leader
    assert flag_value(worker, "--data-parallel-start-rank") == f"$((LWS_WORKER_INDEX*{local}))"


def test_several_nodes_need_the_leaderworkerset_backend() -> None:
    with pytest.raises(PlanError, match="leaderworkerset") as caught:
        plan(request("llm-jp-4-32b-a3b", "L4", gpus_per_node=2))
    assert caught.value.field == "backend"


def test_single_node_plans_have_no_leader_or_worker_args() -> None:
    result = plan(request("llm-jp-4-8b", "H100-80GB"))
    assert (result.leader_args, result.worker_args, result.nodes_per_replica) == ([], [], 1)


# --- refusals that say what would work ----------------------------------------------------------------------


def test_llm_jp_4_32b_a3b_on_one_24gib_gpu_is_refused_with_what_would_fit() -> None:
    with pytest.raises(PlanError) as caught:
        plan(request("llm-jp-4-32b-a3b", "24GiB", gpus_per_node=1))
    error = caught.value
    assert error.suggestions
    text = str(error)
    assert "What would fit" in text
    assert "leaderworkerset" in text  # the same GPUs over several nodes
    assert "H100-80GB" in text or "A100-80GB" in text  # or a bigger GPU


def test_a_request_that_fits_nowhere_in_a_node_names_the_shortfall() -> None:
    with pytest.raises(PlanError) as caught:
        plan(request("qwen3-32b", "L4", gpus_per_node=4))
    assert "does not fit" in caught.value.reason
    assert any("nodes with 8 GPUs" in s for s in caught.value.suggestions)
    assert any(s.startswith("max_model_len") for s in caught.value.suggestions)


def test_qwen3_beyond_32768_needs_rope_scaling() -> None:
    with pytest.raises(PlanError, match="YaRN") as caught:
        plan(request("qwen3-8b", "H100-80GB", max_model_len=65536))
    assert caught.value.field == "max_model_len"


def test_qwen3_with_yarn_factor_4_serves_131072_tokens() -> None:
    result = plan(request("qwen3-8b", "H100-80GB", max_model_len=131072, rope_scaling=RopeScaling(factor=4)))
    assert result.max_model_len == 131072
    overrides = json.loads(flag_value(result.vllm_args, "--hf-overrides"))
    assert overrides == {
        "rope_scaling": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}
    }
    assert not result.warnings


def test_yarn_does_not_stretch_past_its_factor() -> None:
    with pytest.raises(PlanError, match="131,072") as caught:
        plan(request("qwen3-8b", "H100-80GB", max_model_len=131073, rope_scaling=RopeScaling(factor=4)))
    assert caught.value.field == "max_model_len"


def test_yarn_within_the_native_context_is_allowed_but_warned_about() -> None:
    result = plan(request("qwen3-8b", "H100-80GB", max_model_len=8192, rope_scaling=RopeScaling(factor=4)))
    assert any("YaRN" in warning for warning in result.warnings)


def test_llm_jp_context_cannot_exceed_65536_without_scaling() -> None:
    with pytest.raises(PlanError, match="65,536"):
        plan(request("llm-jp-4-8b", "H200", max_model_len=131072))


# --- pinned parallelism -------------------------------------------------------------------------------------


def test_a_pinned_tensor_size_is_used_even_when_one_gpu_would_do() -> None:
    result = plan(request("llm-jp-4-8b", "H100-80GB", tensor_parallel=2))
    assert (result.layout, result.gpus_per_replica) == ("TP2", 2)
    assert any("pinned" in line for line in result.reasons)


def test_a_tensor_size_that_does_not_divide_the_heads_is_refused() -> None:
    with pytest.raises(PlanError, match="attention heads") as caught:
        plan(request("llm-jp-4-32b-a3b", "H200", tensor_parallel=3))
    assert caught.value.field == "tensor_parallel"
    assert any(s.startswith("without pinning") for s in caught.value.suggestions)


def test_expert_parallelism_is_refused_for_a_dense_model() -> None:
    with pytest.raises(PlanError, match="dense"):
        plan(request("llm-jp-4-8b", "H100-80GB", expert_parallel=2, tensor_parallel=2))


def test_pinned_data_parallel_moe_turns_on_expert_parallelism() -> None:
    result = plan(request("qwen3-30b-a3b", "H100-80GB", data_parallel=4))
    assert (result.layout, result.expert_parallel) == ("DP4+EP", 4)


def test_expert_parallel_1_keeps_moe_on_plain_tensor_parallelism() -> None:
    result = plan(request("llm-jp-4-32b-a3b", "H100-80GB", tensor_parallel=2, expert_parallel=1))
    assert (result.layout, result.expert_parallel) == ("TP2", 1)
    assert "--enable-expert-parallel" not in result.vllm_args


def test_expert_parallel_1_never_offers_an_expert_parallel_layout() -> None:
    # Enough concurrency that the unpinned planner reaches for data + expert parallelism.
    assert "+EP" in plan(request("qwen3-30b-a3b", "H100-80GB", target_concurrency=64)).layout
    result = plan(request("qwen3-30b-a3b", "H100-80GB", target_concurrency=64, expert_parallel=1))
    assert result.gpus_per_replica > 1
    assert (result.expert_parallel, "+EP" in result.layout) == (1, False)
    assert "--enable-expert-parallel" not in result.vllm_args


def test_data_parallelism_without_expert_parallelism_still_slices_the_experts() -> None:
    # vLLM shards each expert over every tensor- and data-parallel rank when EP is off.
    tp2 = plan(request("qwen3-30b-a3b", "H100-80GB", tensor_parallel=2, expert_parallel=1))
    dp2 = plan(request("qwen3-30b-a3b", "H100-80GB", data_parallel=2, expert_parallel=1))
    single = plan(request("qwen3-30b-a3b", "H100-80GB", tensor_parallel=1, data_parallel=1))
    assert dp2.layout == "DP2"
    assert dp2.weights_per_gpu_gib < single.weights_per_gpu_gib
    assert tp2.weights_per_gpu_gib < dp2.weights_per_gpu_gib  # TP also splits attention and embeddings


@pytest.mark.parametrize(
    ("model", "pins", "layout"),
    [
        ("llm-jp-4-8b", {}, "TP4"),
        ("qwen3-30b-a3b", {}, "DP4+EP"),
        ("llm-jp-4-8b", {"tensor_parallel": 1}, "DP4"),
        ("llm-jp-4-8b", {"data_parallel": 2}, "DP2xTP2"),
        ("qwen3-30b-a3b", {"expert_parallel": 1}, "TP4"),
    ],
)
def test_a_gpu_count_is_met_exactly_filling_what_the_pins_leave_open(
    model: str, pins: dict[str, int], layout: str
) -> None:
    result = plan(request(model, "H100-80GB", gpu_count=4, **pins))
    assert (result.layout, result.gpus_per_replica) == (layout, 4)


@pytest.mark.parametrize(
    ("pins", "conflicts"),
    [
        ({"tensor_parallel": 1, "data_parallel": 1}, ("tensor_parallel", "data_parallel")),
        ({"tensor_parallel": 3}, ("tensor_parallel",)),
        ({"data_parallel": 8}, ("data_parallel",)),
        ({"tensor_parallel": 1, "data_parallel": 4, "expert_parallel": 2}, ("expert_parallel",)),
    ],
)
def test_a_gpu_count_the_pins_contradict_is_refused_naming_both(
    pins: dict[str, int], conflicts: tuple[str, ...]
) -> None:
    with pytest.raises(PlanError, match="4 GPU") as caught:
        plan(request("qwen3-30b-a3b", "H100-80GB", gpu_count=4, **pins))
    assert (caught.value.field, caught.value.conflicts) == ("gpu_count", conflicts)


def test_pinned_nodes_without_leaderworkerset_are_refused() -> None:
    with pytest.raises(PlanError, match="leaderworkerset") as caught:
        plan(request("llm-jp-4-32b-a3b", "H100-80GB", data_parallel=16, nodes=2))
    assert caught.value.field == "backend"
    pinned = plan(request("llm-jp-4-32b-a3b", "H100", data_parallel=16, nodes=2, backend="leaderworkerset"))
    assert pinned.layout == "DP16+EP x2 nodes"


def test_tp_beyond_the_kv_heads_replicates_them_and_says_so() -> None:
    arch = load_config_json(CONFIGS / "tiny-llama")  # 4 KV heads
    result = plan(
        PlanRequest(architecture=arch, gpu=resolve_gpu("L4"), model="/models/tiny", tensor_parallel=8)
    )
    assert any("replicated on 2 GPUs" in warning for warning in result.warnings)


# --- config.json models -------------------------------------------------------------------------------------


def test_mistral_config_plans_on_one_h100_and_on_at_most_two_l4() -> None:
    arch = load_config_json(CONFIGS / "mistral-7b")
    on_h100 = plan(PlanRequest(architecture=arch, gpu=resolve_gpu("H100"), model="/models/mistral"))
    assert (on_h100.layout, on_h100.max_model_len) == ("TP1", 32768)
    on_l4 = plan(PlanRequest(architecture=arch, gpu=resolve_gpu("L4"), model="/models/mistral"))
    assert on_l4.gpus_per_replica <= 2
    assert flag_value(on_l4.vllm_args, "--served-model-name") == "/models/mistral"


def test_small_llama_config_plans_one_gpu_and_serves_float32_checkpoints_in_bfloat16() -> None:
    arch = load_config_json(CONFIGS / "tiny-llama")
    result = plan(PlanRequest(architecture=arch, gpu=resolve_gpu("L4"), model="/models/tiny"))
    assert (result.layout, result.max_model_len, result.dtype) == ("TP1", 2048, "bfloat16")
    assert result.kv_cache_bytes_per_token == 2 * 22 * 4 * 64 * 2
    assert flag_value(result.vllm_args, "--dtype") == "bfloat16"
    with pytest.raises(PlanError):
        plan(PlanRequest(architecture=arch, gpu=resolve_gpu("L4"), model="/models/tiny", max_model_len=4096))


# --- precision ----------------------------------------------------------------------------------------------


def test_fp8_kv_cache_halves_the_bytes_per_token_and_is_passed_to_vllm() -> None:
    result = plan(request("llm-jp-4-8b", "H100-80GB", kv_cache_dtype="fp8"))
    assert result.kv_cache_bytes_per_token == 65536
    assert flag_value(result.vllm_args, "--kv-cache-dtype") == "fp8"


def test_fp8_weights_roughly_halve_the_weight_memory() -> None:
    bf16 = plan(request("llm-jp-4-32b-a3b", "H100-80GB"))
    fp8 = plan(request("llm-jp-4-32b-a3b", "H100-80GB", quantization="fp8"))
    assert 0.5 < fp8.weights_gib / bf16.weights_gib < 0.55  # embeddings stay in bf16
    assert flag_value(fp8.vllm_args, "--quantization") == "fp8"


# --- vLLM arguments -----------------------------------------------------------------------------------------


def test_remote_code_is_off_unless_asked_and_needs_a_pinned_revision() -> None:
    assert "--trust-remote-code" not in plan(request("qwen3-8b", "H100")).vllm_args
    # A model that cannot load without its own code says what to set, and is never opted in for you.
    with pytest.raises(PlanError, match="ships its own tokenizer code") as needed:
        plan(request("llm-jp-4-8b-thinking", "H100"))
    assert (needed.value.field, needed.value.conflicts) == ("trust_remote_code", ("revision",))
    with pytest.raises(PlanError, match="revision") as caught:
        plan(request("llm-jp-4-8b-thinking", "H100", trust_remote_code=True))
    assert caught.value.field == "revision"
    commit = "0123456789abcdef0123456789abcdef01234567"
    result = plan(request("llm-jp-4-8b-thinking", "H100", trust_remote_code=True, revision=commit))
    assert "--trust-remote-code" in result.vllm_args
    assert flag_value(result.vllm_args, "--revision") == commit
    assert not result.warnings
    branch = plan(request("llm-jp-4-8b-thinking", "H100", trust_remote_code=True, revision="main"))
    assert any("not a commit hash" in warning for warning in branch.warnings)


def test_parsers_are_passed_only_when_set() -> None:
    plain = plan(request("qwen3-8b", "H100"))
    parser_flags = {"--reasoning-parser", "--tool-call-parser", "--enable-auto-tool-choice"}
    assert not parser_flags & set(plain.vllm_args)
    parsed = plan(request("qwen3-8b", "H100", reasoning_parser="qwen3", tool_call_parser="hermes"))
    assert flag_value(parsed.vllm_args, "--reasoning-parser") == "qwen3"
    assert flag_value(parsed.vllm_args, "--tool-call-parser") == "hermes"
    assert "--enable-auto-tool-choice" in parsed.vllm_args


def test_model_served_name_and_memory_share_are_passed() -> None:
    result = plan(request("qwen3-8b", "H100", gpu_memory_utilization=0.85, served_name="qwen"))
    args = result.vllm_args
    assert (served_model(args), flag_value(args, "--served-model-name")) == ("Qwen/Qwen3-8B", "qwen")
    assert flag_value(args, "--gpu-memory-utilization") == "0.85"


def test_every_flag_a_plan_emits_is_owned() -> None:
    plans = [
        plan(request("qwen3-8b", "H100", max_model_len=131072, rope_scaling=RopeScaling(factor=4))),
        plan(
            request(
                "llm-jp-4-32b-a3b-thinking",
                "L4",
                gpus_per_node=2,
                backend="leaderworkerset",
                trust_remote_code=True,
                revision="0" * 40,
                reasoning_parser="openai_gptoss",
                tool_call_parser="openai",
                kv_cache_dtype="fp8",
                quantization="fp8",
            )
        ),
    ]
    for result in plans:
        for args in (result.vllm_args, result.leader_args, result.worker_args):
            flags = {arg for arg in args if arg.startswith("-")}
            assert flags <= OWNED_VLLM_FLAGS, flags - OWNED_VLLM_FLAGS


def test_owned_flags_are_found_in_any_spelling() -> None:
    extra = ["--max_model_len=4096", "-tp", "2", "--enable-prefix-caching", "--no-enable-expert-parallel"]
    assert owned_flags_in(extra) == ["--max_model_len=4096", "-tp", "--no-enable-expert-parallel"]


def test_shell_command_quotes_json_but_leaves_expansions_to_the_shell() -> None:
    args = ["--hf-overrides", '{"a":1}', "--data-parallel-address", "$(LWS_LEADER_ADDRESS)"]
    command = shell_command([*args, "--data-parallel-start-rank", "$((LWS_WORKER_INDEX*2))"])
    assert command.startswith("exec vllm serve ")
    assert "'{\"a\":1}'" in command
    assert " $(LWS_LEADER_ADDRESS) " in command
    assert command.endswith(" $((LWS_WORKER_INDEX*2))")
    assert shlex.split(command)[3:7] == args


# --- the Plan document --------------------------------------------------------------------------------------


def test_plan_serialises_in_camel_case() -> None:
    result = plan(request("llm-jp-4-32b-a3b", "H100-80GB", target_concurrency=4))
    document = json.loads(result.model_dump_json(by_alias=True))
    for key in (
        "gpusPerReplica",
        "nodesPerReplica",
        "gpusPerNode",
        "tensorParallel",
        "dataParallel",
        "expertParallel",
        "totalParams",
        "activeParams",
        "weightsGiB",
        "kvCacheBytesPerToken",
        "maxConcurrentSequences",
        "maxModelLen",
        "layout",
        "vllmArgs",
        "leaderArgs",
        "workerArgs",
        "shmSizeGiB",
        "startupProbeSeconds",
        "reasons",
    ):
        assert key in document, key
    assert Plan.model_validate(document) == result


def test_startup_probe_grows_with_the_weights() -> None:
    small = plan(request("llm-jp-4-8b", "H200"))
    large = plan(request("llm-jp-4-32b-a3b", "H200"))
    assert small.startup_probe_seconds < large.startup_probe_seconds
    assert small.startup_probe_seconds % 30 == 0


def test_the_startup_budget_is_stated_per_weight_source_and_can_be_overridden() -> None:
    # LLM-jp-4 32B-A3B, ~60 GiB of bf16 weights: from the Hub at the stated ~50 MiB/s that alone is
    # about 20 minutes, which the old flat 4 s/GiB (~250 MiB/s) budget would have cut short.
    seconds = {
        source: plan(request("llm-jp-4-32b-a3b", "H100", weights_source=source)).startup_probe_seconds
        for source in ("hub", "bucket", "volume")
    }
    assert seconds["hub"] > seconds["bucket"] > seconds["volume"]
    assert seconds["hub"] >= 300 + 60 * 1024 / 50
    override = plan(request("llm-jp-4-32b-a3b", "H100", weights_source="hub", startup_timeout_seconds=7200))
    assert override.startup_probe_seconds == 7200


def test_plan_is_a_pure_function_of_its_request() -> None:
    asked = request("llm-jp-4-32b-a3b", "H100-80GB", target_concurrency=4)
    assert plan(asked) == plan(asked)
