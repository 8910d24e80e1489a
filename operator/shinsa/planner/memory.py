"""GPU memory arithmetic: weight bytes, KV-cache bytes and the margin vLLM needs besides both."""

from __future__ import annotations

import math
from dataclasses import dataclass

from shinsa.planner.architecture import Architecture
from shinsa.planner.layout import Layout
from shinsa.planner.parameters import ParameterCounts

GIB = 1024**3

DTYPE_BYTES: dict[str, int] = {
    "float32": 4,
    "float": 4,
    "fp32": 4,
    "bfloat16": 2,
    "bf16": 2,
    "float16": 2,
    "half": 2,
    "fp16": 2,
    "fp8": 1,
    "fp8_e4m3": 1,
    "fp8_e5m2": 1,
    "float8_e4m3fn": 1,
}

# --- The margin besides weights and KV cache --------------------------------------------------------------
# vLLM sizes its KV cache as gpu_memory_utilization x total memory minus what a profiling run used. That
# run's peak holds more than the weights; the constants below stand for it, per GPU.
#
# CUDA context, cuBLAS/cuDNN workspaces and allocator fragmentation: memory vLLM counts as "non-torch".
CUDA_RUNTIME_GIB = 1.0
# The decode CUDA graphs vLLM captures (one per batch size, up to 512) keep their own memory pool.
CUDA_GRAPHS_GIB = 1.0
# NCCL communicators plus vLLM's custom all-reduce / all-to-all buffers: only when GPUs talk to each other.
COMMUNICATION_BUFFERS_GIB = 0.5
# The profiling run pushes one full scheduler step of prompt tokens (vLLM's default max_num_batched_tokens
# for an API server with chunked prefill) through the model; activations scale with it.
PREFILL_TOKENS_PER_STEP = 8192
# The sampler holds fp32 logits over the whole vocabulary for every running sequence (default max_num_seqs).
SAMPLER_SEQUENCES = 256
# KV cache is allocated in blocks of this many tokens, so a sequence's share rounds up to a whole block.
KV_BLOCK_TOKENS = 16


def dtype_bytes(dtype: str) -> int:
    try:
        return DTYPE_BYTES[dtype.casefold()]
    except KeyError:
        raise ValueError(f"unknown dtype {dtype!r}; known: {', '.join(DTYPE_BYTES)}") from None


def kv_heads_per_gpu(arch: Architecture, tensor: int) -> int:
    # Past one KV head per GPU, vLLM replicates heads rather than splitting them.
    return max(1, arch.num_key_value_heads // tensor)


def kv_cache_bytes_per_token(arch: Architecture, kv_dtype_bytes: int, tensor: int = 1) -> int:
    """Bytes of K and V one token occupies in every layer, on one GPU of a TP group (tensor=1: the model)."""
    return 2 * arch.num_hidden_layers * kv_heads_per_gpu(arch, tensor) * arch.head_dim * kv_dtype_bytes


@dataclass(frozen=True)
class WeightPrecision:
    """Bytes per parameter: `linear` for the projection matrices a quantization method converts, `other`
    for embeddings, LM head, norms and routers, which vLLM keeps in the serving dtype."""

    linear: int
    other: int


def weight_bytes(counts: ParameterCounts, precision: WeightPrecision) -> int:
    linear = counts.attention_qo + counts.attention_kv + counts.dense_mlp + counts.experts
    return linear * precision.linear + (counts.embeddings + counts.replicated) * precision.other


def weight_bytes_per_gpu(
    arch: Architecture, counts: ParameterCounts, layout: Layout, precision: WeightPrecision
) -> float:
    tp = layout.tensor
    kv_share = kv_heads_per_gpu(arch, tp) / arch.num_key_value_heads
    # Expert parallelism hands each GPU whole experts; without it vLLM slices every expert over all the
    # tensor- and data-parallel ranks together. Either way each GPU holds 1/gpus of the expert weights.
    expert_share = 1 / layout.gpus
    linear = (
        (counts.attention_qo + counts.dense_mlp) / tp
        + counts.attention_kv * kv_share
        + counts.experts * expert_share
    )
    other = counts.embeddings / tp + counts.replicated
    return linear * precision.linear + other * precision.other


def overhead_bytes_per_gpu(arch: Architecture, layout: Layout, activation_bytes: int) -> float:
    widest_mlp = 0.0
    if arch.dense_layer_count:
        widest_mlp = 2 * arch.intermediate_size / layout.tensor  # gate and up outputs
    if arch.is_moe and arch.moe_intermediate_size:
        # Every token is copied to its top-k experts before the expert GEMMs.
        expert_split = 1 if layout.expert else layout.tensor
        widest_mlp = max(widest_mlp, arch.num_experts_per_tok * 2 * arch.moe_intermediate_size / expert_split)
    activations = PREFILL_TOKENS_PER_STEP * (4 * arch.hidden_size + widest_mlp) * activation_bytes
    sampler = SAMPLER_SEQUENCES * arch.vocab_size * 4
    fixed = CUDA_RUNTIME_GIB + CUDA_GRAPHS_GIB + (COMMUNICATION_BUFFERS_GIB if layout.gpus > 1 else 0.0)
    return fixed * GIB + activations + sampler


@dataclass(frozen=True)
class MemoryFit:
    """How one layout uses each GPU's memory, and how many max-length sequences its KV cache holds."""

    layout: Layout
    usable_gib: float
    weights_gib: float
    overhead_gib: float
    kv_bytes_per_token: int  # per GPU, after TP sharding
    sequence_gib: float  # KV of one max-length sequence, per GPU
    required_per_rank: int

    @property
    def kv_gib(self) -> float:
        """Memory per GPU left for the KV cache (negative when the weights alone do not fit)."""
        return self.usable_gib - self.weights_gib - self.overhead_gib

    @property
    def sequences_per_rank(self) -> int:
        return max(0, math.floor(self.kv_gib / self.sequence_gib)) if self.kv_gib > 0 else 0

    @property
    def max_concurrent_sequences(self) -> int:
        return self.sequences_per_rank * self.layout.data

    @property
    def fits(self) -> bool:
        return self.sequences_per_rank >= self.required_per_rank


def evaluate_layout(
    arch: Architecture,
    counts: ParameterCounts,
    layout: Layout,
    *,
    gpu_memory_gib: float,
    gpu_memory_utilization: float,
    precision: WeightPrecision,
    kv_dtype_bytes: int,
    max_model_len: int,
    target_concurrency: int,
) -> MemoryFit:
    per_token = kv_cache_bytes_per_token(arch, kv_dtype_bytes, layout.tensor)
    tokens = math.ceil(max_model_len / KV_BLOCK_TOKENS) * KV_BLOCK_TOKENS
    return MemoryFit(
        layout=layout,
        usable_gib=gpu_memory_gib * gpu_memory_utilization,
        weights_gib=weight_bytes_per_gpu(arch, counts, layout, precision) / GIB,
        overhead_gib=overhead_bytes_per_gpu(arch, layout, precision.other) / GIB,
        kv_bytes_per_token=per_token,
        sequence_gib=tokens * per_token / GIB,
        # Each DP rank has its own KV cache and gets its share of the traffic, but must hold at least one
        # full-length sequence, or a max-length request could never be scheduled on it.
        required_per_rank=max(1, math.ceil(target_concurrency / layout.data)),
    )


def longest_context_fitting(fit: MemoryFit) -> int:
    """The longest max_model_len (a multiple of 1024) whose KV for the required sequences fits `fit`."""
    if fit.kv_gib <= 0:
        return 0
    tokens = fit.kv_gib * GIB / (fit.required_per_rank * fit.kv_bytes_per_token)
    return int(tokens // 1024) * 1024
