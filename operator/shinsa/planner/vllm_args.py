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

# Options that change the memory or the topology the plan describes, or hand vLLM a second source of
# options, without a layout Shinsa plans for them: refused in extraArgs, naming what to use instead.
# (`--max-num-seqs` and `--max-num-batched-tokens` stay the user's until the plan models them.)
UNPLANNED_VLLM_FLAGS: dict[str, str] = {
    "--config": "a config file could set any option the plan owns; put options in spec.serving.extraArgs",
    "--kv-cache-memory-bytes": "the KV cache is planned from spec.serving.gpuMemoryUtilization",
    "--num-gpu-blocks-override": "the KV cache is planned from spec.serving.gpuMemoryUtilization",
    "--cpu-offload-gb": "weights are planned to fit GPU memory",
    "--enable-eplb": "expert load balancing changes the per-GPU expert memory the plan assumes",
    "--no-enable-eplb": "expert load balancing is not planned",
    "--all2all-backend": "the expert-parallel transport is chosen with the layout",
    "--prefill-context-parallel-size": "context parallelism is not planned; see spec.parallelism",
    "-pcp": "context parallelism is not planned; see spec.parallelism",
    "--decode-context-parallel-size": "context parallelism is not planned; see spec.parallelism",
    "-dcp": "context parallelism is not planned; see spec.parallelism",
    "--speculative-config": "a draft model's memory is not planned",
    "--uds": "the API is served on the TCP port the Service and probes use",
    "--data-parallel-backend": "data-parallel ranks are started by the pods Shinsa renders",
    "-dpb": "data-parallel ranks are started by the pods Shinsa renders",
    "--data-parallel-hybrid-lb": "the load-balancing mode follows the layout",
    "--no-data-parallel-hybrid-lb": "the load-balancing mode follows the layout",
    "-dph": "the load-balancing mode follows the layout",
    "--data-parallel-external-lb": "the load-balancing mode follows the layout",
    "--no-data-parallel-external-lb": "the load-balancing mode follows the layout",
    "-dpe": "the load-balancing mode follows the layout",
    "--data-parallel-multi-port-external-lb": "the load-balancing mode follows the layout",
    "-dpm": "the load-balancing mode follows the layout",
    "--nnodes": "nodes per replica are planned; see spec.parallelism.nodes",
    "-n": "nodes per replica are planned; see spec.parallelism.nodes",
    "--node-rank": "node ranks come from LeaderWorkerSet",
    "-r": "node ranks come from LeaderWorkerSet",
    "--master-addr": "the leader's address is set by Shinsa",
    "--master-port": "the leader's address is set by Shinsa",
    "--distributed-executor-backend": "the executor follows the layout",
}

# vLLM variables that set the data-parallel topology behind the flags' back (vLLM 0.33 `vllm/envs.py`).
OWNED_VLLM_ENV: frozenset[str] = frozenset(
    {"VLLM_DP_MASTER_IP", "VLLM_DP_MASTER_PORT", "VLLM_DP_RANK", "VLLM_DP_RANK_LOCAL", "VLLM_DP_SIZE"}
)


def _option(arg: str, known: frozenset[str]) -> str:
    """The option `arg` sets, as vLLM's parser reads it: `--max_model_len=1` and
    `--hf-overrides.rope_scaling.factor` (its dotted JSON form) name `--max-model-len` and
    `--hf-overrides`, and an unambiguous prefix (`--max-model`: argparse's abbreviations, which
    vLLM's parser keeps) names the one option of `known` it starts."""
    flag = arg.split("=", 1)[0]
    if not flag.startswith("--"):
        return flag
    flag = "--" + flag[2:].split(".", 1)[0].replace("_", "-")
    if flag in known:
        return flag
    completions = [k for k in known if k.startswith(flag)]
    return completions[0] if len(completions) == 1 else flag


def owned_flags_in(args: Iterable[str], known: frozenset[str] = frozenset()) -> list[str]:
    """The owned or unplanned options among `args`, as written. `known` is every option of the
    vLLM release that will read them (`pinned_release().flags`), which abbreviations are
    completed against; without it only exact spellings count."""
    vocabulary = known | OWNED_VLLM_FLAGS | frozenset(UNPLANNED_VLLM_FLAGS)
    found: list[str] = []
    for arg in args:
        if not arg.startswith("-"):
            continue
        option = _option(arg, vocabulary)
        if option in OWNED_VLLM_FLAGS or option in UNPLANNED_VLLM_FLAGS:
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


def extra_args_problem(
    extra_args: Sequence[str], env_names: Iterable[str], known: frozenset[str] = frozenset()
) -> str | None:
    """Why `spec.serving.extraArgs`/`env` cannot be passed to vLLM as they are, or None. `known`:
    the options of the vLLM release that will read them (empty for an image Shinsa has no option
    list of: only exact spellings and owned options are checked then)."""
    vocabulary = known | OWNED_VLLM_FLAGS | frozenset(UNPLANNED_VLLM_FLAGS)
    # Each option is read once, as vLLM's parser would read it, then sorted into what it is.
    options = [(arg, _option(arg, vocabulary)) for arg in extra_args if arg.startswith("-")]
    problems = []
    planned = [arg for arg, option in options if option in OWNED_VLLM_FLAGS]
    if planned:
        problems.append(
            f"spec.serving.extraArgs sets {', '.join(planned)}, which Shinsa sets from the plan; "
            "use the corresponding spec field instead"
        )
    for arg, option in options:
        if option in UNPLANNED_VLLM_FLAGS and option not in OWNED_VLLM_FLAGS:
            why = UNPLANNED_VLLM_FLAGS[option]
            problems.append(f"spec.serving.extraArgs sets {arg}, which is not planned: {why}")
    if known:
        unknown = [arg for arg, option in options if arg.startswith("--") and option not in vocabulary]
        if unknown:
            problems.append(
                f"spec.serving.extraArgs sets {', '.join(unknown)}, which this vLLM release does not "
                "accept (or which abbreviates several of its options)"
            )
    env = sorted(set(env_names) & OWNED_VLLM_ENV)
    if env:
        problems.append(
            f"spec.serving.env sets {', '.join(env)}, which would override the data-parallel layout "
            "Shinsa plans"
        )
    return "; ".join(problems) or None
