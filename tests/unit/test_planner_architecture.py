"""The planner reads model shapes from config.json and the catalog, counts their parameters and KV cache,
and knows the GPUs it plans for."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shinsa.planner import (
    GIB,
    Architecture,
    ConfigError,
    RopeScaling,
    UnknownArchitectureError,
    UnknownGpuError,
    UnknownModelError,
    count_parameters,
    gpu_by_product,
    kv_cache_bytes_per_token,
    load_config_json,
    lookup_model,
    resolve_gpu,
)

pytestmark = pytest.mark.unit

CONFIGS = Path(__file__).parent / "fixtures" / "configs"


def within(actual: float, expected: float, tolerance: float = 0.02) -> bool:
    return abs(actual - expected) <= tolerance * expected


@pytest.mark.parametrize(
    ("model", "total", "active"),
    [
        ("llm-jp-4-8b", 8.6e9, 8.6e9),
        ("llm-jp-4-32b-a3b", 32.14e9, 3.83e9),
        ("qwen3-8b", 8.2e9, 8.2e9),
        ("qwen3-30b-a3b", 30.5e9, 3.3e9),
        ("qwen3-32b", 32.8e9, 32.8e9),
    ],
)
def test_catalog_parameter_counts_match_the_published_totals(model: str, total: float, active: float) -> None:
    counts = count_parameters(lookup_model(model).architecture)
    assert within(counts.total, total), counts.total
    assert within(counts.active, active), counts.active


@pytest.mark.parametrize(
    ("model", "bytes_per_token"),
    [
        ("llm-jp-4-8b", 128 * 1024),
        ("llm-jp-4-32b-a3b", 64 * 1024),
        ("qwen3-8b", 144 * 1024),
        ("qwen3-32b", 256 * 1024),
    ],
)
def test_kv_cache_bytes_per_token_at_bf16(model: str, bytes_per_token: int) -> None:
    assert kv_cache_bytes_per_token(lookup_model(model).architecture, 2) == bytes_per_token


def test_a_65536_token_sequence_takes_8_gib_on_the_8b_and_4_gib_on_the_32b_a3b() -> None:
    dense = lookup_model("llm-jp-4-8b").architecture
    moe = lookup_model("llm-jp-4-32b-a3b").architecture
    assert kv_cache_bytes_per_token(dense, 2) * 65536 == 8 * GIB
    assert kv_cache_bytes_per_token(moe, 2) * 65536 == 4 * GIB


def test_kv_heads_are_replicated_not_split_past_one_per_gpu() -> None:
    moe = lookup_model("llm-jp-4-32b-a3b").architecture  # 4 KV heads
    assert kv_cache_bytes_per_token(moe, 2, tensor=2) == 32 * 1024
    assert kv_cache_bytes_per_token(moe, 2, tensor=8) == kv_cache_bytes_per_token(moe, 2, tensor=4)


def test_catalog_finds_models_by_short_name_repo_id_and_thinking_variant() -> None:
    assert lookup_model("llm-jp-4-8b").architecture.architecture == "LlamaForCausalLM"
    assert lookup_model("llm-jp/llm-jp-4-8b-thinking").name == "llm-jp-4-8b-thinking"
    assert lookup_model("LLM-JP-4-32B-A3B-Thinking").architecture.is_moe
    assert lookup_model("Qwen/Qwen3-30B-A3B").name == "qwen3-30b-a3b"
    assert lookup_model("llm-jp-4-8b-thinking").needs_trust_remote_code
    assert not lookup_model("qwen3-8b").needs_trust_remote_code


def test_unknown_model_names_the_known_ones() -> None:
    with pytest.raises(UnknownModelError, match="llm-jp-4-8b") as caught:
        lookup_model("gpt-5")
    assert caught.value.name == "gpt-5"


def test_catalog_context_lengths() -> None:
    assert lookup_model("llm-jp-4-8b").architecture.context_limit() == 65536
    qwen = lookup_model("qwen3-8b").architecture
    assert qwen.max_position_embeddings == 40960
    assert qwen.context_limit() == 32768
    assert qwen.context_limit(RopeScaling(factor=4)) == 131072


# The shape of Qwen/Qwen3-8B's config.json as published: 40,960 positions, no rope_scaling.
QWEN3_8B_CONFIG = json.loads((CONFIGS / "qwen3-8b" / "config.json").read_text())


def test_a_qwen3_config_json_reads_as_the_catalog_entry_with_32768_native_tokens() -> None:
    arch = Architecture.from_config(QWEN3_8B_CONFIG)
    assert arch == lookup_model("qwen3-8b").architecture
    assert (arch.context_length, arch.context_limit()) == (32768, 32768)
    assert arch.context_limit(RopeScaling(factor=4)) == 131072


def test_a_qwen3_moe_config_with_40960_positions_is_also_32768_native() -> None:
    config = QWEN3_8B_CONFIG | {
        "architectures": ["Qwen3MoeForCausalLM"],
        "num_experts": 128,
        "num_experts_per_tok": 8,
        "moe_intermediate_size": 768,
    }
    assert Architecture.from_config(config).context_length == 32768


@pytest.mark.parametrize(
    "change",
    [
        {"max_position_embeddings": 262144},  # Qwen3-2507: native as stated
        {"rope_scaling": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}},
        {"architectures": ["LlamaForCausalLM"]},
    ],
)
def test_only_the_padded_qwen3_context_is_corrected(change: dict[str, object]) -> None:
    arch = Architecture.from_config(QWEN3_8B_CONFIG | change)
    assert arch.native_context_length is None
    assert arch.context_length == arch.max_position_embeddings


def test_mistral_config_json_reads_as_a_7b_dense_model() -> None:
    arch = load_config_json(CONFIGS / "mistral-7b" / "config.json")
    assert arch.family == "mistral"
    assert arch.head_dim == 128  # not in the file: hidden / heads
    assert not arch.is_moe
    assert within(count_parameters(arch).total, 7.25e9)
    assert kv_cache_bytes_per_token(arch, 2) == 128 * 1024


def test_a_model_directory_is_read_through_its_config_json() -> None:
    directory = CONFIGS / "tiny-llama"
    assert load_config_json(directory) == load_config_json(directory / "config.json")


def test_small_llama_config_json() -> None:
    arch = load_config_json(CONFIGS / "tiny-llama")
    assert (arch.num_hidden_layers, arch.num_key_value_heads, arch.head_dim) == (22, 4, 64)
    assert arch.torch_dtype == "float32"
    assert within(count_parameters(arch).total, 1.1e9)


def test_qwen3_moe_counts_dense_and_sparse_layers_separately() -> None:
    # decoder_sparse_step 2: layers 1 and 3 carry 16 experts (top-2), layers 0 and 2 a dense MLP.
    arch = load_config_json(CONFIGS / "qwen3-moe-tiny")
    assert (arch.moe_layer_count, arch.dense_layer_count) == (2, 2)
    assert arch.torch_dtype == "bfloat16"  # read from the newer `dtype` key
    hidden, vocab = 512, 1000
    attention = 2 * hidden * 512 + 2 * hidden * 128
    norms = 2 * hidden + 2 * 64  # input/post-attention norms, q/k norms
    dense_mlp = 3 * hidden * 1024
    expert = 3 * hidden * 128
    router = hidden * 16
    counts = count_parameters(arch)
    shared = vocab * hidden + 4 * (attention + norms) + hidden + 2 * dense_mlp + 2 * router
    assert counts.total == shared + 2 * 16 * expert
    assert counts.active == shared + 2 * 2 * expert


def test_unknown_architecture_is_named(tmp_path: Path) -> None:
    config = json.loads((CONFIGS / "tiny-llama" / "config.json").read_text())
    config["architectures"] = ["Gemma3ForCausalLM"]
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(UnknownArchitectureError, match="Gemma3ForCausalLM") as caught:
        load_config_json(tmp_path)
    assert caught.value.architecture == "Gemma3ForCausalLM"
    assert "LlamaForCausalLM" in str(caught.value)


def test_config_missing_a_field_says_which() -> None:
    with pytest.raises(ConfigError, match="num_hidden_layers"):
        Architecture.from_config({"architectures": ["LlamaForCausalLM"], "hidden_size": 8})


def test_config_without_architectures_or_json_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="architectures"):
        Architecture.from_config({"hidden_size": 8})
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_config_json(tmp_path)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config_json(tmp_path / "missing.json")


def test_transformers_v5_rope_parameters_are_read() -> None:
    config = json.loads((CONFIGS / "mistral-7b" / "config.json").read_text())
    del config["rope_theta"]
    config["rope_parameters"] = {
        "rope_theta": 1e6,
        "rope_type": "yarn",
        "factor": 4.0,
        "original_max_position_embeddings": 32768,
    }
    arch = Architecture.from_config(config)
    assert arch.rope_theta == 1e6
    assert arch.context_limit() == 131072


@pytest.mark.parametrize(
    ("spec", "name"),
    [
        ("H100-80GB", "H100-80GB"),
        ("h100", "H100-80GB"),
        ("NVIDIA-H100-80GB-HBM3", "H100-80GB"),
        ("H200-141GB", "H200-141GB"),
        ("NVIDIA-H200", "H200-141GB"),
        ("NVIDIA-A100-SXM4-80GB", "A100-80GB"),
        ("A100-40GB", "A100-40GB"),
        ("L40S", "L40S"),
        ("L4", "L4"),
        ("A10G", "A10G"),
    ],
)
def test_gpus_resolve_from_short_names_and_node_labels(spec: str, name: str) -> None:
    assert resolve_gpu(spec).name == name


def test_any_gpu_can_be_given_by_memory() -> None:
    gpu = resolve_gpu("48GiB")
    assert (gpu.memory_gib, gpu.product) == (48.0, None)
    assert resolve_gpu("memoryGiB=24").memory_gib == 24.0


def test_node_label_lookup_and_unknown_gpus() -> None:
    assert gpu_by_product("NVIDIA-L40S") == resolve_gpu("L40S")
    assert gpu_by_product("NVIDIA-B200") is None
    with pytest.raises(UnknownGpuError, match="H100-80GB"):
        resolve_gpu("B200")
    with pytest.raises(UnknownGpuError):
        resolve_gpu("80")  # a bare number is ambiguous
