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
# vLLM binds its data-parallel ZMQ sockets and the rank-0 TCP store on --data-parallel-address as
# given (vLLM 0.33: `vllm/v1/engine/utils.py` `get_tcp_uri(host, 0)` for the engine sockets,
# `vllm/v1/engine/coordinator.py`, `vllm/config/parallel.py` `s.bind((data_parallel_master_ip, 0))`),
# and ZMQ does not resolve a DNS name to bind. So the leader is given its own pod IP (Kubernetes
# expands $(VAR) in args from the container's environment: render sets POD_IP_ENV from the downward
# API), and workers, which connect, the IP their shell resolved from LWS_LEADER_ADDRESS (the leader
# pod's DNS name, set by LeaderWorkerSet with LWS_WORKER_INDEX, 0 for the leader).
POD_IP_ENV = "SHINSA_POD_IP"
LEADER_IP_VAR = "SHINSA_LEADER_IP"
LEADER_OWN_ADDRESS = f"$({POD_IP_ENV})"
WORKER_LEADER_ADDRESS = f"${{{LEADER_IP_VAR}}}"

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
    # The model is `vllm serve`'s positional argument: `--model` is deprecated there (vLLM 0.33's
    # `vllm/entrypoints/cli/serve.py` copies `model_tag` over it).
    engine: list[str] = [
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

    # The reasoning parser is an engine option from vLLM 0.33 on (structured output runs in every
    # engine core); tool calling belongs to the OpenAI-compatible frontend, which headless workers
    # do not run.
    if request.reasoning_parser:
        engine += ["--reasoning-parser", request.reasoning_parser]
    frontend: list[str] = []
    if request.tool_call_parser:
        frontend += ["--enable-auto-tool-choice", "--tool-call-parser", request.tool_call_parser]

    if layout.nodes == 1:
        return VllmArgs(args=tuple(engine + frontend))

    def multi_node(address: str) -> list[str]:
        return [
            "--data-parallel-size-local",
            str(layout.data_local),
            "--data-parallel-address",
            address,
            "--data-parallel-rpc-port",
            str(DATA_PARALLEL_RPC_PORT),
        ]

    leader = tuple(engine + multi_node(LEADER_OWN_ADDRESS) + frontend)
    worker = tuple(
        engine
        + multi_node(WORKER_LEADER_ADDRESS)
        + ["--data-parallel-start-rank", worker_start_rank_expr(layout), "--headless"]
    )
    return VllmArgs(args=leader, leader=leader, worker=worker)


def _expansion(arg: str) -> bool:
    # `$(...)` (Kubernetes variable references, shell arithmetic) and `${...}` (the shell's own
    # variables) must reach the shell unquoted.
    return (arg.startswith("$(") and arg.endswith(")")) or (arg.startswith("${") and arg.endswith("}"))


def shell_command(args: Sequence[str], program: str = "vllm serve") -> str:
    """One `sh -c` line that runs `program` with `args`, quoting everything except expansions."""
    parts = [program]
    for arg in args:
        parts.append(arg if _expansion(arg) else shlex.quote(arg))
    return "exec " + " ".join(parts)
