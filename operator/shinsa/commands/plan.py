"""`shinsa plan`: print the GPU layout and vLLM arguments the planner chooses for a model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table
from rich.text import Text

from shinsa.planner import (
    Architecture,
    Plan,
    PlanError,
    PlannerError,
    PlanRequest,
    RopeScaling,
    UnknownGpuError,
    UnknownModelError,
    load_config_json,
    lookup_model,
    resolve_gpu,
    shell_command,
)
from shinsa.planner import (
    plan as make_plan,
)

# PlanRequest field -> the option a user typed, so errors point at the option.
_OPTION_FOR_FIELD = {
    "architecture": "MODEL",
    "model": "--model-uri",
    "served_name": "--served-name",
    "gpu": "--gpu",
    "max_model_len": "--max-model-len",
    "rope_scaling": "--yarn-factor",
    "target_concurrency": "--target-concurrency",
    "gpu_memory_utilization": "--gpu-memory-utilization",
    "gpus_per_node": "--gpus-per-node",
    "gpu_count": "--gpus",
    "tensor_parallel": "--tensor",
    "data_parallel": "--data",
    "expert_parallel": "--expert",
    "nodes": "--nodes",
    "dtype": "--dtype",
    "quantization": "--quantization",
    "kv_cache_dtype": "--kv-cache-dtype",
    "revision": "--revision",
    "trust_remote_code": "--trust-remote-code",
    "reasoning_parser": "--reasoning-parser",
    "tool_call_parser": "--tool-call-parser",
    "backend": "--backend",
}
_FIELD_FOR_ALIAS = {info.alias: name for name, info in PlanRequest.model_fields.items() if info.alias}

_stderr = Console(stderr=True)


def _fail(option: str | None, message: str, code: int = 2) -> NoReturn:
    prefix = f"{option}: " if option else ""
    _stderr.print(Text.assemble(("Error: ", "bold red"), prefix + message), soft_wrap=True)
    raise typer.Exit(code)


def _resolve_model(model: str) -> tuple[Architecture, str, str]:
    """(architecture, the model argument vLLM gets, default served name)."""
    try:
        preset = lookup_model(model)
    except UnknownModelError:
        path = Path(model)
        if not (path.exists() or model.endswith(".json")):
            raise
        directory = path if path.is_dir() else path.parent
        return load_config_json(path), str(directory), directory.resolve().name
    return preset.architecture, preset.hf_repo_id, model


def _validation_message(exc: ValidationError) -> tuple[str | None, str]:
    error = exc.errors()[0]
    loc = [str(part) for part in error["loc"]]
    field = _FIELD_FOR_ALIAS.get(loc[0], loc[0]) if loc else None
    return _OPTION_FOR_FIELD.get(field or ""), error["msg"]


def _print_table(result: Plan, console: Console) -> None:
    table = Table(title=f"Plan: {result.layout}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    gpu = result.gpu + (f" ({result.gpu_product})" if result.gpu_product else "")
    rows = [
        ("layout", result.layout),
        ("GPUs", f"{result.gpus_per_replica} x {gpu}, {result.gpu_memory_gib:g} GiB each"),
        ("nodes", f"{result.nodes_per_replica} (x {result.gpus_per_node} GPUs per pod)"),
        (
            "parallelism",
            f"tensor {result.tensor_parallel}, data {result.data_parallel}, expert {result.expert_parallel}",
        ),
        ("parameters", f"{result.total_params / 1e9:.2f}B total, {result.active_params / 1e9:.2f}B active"),
        (
            "weights",
            f"{result.weights_gib:.1f} GiB {result.dtype} ({result.weights_per_gpu_gib:.1f} GiB per GPU)",
        ),
        (
            "KV cache",
            f"{result.kv_cache_bytes_per_token:,} B/token, {result.kv_cache_per_gpu_gib:.1f} GiB per GPU",
        ),
        ("max model len", f"{result.max_model_len:,}"),
        (
            "concurrency",
            f"{result.max_concurrent_sequences} full-length sequences (target {result.target_concurrency})",
        ),
        ("/dev/shm", f"{result.shm_size_gib} GiB"),
        ("startup probe", f"{result.startup_probe_seconds} s"),
    ]
    if result.leader_args:
        rows += [
            ("leader", shell_command(result.leader_args)),
            ("workers", shell_command(result.worker_args)),
        ]
    else:
        rows.append(("command", shell_command(result.vllm_args)))
    for key, value in rows:
        table.add_row(key, Text(value))
    console.print(table)
    console.print(Text("Why:", style="bold"))
    for reason in result.reasons:
        console.print(Text(f"  - {reason}"))
    for warning in result.warnings:
        console.print(Text.assemble(("warning: ", "yellow"), warning))


def plan(
    model: Annotated[
        str,
        typer.Argument(
            help="A catalog name (llm-jp-4-8b, qwen3-30b-a3b, ...), a Hugging Face repo id in the catalog, "
            "or a path to a config.json or a model directory.",
            show_default=False,
        ),
    ],
    gpu: Annotated[
        str,
        typer.Option(
            "--gpu",
            help="GPU: H100-80GB, H200-141GB, A100-80GB, A100-40GB, L40S, L4, A10G, a node label value "
            "(NVIDIA-H100-80GB-HBM3) or a memory size (48GiB).",
            show_default=False,
        ),
    ],
    max_model_len: Annotated[
        int | None, typer.Option("--max-model-len", help="Context length to serve; default the model's.")
    ] = None,
    target_concurrency: Annotated[
        int, typer.Option("--target-concurrency", help="Full-length sequences to hold at once.")
    ] = 1,
    gpu_memory_utilization: Annotated[
        float, typer.Option("--gpu-memory-utilization", help="Share of GPU memory vLLM may use.")
    ] = 0.90,
    gpus_per_node: Annotated[int, typer.Option("--gpus-per-node", help="GPUs one node offers.")] = 8,
    gpus: Annotated[
        int | None,
        typer.Option("--gpus", help="GPUs per replica (spec.resources.gpu.count); unpinned sizes fill it."),
    ] = None,
    tensor: Annotated[int | None, typer.Option("--tensor", help="Pin the tensor-parallel size.")] = None,
    data: Annotated[int | None, typer.Option("--data", help="Pin the data-parallel size.")] = None,
    expert: Annotated[
        int | None, typer.Option("--expert", help="Pin the expert-parallel size (1 turns it off).")
    ] = None,
    nodes: Annotated[int | None, typer.Option("--nodes", help="Pin the number of nodes per replica.")] = None,
    backend: Annotated[
        str, typer.Option("--backend", help="deployment, leaderworkerset (needed across nodes) or kserve.")
    ] = "deployment",
    yarn_factor: Annotated[
        float | None, typer.Option("--yarn-factor", help="Serve with YaRN rope scaling by this factor.")
    ] = None,
    dtype: Annotated[str, typer.Option("--dtype", help="auto, bfloat16, float16 or float32.")] = "auto",
    quantization: Annotated[
        str | None, typer.Option("--quantization", help="fp8: quantize weights at load time.")
    ] = None,
    kv_cache_dtype: Annotated[str, typer.Option("--kv-cache-dtype", help="auto or fp8.")] = "auto",
    model_uri: Annotated[
        str | None,
        typer.Option("--model-uri", help="What vLLM's --model gets; default the repo id or the path."),
    ] = None,
    served_name: Annotated[
        str | None, typer.Option("--served-name", help="Name clients use; default MODEL.")
    ] = None,
    revision: Annotated[str | None, typer.Option("--revision", help="Model revision (commit hash).")] = None,
    trust_remote_code: Annotated[
        bool, typer.Option("--trust-remote-code", help="Let vLLM run the model repository's code.")
    ] = False,
    reasoning_parser: Annotated[str | None, typer.Option("--reasoning-parser")] = None,
    tool_call_parser: Annotated[str | None, typer.Option("--tool-call-parser")] = None,
    output: Annotated[str, typer.Option("--output", "-o", help="table or json.")] = "table",
) -> None:
    """Plan GPUs, parallelism and vLLM arguments for serving MODEL."""
    if output not in ("table", "json"):
        _fail("--output", f"expected 'table' or 'json', got {output!r}")
    try:
        architecture, default_uri, default_name = _resolve_model(model)
    except UnknownModelError as exc:
        _fail("MODEL", f"{exc}; or give a path to a config.json")
    except PlannerError as exc:
        _fail("MODEL", str(exc))
    try:
        gpu_profile = resolve_gpu(gpu)
    except UnknownGpuError as exc:
        _fail("--gpu", str(exc))

    fields: dict[str, object] = {
        "architecture": architecture,
        "gpu": gpu_profile,
        "model": model_uri or default_uri,
        "served_name": served_name or default_name,
        "revision": revision,
        "max_model_len": max_model_len,
        "target_concurrency": target_concurrency,
        "gpu_memory_utilization": gpu_memory_utilization,
        "gpus_per_node": gpus_per_node,
        "gpu_count": gpus,
        "tensor_parallel": tensor,
        "data_parallel": data,
        "expert_parallel": expert,
        "nodes": nodes,
        "dtype": dtype,
        "quantization": quantization,
        "kv_cache_dtype": kv_cache_dtype,
        "trust_remote_code": trust_remote_code,
        "reasoning_parser": reasoning_parser,
        "tool_call_parser": tool_call_parser,
        "backend": backend,
    }
    try:
        if yarn_factor is not None:
            fields["rope_scaling"] = RopeScaling(factor=yarn_factor)
        request = PlanRequest.model_validate(fields)
    except ValidationError as exc:
        option, message = _validation_message(exc)
        if yarn_factor is not None and exc.title == RopeScaling.__name__:
            option = "--yarn-factor"
        _fail(option, message)

    try:
        result = make_plan(request)
    except PlanError as exc:
        options = [_OPTION_FOR_FIELD.get(name, name) for name in (exc.field, *exc.conflicts) if name]
        _fail(", ".join(options) or None, str(exc), code=1)
    except PlannerError as exc:
        _fail(None, str(exc), code=1)

    if output == "json":
        typer.echo(result.model_dump_json(by_alias=True, indent=2))
    else:
        _print_table(result, Console())
