"""Built-in model presets, so `shinsa plan llm-jp-4-8b` works without downloading a `config.json`."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict

from shinsa.planner.architecture import Architecture
from shinsa.planner.errors import UnknownModelError


class ModelPreset(BaseModel):
    """A named model: its Hugging Face repository, its shape, and what serving it needs to know."""

    model_config = ConfigDict(frozen=True)

    name: str
    hf_repo_id: str
    aliases: tuple[str, ...] = ()
    architecture: Architecture
    # Thinking variants ship a custom tokenizer module; vLLM loads it only with --trust-remote-code,
    # which Shinsa never turns on by itself.
    needs_trust_remote_code: bool = False
    description: str = ""


_LLM_JP_4_8B = Architecture(
    architecture="LlamaForCausalLM",
    family="llama",
    num_hidden_layers=32,
    hidden_size=4096,
    # Not stated in the report: derived so that the count matches the published ~8.6B parameters
    # (32 layers x (41.9M attention + 176.2M MLP) + 2 x 805.3M untied embeddings = 8.59B) and the
    # 17.2 GB of bf16 weight files.
    intermediate_size=14336,
    num_attention_heads=32,
    num_key_value_heads=8,
    head_dim=128,
    vocab_size=196608,
    tie_word_embeddings=False,
    max_position_embeddings=65536,
    rope_theta=500000.0,
    torch_dtype="bfloat16",
)

_LLM_JP_4_32B_A3B = Architecture(
    architecture="Qwen3MoeForCausalLM",
    family="qwen3_moe",
    num_hidden_layers=32,
    hidden_size=2560,
    # Every layer is a MoE layer (no mlp_only_layers), so the dense width is unused and not published.
    intermediate_size=0,
    # Not stated in the report: derived so that the counts match the published 32.14B total and
    # 3.83B active parameters (128 experts x 3 x 2560 x 960 per layer; with untied embeddings the
    # totals come to 32.139B / 3.827B), consistent with the 64.3 GB of bf16 weight files.
    moe_intermediate_size=960,
    num_attention_heads=40,
    num_key_value_heads=4,
    head_dim=128,
    vocab_size=196608,
    tie_word_embeddings=False,
    num_experts=128,
    num_experts_per_tok=8,
    max_position_embeddings=65536,
    rope_theta=500000.0,
    torch_dtype="bfloat16",
)

_QWEN3_8B = Architecture(
    architecture="Qwen3ForCausalLM",
    family="qwen3",
    num_hidden_layers=36,
    hidden_size=4096,
    intermediate_size=12288,
    num_attention_heads=32,
    num_key_value_heads=8,
    head_dim=128,
    vocab_size=151936,
    tie_word_embeddings=False,
    max_position_embeddings=40960,
    native_context_length=32768,
    rope_theta=1000000.0,
    torch_dtype="bfloat16",
)

_QWEN3_30B_A3B = Architecture(
    architecture="Qwen3MoeForCausalLM",
    family="qwen3_moe",
    num_hidden_layers=48,
    hidden_size=2048,
    intermediate_size=6144,
    moe_intermediate_size=768,
    num_attention_heads=32,
    num_key_value_heads=4,
    head_dim=128,
    vocab_size=151936,
    tie_word_embeddings=False,
    num_experts=128,
    num_experts_per_tok=8,
    max_position_embeddings=40960,
    native_context_length=32768,
    rope_theta=1000000.0,
    torch_dtype="bfloat16",
)

_QWEN3_32B = Architecture(
    architecture="Qwen3ForCausalLM",
    family="qwen3",
    num_hidden_layers=64,
    hidden_size=5120,
    intermediate_size=25600,
    num_attention_heads=64,
    num_key_value_heads=8,
    head_dim=128,
    vocab_size=151936,
    tie_word_embeddings=False,
    max_position_embeddings=40960,
    native_context_length=32768,
    rope_theta=1000000.0,
    torch_dtype="bfloat16",
)

MODEL_PRESETS: tuple[ModelPreset, ...] = (
    ModelPreset(
        name="llm-jp-4-8b",
        hf_repo_id="llm-jp/llm-jp-4-8b-base",
        aliases=("llm-jp-4-8b-base",),
        architecture=_LLM_JP_4_8B,
        description="LLM-jp-4 8B base (dense)",
    ),
    ModelPreset(
        name="llm-jp-4-8b-thinking",
        hf_repo_id="llm-jp/llm-jp-4-8b-thinking",
        architecture=_LLM_JP_4_8B,
        needs_trust_remote_code=True,
        description="LLM-jp-4 8B thinking (dense, Harmony format)",
    ),
    ModelPreset(
        name="llm-jp-4-32b-a3b",
        hf_repo_id="llm-jp/llm-jp-4-32b-a3b-base",
        aliases=("llm-jp-4-32b-a3b-base",),
        architecture=_LLM_JP_4_32B_A3B,
        description="LLM-jp-4 32B-A3B base (MoE, 128 experts top-8)",
    ),
    ModelPreset(
        name="llm-jp-4-32b-a3b-thinking",
        hf_repo_id="llm-jp/llm-jp-4-32b-a3b-thinking",
        architecture=_LLM_JP_4_32B_A3B,
        needs_trust_remote_code=True,
        description="LLM-jp-4 32B-A3B thinking (MoE, Harmony format)",
    ),
    ModelPreset(
        name="qwen3-8b",
        hf_repo_id="Qwen/Qwen3-8B",
        architecture=_QWEN3_8B,
        description="Qwen3 8B (dense, 32k native, 131k with YaRN factor 4)",
    ),
    ModelPreset(
        name="qwen3-30b-a3b",
        hf_repo_id="Qwen/Qwen3-30B-A3B",
        architecture=_QWEN3_30B_A3B,
        description="Qwen3 30B-A3B (MoE, 128 experts top-8)",
    ),
    ModelPreset(
        name="qwen3-32b",
        hf_repo_id="Qwen/Qwen3-32B",
        architecture=_QWEN3_32B,
        description="Qwen3 32B (dense)",
    ),
)


def _index(presets: tuple[ModelPreset, ...]) -> dict[str, ModelPreset]:
    index: dict[str, ModelPreset] = {}
    for preset in presets:
        for key in (preset.name, preset.hf_repo_id, *preset.aliases):
            index[key.casefold()] = preset
    return index


MODEL_CATALOG: Mapping[str, ModelPreset] = _index(MODEL_PRESETS)


def lookup_model(name: str) -> ModelPreset:
    """Find a preset by short name, alias or Hugging Face repository id (case-insensitive)."""
    preset = MODEL_CATALOG.get(name.strip().casefold())
    if preset is None:
        raise UnknownModelError(name, (p.name for p in MODEL_PRESETS))
    return preset
