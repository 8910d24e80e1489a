"""The `vllm serve` arguments a plan stands for, and the flags the operator therefore owns."""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from shinsa.planner.layout import Layout
from shinsa.planner.request import PlanRequest

# Port the data-parallel ranks of a multi-node replica use to reach the leader's coordinator.
DATA_PARALLEL_RPC_PORT = 13345
# Kubernetes expands $(VAR) in container args from the container's environment; LeaderWorkerSet sets
# LWS_LEADER_ADDRESS (the leader pod's DNS name) and, from LWS v0.6, LWS_WORKER_INDEX (0 for the leader).
LEADER_ADDRESS_REF = "$(LWS_LEADER_ADDRESS)"

# Every flag the planner may emit, in every spelling vLLM accepts for it (short aliases, --no- forms).
# A spec's extraArgs must not repeat them: the plan would silently stop describing what runs.
OWNED_VLLM_FLAGS: frozenset[str] = frozenset(
    {
        "--model",
        "--served-model-name",
        "--revision",
        "--trust-remote-code",
        "--no-trust-remote-code",
        "--dtype",
        "--max-model-len",
        "--gpu-memory-utilization",
        "--quantization",
        "-q",
        "--kv-cache-dtype",
        "--hf-overrides",
        "--rope-scaling",
        "--rope-theta",
        "--tensor-parallel-size",
        "-tp",
        "--pipeline-parallel-size",
        "-pp",
        "--data-parallel-size",
        "-dp",
        "--data-parallel-size-local",
        "-dpl",
        "--data-parallel-address",
        "-dpa",
        "--data-parallel-rpc-port",
        "-dpp",
        "--data-parallel-start-rank",
        "-dpr",
        "--data-parallel-rank",
        "-dpn",
        "--enable-expert-parallel",
        "--no-enable-expert-parallel",
        "-ep",
        "--headless",
        "--reasoning-parser",
        "--tool-call-parser",
        "--enable-auto-tool-choice",
        "--no-enable-auto-tool-choice",
    }
)


def owned_flags_in(args: Iterable[str]) -> list[str]:
    """The owned flags among `args`, as written (`--max_model_len=4096` counts as `--max-model-len`)."""
    found: list[str] = []
    for arg in args:
        if not arg.startswith("-"):
            continue
        flag = arg.split("=", 1)[0]
        # vLLM's argument parser treats underscores in long options as dashes.
        normalized = "--" + flag[2:].replace("_", "-") if flag.startswith("--") else flag
        if normalized in OWNED_VLLM_FLAGS:
            found.append(arg)
    return found


@dataclass(frozen=True)
class VllmArgs:
    """`args` for a single-pod replica (or the leader's, for a multi-node one); `leader`/`worker` are only
    set for a multi-node replica."""

    args: tuple[str, ...]
    leader: tuple[str, ...] = ()
    worker: tuple[str, ...] = ()


def worker_start_rank_expr(layout: Layout) -> str:
    # Shell arithmetic, because Kubernetes cannot multiply: workers must run through `sh -c`.
    return f"$((LWS_WORKER_INDEX*{layout.data_local}))"


def build_vllm_args(request: PlanRequest, layout: Layout, *, dtype: str, max_model_len: int) -> VllmArgs:
    engine: list[str] = [
        "--model",
        request.model,
        "--served-model-name",
        request.served_name or request.model,
    ]
    if request.revision:
        engine += ["--revision", request.revision]
    if request.trust_remote_code:
        engine.append("--trust-remote-code")
    engine += [
        "--dtype",
        dtype,
        "--max-model-len",
        str(max_model_len),
        "--gpu-memory-utilization",
        f"{request.gpu_memory_utilization:g}",
    ]
    if request.quantization:
        engine += ["--quantization", request.quantization]
    if request.kv_cache_dtype != "auto":
        engine += ["--kv-cache-dtype", request.kv_cache_dtype]
    if request.rope_scaling is not None:
        scaling = request.rope_scaling
        original = scaling.original_max_position_embeddings or request.architecture.context_length
        overrides = {
            "rope_scaling": {
                "rope_type": scaling.rope_type,
                "factor": scaling.factor,
                "original_max_position_embeddings": original,
            }
        }
        engine += ["--hf-overrides", json.dumps(overrides, separators=(",", ":"))]

    engine += ["--tensor-parallel-size", str(layout.tensor)]
    if layout.data > 1:
        engine += ["--data-parallel-size", str(layout.data)]
    if layout.expert:
        engine.append("--enable-expert-parallel")

    # Parsers belong to the OpenAI-compatible frontend, which headless workers do not run.
    frontend: list[str] = []
    if request.reasoning_parser:
        frontend += ["--reasoning-parser", request.reasoning_parser]
    if request.tool_call_parser:
        frontend += ["--enable-auto-tool-choice", "--tool-call-parser", request.tool_call_parser]

    if layout.nodes == 1:
        return VllmArgs(args=tuple(engine + frontend))

    multi_node = [
        "--data-parallel-size-local",
        str(layout.data_local),
        "--data-parallel-address",
        LEADER_ADDRESS_REF,
        "--data-parallel-rpc-port",
        str(DATA_PARALLEL_RPC_PORT),
    ]
    leader = tuple(engine + multi_node + frontend)
    worker = tuple(
        engine + multi_node + ["--data-parallel-start-rank", worker_start_rank_expr(layout), "--headless"]
    )
    return VllmArgs(args=leader, leader=leader, worker=worker)


def shell_command(args: Sequence[str], program: str = "vllm serve") -> str:
    """One `sh -c` line that runs `program` with `args`, quoting everything except `$(...)` expansions
    (Kubernetes variable references and shell arithmetic), which must reach the shell unquoted."""
    parts = [program]
    for arg in args:
        parts.append(arg if arg.startswith("$(") and arg.endswith(")") else shlex.quote(arg))
    return "exec " + " ".join(parts)
