"""`plan()`: the smallest layout whose GPUs hold the weights and the requested KV cache."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from shinsa.planner.architecture import Architecture
from shinsa.planner.catalog import MODEL_CATALOG
from shinsa.planner.errors import PlanError
from shinsa.planner.gpus import GPU_PROFILES
from shinsa.planner.layout import Layout, candidate_layouts, structural_problem
from shinsa.planner.memory import (
    GIB,
    MemoryFit,
    WeightPrecision,
    dtype_bytes,
    evaluate_layout,
    kv_cache_bytes_per_token,
    longest_context_fitting,
    weight_bytes,
)
from shinsa.planner.parameters import ParameterCounts, count_parameters
from shinsa.planner.pod_hints import shm_size_gib, startup_probe_seconds
from shinsa.planner.request import PlanRequest
from shinsa.planner.result import Plan
from shinsa.planner.vllm_args import build_vllm_args

_DTYPE_NAMES = {
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    "float16": "float16",
    "fp16": "float16",
    "half": "float16",
    "float32": "float32",
    "fp32": "float32",
    "float": "float32",
}
_COMMIT_HASH = re.compile(r"^[0-9a-f]{40}$")
_MULTI_NODE_BACKEND = "leaderworkerset"
_SUGGESTION_GPUS_PER_NODE = 8


@dataclass
class _Search:
    chosen: MemoryFit | None = None
    # Evaluated and too small, smallest first.
    tried: list[MemoryFit] = field(default_factory=list)
    # The first layout that fits but spans nodes while the backend cannot.
    needs_multi_node: MemoryFit | None = None
    # Layouts vLLM would refuse for this model, with the reason.
    refused: list[tuple[Layout, str]] = field(default_factory=list)


def serving_dtype(request: PlanRequest) -> str:
    """The dtype vLLM will run the model in: the request's, or for `auto` the checkpoint's (vLLM serves
    float32 checkpoints in bfloat16)."""
    if request.dtype != "auto":
        return request.dtype
    configured = request.architecture.torch_dtype.casefold()
    name = _DTYPE_NAMES.get(configured)
    if name is None:
        raise PlanError(
            f"the model's config declares dtype {request.architecture.torch_dtype!r}, which the planner "
            "cannot size; set dtype to bfloat16, float16 or float32",
            field="dtype",
        )
    return "bfloat16" if name == "float32" else name


def _precision(request: PlanRequest, dtype: str) -> tuple[WeightPrecision, int]:
    model_bytes = dtype_bytes(dtype)
    linear = 1 if request.quantization == "fp8" else model_bytes
    kv_bytes = 1 if request.kv_cache_dtype == "fp8" else model_bytes
    return WeightPrecision(linear=linear, other=model_bytes), kv_bytes


def _model_label(request: PlanRequest) -> str:
    return request.served_name or request.model


def _resolve_max_model_len(request: PlanRequest) -> int:
    arch = request.architecture
    limit = arch.context_limit(request.rope_scaling)
    length = request.max_model_len or limit
    if length <= limit:
        return length
    if request.rope_scaling is None:
        factor = 2 ** math.ceil(math.log2(length / arch.context_length))
        raise PlanError(
            f"max_model_len {length:,} is longer than the {limit:,}-token context of "
            f"{_model_label(request)}; a longer context needs rope scaling, e.g. YaRN factor {factor} "
            f"(up to {arch.context_length * factor:,} tokens)",
            field="max_model_len",
        )
    raise PlanError(
        f"max_model_len {length:,} is longer than the {limit:,} tokens YaRN factor "
        f"{request.rope_scaling.factor:g} gives {_model_label(request)}",
        field="max_model_len",
    )


def _check_remote_code(request: PlanRequest) -> None:
    preset = MODEL_CATALOG.get(request.model.casefold())
    if preset is not None and preset.needs_trust_remote_code and not request.trust_remote_code:
        # vLLM would crash-loop loading the tokenizer; turning the option on for the user would run
        # third-party code nobody opted into. Say what to set instead.
        raise PlanError(
            f"{preset.hf_repo_id} ships its own tokenizer code, which vLLM loads only with "
            "trust_remote_code: review the repository's code at a commit, then set trust_remote_code "
            "with revision pinned to that 40-character commit",
            field="trust_remote_code",
            conflicts=("revision",),
        )
    if request.trust_remote_code and not request.revision:
        raise PlanError(
            "trust_remote_code runs Python code from the model repository; it needs a pinned revision "
            "(a commit hash) so the code cannot change under a running deployment",
            field="revision",
        )


def _check_gpu_count(request: PlanRequest) -> None:
    """A GPU count the pinned sizes cannot make up is a contradiction in the request: no layout search can
    settle which of the two the user meant."""
    count = request.gpu_count
    if count is None:
        return
    tensor, data, expert = request.tensor_parallel, request.data_parallel, request.expert_parallel
    if tensor is not None and data is not None and tensor * data != count:
        raise PlanError(
            f"{count} GPU(s) per replica, but the pinned tensor {tensor} x data {data} is {tensor * data}",
            field="gpu_count",
            conflicts=("tensor_parallel", "data_parallel"),
        )
    for name, label, size in (
        ("tensor_parallel", "tensor", tensor),
        ("data_parallel", "data", data),
        ("nodes", "nodes", request.nodes),
    ):
        if size is not None and count % size:
            raise PlanError(
                f"{count} GPU(s) per replica is not a multiple of the pinned {label} {size}",
                field="gpu_count",
                conflicts=(name,),
            )
    # vLLM's expert-parallel group is the whole replica, so an expert size other than 1 is the GPU count.
    if expert is not None and expert > 1 and expert != count:
        raise PlanError(
            f"{count} GPU(s) per replica, but the pinned expert {expert} must span all of them",
            field="gpu_count",
            conflicts=("expert_parallel",),
        )


def _search(request: PlanRequest, counts: ParameterCounts, dtype: str, max_model_len: int) -> _Search:
    arch = request.architecture
    precision, kv_bytes = _precision(request, dtype)
    search = _Search()
    layouts = candidate_layouts(
        arch,
        request.gpus_per_node,
        tensor=request.tensor_parallel,
        data=request.data_parallel,
        expert=request.expert_parallel,
        nodes=request.nodes,
        gpus=request.gpu_count,
    )
    for layout in layouts:
        problem = structural_problem(arch, layout, request.gpus_per_node)
        if problem is not None:
            search.refused.append((layout, problem))
            continue
        fit = evaluate_layout(
            arch,
            counts,
            layout,
            gpu_memory_gib=request.gpu.memory_gib,
            gpu_memory_utilization=request.gpu_memory_utilization,
            precision=precision,
            kv_dtype_bytes=kv_bytes,
            max_model_len=max_model_len,
            target_concurrency=request.target_concurrency,
        )
        if not fit.fits:
            search.tried.append(fit)
        elif layout.nodes > 1 and request.backend != _MULTI_NODE_BACKEND:
            if search.needs_multi_node is None:
                search.needs_multi_node = fit
        else:
            search.chosen = fit
            break
    return search


def _where(fit: MemoryFit, gpu: str) -> str:
    layout = fit.layout
    if layout.nodes > 1:
        return f"{layout.name}: {layout.nodes} nodes x {layout.gpus_per_node} {gpu}"
    return f"{layout.name}: {layout.gpus} x {gpu}"


def _suggestions(request: PlanRequest, counts: ParameterCounts, dtype: str, max_model_len: int) -> list[str]:
    """Nearby requests that would fit, each as one line naming what to change."""
    found: list[str] = []

    def fits(**changes: object) -> MemoryFit | None:
        return _search(request.model_copy(update=changes), counts, dtype, max_model_len).chosen

    if request.pins_layout:
        fit = fits(gpu_count=None, tensor_parallel=None, data_parallel=None, expert_parallel=None, nodes=None)
        if fit is not None:
            found.append(f"without pinning the layout: {_where(fit, request.gpu.name)}")
    if request.backend != _MULTI_NODE_BACKEND:
        fit = fits(backend=_MULTI_NODE_BACKEND)
        if fit is not None and fit.layout.nodes > 1:
            found.append(f"backend leaderworkerset: {_where(fit, request.gpu.name)}")
    if request.gpus_per_node < _SUGGESTION_GPUS_PER_NODE:
        fit = fits(gpus_per_node=_SUGGESTION_GPUS_PER_NODE)
        if fit is not None:
            found.append(f"nodes with {_SUGGESTION_GPUS_PER_NODE} GPUs: {_where(fit, request.gpu.name)}")
    for profile in sorted(GPU_PROFILES, key=lambda p: p.memory_gib):
        if profile.memory_gib <= request.gpu.memory_gib:
            continue
        fit = fits(gpu=profile)
        if fit is not None:
            found.append(f"a larger GPU: {_where(fit, profile.name)}")
            break
    return found


def _shorter_context_suggestions(request: PlanRequest, tried: list[MemoryFit]) -> list[str]:
    if not tried:
        return []
    best = max(tried, key=longest_context_fitting)
    found: list[str] = []
    longest = longest_context_fitting(best)
    if longest >= 1024:
        found.append(f"max_model_len {longest:,} or less: {_where(best, request.gpu.name)}")
    if request.target_concurrency > 1 and best.sequences_per_rank > 0:
        found.append(f"target_concurrency {best.max_concurrent_sequences}: {_where(best, request.gpu.name)}")
    return found


def _infeasible(
    request: PlanRequest, counts: ParameterCounts, dtype: str, max_model_len: int, search: _Search
) -> PlanError:
    label = _model_label(request)
    gpu = request.gpu
    if search.needs_multi_node is not None:
        fit = search.needs_multi_node
        return PlanError(
            f"{label} needs {fit.layout.gpus} {gpu.name} GPUs ({fit.layout.name}), more than one node of "
            f"{request.gpus_per_node} holds; serving across nodes needs backend 'leaderworkerset', "
            f"not '{request.backend}'",
            field="backend",
            suggestions=_suggestions(request, counts, dtype, max_model_len)
            + _shorter_context_suggestions(request, search.tried),
        )
    if not search.tried and search.refused:
        layout, problem = search.refused[0]
        pinned_field = next(
            (
                name
                for name, value in (
                    ("tensor_parallel", request.tensor_parallel),
                    ("data_parallel", request.data_parallel),
                    ("expert_parallel", request.expert_parallel),
                    ("nodes", request.nodes),
                    ("gpu_count", request.gpu_count),
                )
                if value is not None
            ),
            None,
        )
        return PlanError(
            f"{label} cannot be served as {layout.name}: {problem}",
            field=pinned_field,
            suggestions=_suggestions(request, counts, dtype, max_model_len),
        )
    if not search.tried:
        return PlanError(
            f"no layout matches the pinned parallelism (gpu_count={request.gpu_count}, "
            f"tensor={request.tensor_parallel}, data={request.data_parallel}, "
            f"expert={request.expert_parallel}, nodes={request.nodes})",
            field="expert_parallel" if request.expert_parallel is not None else None,
            suggestions=_suggestions(request, counts, dtype, max_model_len),
        )
    largest = search.tried[-1]
    need = largest.required_per_rank * largest.sequence_gib
    if largest.kv_gib <= 0:
        shortfall = (
            f"{largest.weights_gib:.1f} GiB of weights and {largest.overhead_gib:.1f} GiB of runtime "
            f"overhead per GPU already exceed the {largest.usable_gib:.1f} GiB usable"
        )
    else:
        shortfall = (
            f"after {largest.weights_gib:.1f} GiB of weights and {largest.overhead_gib:.1f} GiB of overhead "
            f"per GPU, {largest.kv_gib:.1f} GiB is left for KV cache, but "
            f"{largest.required_per_rank} sequence(s) of {max_model_len:,} tokens need {need:.1f} GiB"
        )
    return PlanError(
        f"{label} does not fit on {gpu.name} ({largest.usable_gib:.1f} of {gpu.memory_gib:g} GiB usable at "
        f"{request.gpu_memory_utilization:g}) with {request.gpus_per_node} GPU(s) per node at "
        f"max_model_len {max_model_len:,} and target_concurrency {request.target_concurrency}: "
        f"the largest layout tried, {largest.layout.name}, falls short ({shortfall})",
        suggestions=_suggestions(request, counts, dtype, max_model_len)
        + _shorter_context_suggestions(request, search.tried),
    )


def _describe_model(arch: Architecture, counts: ParameterCounts, weights_gib: float, dtype: str) -> str:
    if arch.is_moe:
        kind = (
            f"MoE ({arch.num_experts} experts, top-{arch.num_experts_per_tok}), "
            f"{counts.total / 1e9:.2f}B parameters, {counts.active / 1e9:.2f}B active"
        )
    else:
        kind = f"dense, {counts.total / 1e9:.2f}B parameters"
    return f"{arch.architecture}: {kind}; {weights_gib:.1f} GiB of {dtype} weights"


def _fit_line(fit: MemoryFit, max_model_len: int) -> str:
    return (
        f"{fit.weights_gib:.1f} GiB of weights + {fit.overhead_gib:.1f} GiB of overhead per GPU leaves "
        f"{max(fit.kv_gib, 0.0):.1f} GiB for KV cache: {fit.sequences_per_rank} sequence(s) of "
        f"{max_model_len:,} tokens per {'DP rank' if fit.layout.data > 1 else 'replica'}"
    )


def _reasons(
    request: PlanRequest,
    counts: ParameterCounts,
    weights_gib: float,
    dtype: str,
    max_model_len: int,
    kv_per_token: int,
    chosen: MemoryFit,
    too_small: list[MemoryFit],
) -> list[str]:
    arch = request.architecture
    layout = chosen.layout
    gpu = request.gpu
    sequence_gib = kv_per_token * max_model_len / GIB
    reasons = [
        _describe_model(arch, counts, weights_gib, dtype),
        f"KV cache: {kv_per_token / 1024:g} KiB per token; one {max_model_len:,}-token sequence "
        f"takes {sequence_gib:.2f} GiB",
        f"{gpu.name}: {gpu.memory_gib:g} GiB x {request.gpu_memory_utilization:g} = "
        f"{chosen.usable_gib:.1f} GiB usable per GPU, of which {chosen.overhead_gib:.1f} GiB is kept for "
        "activations, CUDA graphs and communication buffers",
    ]
    if request.pins_layout:
        reasons.append("layout restricted to the GPU count and parallelism pinned in the request")
    for fit in too_small[-3:]:
        reasons.append(f"{fit.layout.name} is too small: {_fit_line(fit, max_model_len)}")
    reasons.append(f"{layout.name} fits on {layout.gpus} GPU(s): {_fit_line(chosen, max_model_len)}")
    if layout.expert and layout.data > 1:
        reasons.append(
            f"each of the {layout.data} DP ranks holds the attention and embedding weights whole and "
            f"{arch.num_experts // layout.expert_parallel} of the {arch.num_experts} experts per layer; "
            f"its own KV cache serves about {chosen.required_per_rank} of the "
            f"{request.target_concurrency} target sequence(s)"
        )
    elif layout.tensor > 1:
        reasons.append(f"weights and KV heads are split {layout.tensor} ways by tensor parallelism")
    if layout.nodes > 1:
        reasons.append(
            f"{layout.gpus} GPUs do not fit one node of {request.gpus_per_node}: {layout.nodes} pods of "
            f"{layout.gpus_per_node} GPUs in a LeaderWorkerSet, the leader serving the API and the "
            "workers running headless engine ranks"
        )
    reasons.append(
        f"{chosen.max_concurrent_sequences} sequence(s) of {max_model_len:,} tokens fit at once "
        f"(target {request.target_concurrency})"
    )
    return reasons


def _warnings(request: PlanRequest, layout: Layout, max_model_len: int) -> list[str]:
    arch = request.architecture
    found: list[str] = []
    if layout.tensor > arch.num_key_value_heads:
        found.append(
            f"TP{layout.tensor} is more than the {arch.num_key_value_heads} KV heads: each KV head is "
            f"replicated on {layout.tensor // arch.num_key_value_heads} GPUs"
        )
    if request.rope_scaling is not None and max_model_len <= arch.context_length:
        found.append(
            f"YaRN is on although max_model_len {max_model_len:,} is within the native "
            f"{arch.context_length:,}-token context; static YaRN applies at every length and can lower "
            "quality on short inputs"
        )
    if request.trust_remote_code and request.revision and not _COMMIT_HASH.match(request.revision):
        found.append(
            f"revision {request.revision!r} is not a commit hash: the remote code it runs can still change"
        )
    if request.gpu.product is None:
        found.append(f"GPU {request.gpu.name} has no product label: nodes cannot be selected by GPU model")
    return found


def plan(request: PlanRequest) -> Plan:
    """The smallest layout that holds `request.architecture`'s weights and `target_concurrency` sequences
    of `max_model_len` tokens. Raises `PlanError` (with suggestions) when none does."""
    arch = request.architecture
    counts = count_parameters(arch)
    dtype = serving_dtype(request)
    max_model_len = _resolve_max_model_len(request)
    _check_remote_code(request)
    _check_gpu_count(request)

    search = _search(request, counts, dtype, max_model_len)
    if search.chosen is None:
        raise _infeasible(request, counts, dtype, max_model_len, search)
    chosen = search.chosen
    layout = chosen.layout

    precision, kv_bytes = _precision(request, dtype)
    weights_gib = weight_bytes(counts, precision) / GIB
    kv_per_token = kv_cache_bytes_per_token(arch, kv_bytes)
    args = build_vllm_args(request, layout, dtype=dtype, max_model_len=max_model_len)

    return Plan(
        layout=layout.name,
        gpus_per_replica=layout.gpus,
        nodes_per_replica=layout.nodes,
        gpus_per_node=layout.gpus_per_node,
        tensor_parallel=layout.tensor,
        data_parallel=layout.data,
        data_parallel_local=layout.data_local,
        expert_parallel=layout.expert_parallel,
        gpu=request.gpu.name,
        gpu_product=request.gpu.product,
        gpu_memory_gib=request.gpu.memory_gib,
        gpu_memory_utilization=request.gpu_memory_utilization,
        total_params=counts.total,
        active_params=counts.active,
        dtype=dtype,
        weights_gib=round(weights_gib, 2),
        weights_per_gpu_gib=round(chosen.weights_gib, 2),
        overhead_per_gpu_gib=round(chosen.overhead_gib, 2),
        kv_cache_per_gpu_gib=round(chosen.kv_gib, 2),
        kv_cache_bytes_per_token=kv_per_token,
        max_model_len=max_model_len,
        target_concurrency=request.target_concurrency,
        max_concurrent_sequences=chosen.max_concurrent_sequences,
        vllm_args=list(args.args),
        leader_args=list(args.leader),
        worker_args=list(args.worker),
        shm_size_gib=shm_size_gib(layout.gpus_per_node),
        startup_probe_seconds=request.startup_timeout_seconds
        or startup_probe_seconds(weights_gib, request.weights_source),
        reasons=_reasons(
            request, counts, weights_gib, dtype, max_model_len, kv_per_token, chosen, search.tried
        ),
        warnings=_warnings(request, layout, max_model_len),
    )
