"""A model's shape, as read from a Hugging Face `config.json`: everything the memory plan depends on."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError, model_validator

from shinsa.planner.errors import ConfigError, UnknownArchitectureError

Family = Literal["llama", "mistral", "qwen3", "qwen3_moe"]

# The architectures whose parameter layout `parameters.py` counts exactly. Others may well be served by
# vLLM, but a plan for them would be a guess, so they are refused by name rather than approximated.
SUPPORTED_ARCHITECTURES: Mapping[str, Family] = {
    "LlamaForCausalLM": "llama",
    "MistralForCausalLM": "mistral",
    "Qwen3ForCausalLM": "qwen3",
    "Qwen3MoeForCausalLM": "qwen3_moe",
}

# Families whose attention normalises q and k per head (an RMSNorm of head_dim weights each).
_QK_NORM_FAMILIES: frozenset[Family] = frozenset({"qwen3", "qwen3_moe"})

# Qwen3's config.json says max_position_embeddings 40960, but Qwen documents a native context of 32,768
# (131,072 with YaRN factor 4): the 40,960 budgets 32,768 tokens of context plus 8,192 of output. Taking
# 40,960 as native would let YaRN scale from the wrong base and serve 8k past what the model was trained on.
_QWEN3_FAMILIES: frozenset[Family] = frozenset({"qwen3", "qwen3_moe"})
_QWEN3_PADDED_POSITIONS = 40960
_QWEN3_NATIVE_CONTEXT = 32768


class RopeScaling(BaseModel):
    """Rope scaling asked for at serving time (passed as vLLM `--hf-overrides`): YaRN for Qwen3 past 32k."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rope_type: Literal["yarn"] = "yarn"
    factor: float = Field(gt=1.0)
    original_max_position_embeddings: int | None = Field(default=None, gt=0)


def _published_native_context(
    family: Family, max_position_embeddings: object, rope_scaling: object
) -> int | None:
    """The native context a config's model card states when max_position_embeddings says otherwise.

    Only the padded Qwen3 value is corrected: later Qwen3 releases (the 2507 models, 262,144 positions) and
    configs that already carry rope_scaling state their context as it is.
    """
    padded = max_position_embeddings == _QWEN3_PADDED_POSITIONS
    return _QWEN3_NATIVE_CONTEXT if family in _QWEN3_FAMILIES and rope_scaling is None and padded else None


class Architecture(BaseModel):
    """The fields of a decoder-only transformer's config that decide its weights and KV cache."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    architecture: str
    family: Family
    num_hidden_layers: int = Field(gt=0)
    hidden_size: int = Field(gt=0)
    # Width of the dense MLP. For a MoE model it only matters for layers listed in `mlp_only_layers`.
    intermediate_size: int = Field(ge=0)
    moe_intermediate_size: int | None = Field(default=None, gt=0)
    num_attention_heads: int = Field(gt=0)
    num_key_value_heads: int = Field(gt=0)
    head_dim: int = Field(gt=0)
    vocab_size: int = Field(gt=0)
    tie_word_embeddings: bool = False
    num_experts: int = Field(default=0, ge=0)
    num_experts_per_tok: int = Field(default=0, ge=0)
    max_position_embeddings: int = Field(gt=0)
    # Some configs advertise a longer max_position_embeddings than the model was trained to use
    # (Qwen3: 40960 = 32768 of context + room for a long answer). A catalog entry states the real one;
    # `from_config` fills it in for the Qwen3 configs it knows to be padded.
    native_context_length: int | None = Field(default=None, gt=0)
    rope_theta: float = 10000.0
    rope_scaling: dict[str, JsonValue] | None = None
    torch_dtype: str = "bfloat16"
    decoder_sparse_step: int = Field(default=1, gt=0)
    mlp_only_layers: tuple[int, ...] = ()
    attention_bias: bool = False
    mlp_bias: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> Architecture:
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError(
                f"num_attention_heads ({self.num_attention_heads}) is not a multiple of "
                f"num_key_value_heads ({self.num_key_value_heads})"
            )
        if self.family == "qwen3_moe":
            if self.num_experts <= 0 or self.moe_intermediate_size is None:
                raise ValueError("a Qwen3-MoE config needs num_experts and moe_intermediate_size")
            if not 0 < self.num_experts_per_tok <= self.num_experts:
                raise ValueError("num_experts_per_tok must be between 1 and num_experts")
            if self.dense_layer_count and self.intermediate_size == 0:
                raise ValueError("mlp_only_layers are dense MLPs and need intermediate_size")
        elif self.intermediate_size == 0:
            raise ValueError("a dense model needs intermediate_size")
        return self

    @property
    def is_moe(self) -> bool:
        return self.family == "qwen3_moe"

    @property
    def has_qk_norm(self) -> bool:
        return self.family in _QK_NORM_FAMILIES

    def is_moe_layer(self, index: int) -> bool:
        # The rule Qwen3-MoE's modelling code uses to decide which decoder layers carry experts.
        return (
            self.is_moe and index not in self.mlp_only_layers and (index + 1) % self.decoder_sparse_step == 0
        )

    @property
    def moe_layer_count(self) -> int:
        return sum(1 for i in range(self.num_hidden_layers) if self.is_moe_layer(i))

    @property
    def dense_layer_count(self) -> int:
        return self.num_hidden_layers - self.moe_layer_count

    @property
    def context_length(self) -> int:
        """The longest context the model supports as published, before any serving-time scaling."""
        return self.native_context_length or self.max_position_embeddings

    def context_limit(self, scaling: RopeScaling | None = None) -> int:
        """The longest `--max-model-len` vLLM accepts for this model with `scaling` (or the config's own)."""
        if scaling is not None:
            original = scaling.original_max_position_embeddings or self.context_length
            return int(original * scaling.factor)
        own = self.rope_scaling or {}
        rope_type = own.get("rope_type", own.get("type"))
        factor = own.get("factor")
        if rope_type == "yarn" and isinstance(factor, int | float):
            trained = own.get("original_max_position_embeddings")
            base = trained if isinstance(trained, int) else self.max_position_embeddings
            return int(base * factor)
        if rope_type in ("linear", "dynamic") and isinstance(factor, int | float):
            return int(self.context_length * factor)
        # llama3 / longrope scaling is already reflected in max_position_embeddings.
        return self.context_length

    @classmethod
    def from_config(
        cls, config: Mapping[str, Any], *, native_context_length: int | None = None
    ) -> Architecture:
        """Read a parsed Hugging Face `config.json`; raises `UnknownArchitectureError` or `ConfigError`."""
        architectures = config.get("architectures")
        if not isinstance(architectures, list) or not architectures or not isinstance(architectures[0], str):
            raise ConfigError("config.json has no 'architectures' list naming the model class")
        name = architectures[0]
        family = SUPPORTED_ARCHITECTURES.get(name)
        if family is None:
            raise UnknownArchitectureError(name, SUPPORTED_ARCHITECTURES)

        # transformers >= 4.56 writes `dtype`, and v5 moves rope settings into `rope_parameters`.
        rope_parameters = config.get("rope_parameters")
        rope_parameters = rope_parameters if isinstance(rope_parameters, dict) else {}
        rope_scaling = config.get("rope_scaling")
        if rope_scaling is None and rope_parameters.get("rope_type", "default") != "default":
            rope_scaling = rope_parameters
        heads = config.get("num_attention_heads")
        hidden = config.get("hidden_size")
        head_dim = config.get("head_dim")
        if head_dim is None and isinstance(heads, int) and isinstance(hidden, int) and heads > 0:
            head_dim = hidden // heads
        fields: dict[str, Any] = {
            "architecture": name,
            "family": family,
            "num_hidden_layers": config.get("num_hidden_layers"),
            "hidden_size": hidden,
            "intermediate_size": config.get("intermediate_size", 0),
            "moe_intermediate_size": config.get("moe_intermediate_size"),
            "num_attention_heads": heads,
            "num_key_value_heads": config.get("num_key_value_heads") or heads,
            "head_dim": head_dim,
            "vocab_size": config.get("vocab_size"),
            "tie_word_embeddings": config.get("tie_word_embeddings", False),
            "max_position_embeddings": config.get("max_position_embeddings"),
            "native_context_length": (
                native_context_length
                if native_context_length is not None
                else _published_native_context(family, config.get("max_position_embeddings"), rope_scaling)
            ),
            "rope_theta": config.get("rope_theta", rope_parameters.get("rope_theta", 10000.0)),
            "rope_scaling": rope_scaling,
            "torch_dtype": config.get("torch_dtype") or config.get("dtype") or "bfloat16",
            "attention_bias": config.get("attention_bias", False),
            "mlp_bias": config.get("mlp_bias", False),
        }
        if family == "qwen3_moe":
            fields |= {
                "num_experts": config.get("num_experts"),
                "num_experts_per_tok": config.get("num_experts_per_tok"),
                "decoder_sparse_step": config.get("decoder_sparse_step", 1),
                "mlp_only_layers": tuple(config.get("mlp_only_layers") or ()),
            }
        try:
            return cls.model_validate(fields)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'config'}: {err['msg']}" for err in exc.errors()
            )
            raise ConfigError(f"{name} config.json is not usable: {problems}") from None


def load_config_json(path: str | Path) -> Architecture:
    """Read a `config.json` file (or a model directory holding one) into an `Architecture`."""
    file = Path(path)
    if file.is_dir():
        file = file / "config.json"
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {file}: {exc.strerror or exc}") from None
    try:
        config = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{file} is not valid JSON: {exc.msg} (line {exc.lineno})") from None
    if not isinstance(config, dict):
        raise ConfigError(f"{file} does not hold a JSON object")
    return Architecture.from_config(config)
