"""Pure: what a ModelDeployment should become, given its architecture and the cluster's GPU shape.

Every decision that turns a spec into a plan and children is made here, so the handler only
reads inputs, calls `desired_state` and applies the result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from shinsa.api import DEFAULT_VLLM_IMAGE, ModelDeployment
from shinsa.api.lifecycle import ModelDeploymentReason as Reason
from shinsa.planner import (
    Architecture,
    Plan,
    PlanError,
    PlannerError,
    PlanRequest,
    RopeScaling,
    extra_args_problem,
    pinned_release,
    plan,
    resolve_gpu,
)
from shinsa.planner.gpus import gpu_with_memory
from shinsa.render import RenderError, render_model_deployment, vllm_model_argument

# The planner names PlanRequest fields; users know the ModelDeployment's.
_SPEC_FIELD = {
    "max_model_len": "spec.serving.maxModelLen",
    "rope_scaling": "spec.serving.ropeScaling",
    "target_concurrency": "spec.resources.gpu.targetConcurrency",
    "gpu": "spec.resources.gpu",
    "gpus_per_node": "spec.resources.gpu",
    "gpu_count": "spec.resources.gpu.count",
    "gpu_memory_utilization": "spec.serving.gpuMemoryUtilization",
    "tensor_parallel": "spec.parallelism.tensor",
    "data_parallel": "spec.parallelism.data",
    "expert_parallel": "spec.parallelism.expert",
    "nodes": "spec.parallelism.nodes",
    "backend": "spec.backend",
    "revision": "spec.model.revision",
    "trust_remote_code": "spec.model.trustRemoteCode",
    "dtype": "spec.serving.dtype",
    "startup_timeout_seconds": "spec.serving.startupTimeoutSeconds",
}


class SpecProblem(Exception):
    """The spec cannot be served as written; `reason` becomes the Planned condition's reason."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Desired:
    plan: Plan
    children: list[dict[str, Any]]


def plan_request(md: ModelDeployment, arch: Architecture, gpus_per_node: int, model_uri: str) -> PlanRequest:
    spec = md.spec
    gpu_spec = spec.resources.gpu
    try:
        gpu = (
            resolve_gpu(gpu_spec.product)
            if gpu_spec.product
            else gpu_with_memory(float(gpu_spec.memory_gib or 0))
        )
    except PlannerError as exc:
        raise SpecProblem(Reason.UNKNOWN_GPU, f"spec.resources.gpu.product: {exc}") from None

    pins = spec.parallelism
    # Passed through as written: `count` and the pins are combined by the planner, which fills what is unset
    # and reports a contradiction; `expert: 1` is a pin too (expert parallelism off), not "unset".
    tensor, data, expert, nodes = (
        (pins.tensor, pins.data, pins.expert, pins.nodes) if pins else (None, None, None, None)
    )
    scaling = spec.serving.rope_scaling
    return PlanRequest(
        architecture=arch,
        gpu=gpu,
        model=vllm_model_argument(model_uri),
        served_name=spec.model.served_name or md.metadata.name,
        revision=spec.model.revision,
        max_model_len=spec.serving.max_model_len,
        rope_scaling=(
            RopeScaling(
                factor=scaling.factor,
                original_max_position_embeddings=scaling.original_max_position_embeddings,
            )
            if scaling
            else None
        ),
        target_concurrency=gpu_spec.target_concurrency,
        gpu_memory_utilization=spec.serving.gpu_memory_utilization,
        gpus_per_node=gpus_per_node,
        gpu_count=gpu_spec.count,
        tensor_parallel=tensor,
        data_parallel=data,
        expert_parallel=expert,
        nodes=nodes,
        dtype=spec.serving.dtype,
        trust_remote_code=spec.model.trust_remote_code,
        reasoning_parser=spec.serving.reasoning_parser,
        tool_call_parser=spec.serving.tool_call_parser,
        backend=spec.backend.value,
        # A cache claim keeps downloaded weights across restarts: read like a volume after the first.
        weights_source=_weights_source(model_uri, spec.serving.model_cache_claim),
        startup_timeout_seconds=spec.serving.startup_timeout_seconds,
    )


def _weights_source(model_uri: str, cache_claim: str | None) -> Literal["hub", "bucket", "volume"]:
    if model_uri.startswith("s3://"):
        return "bucket"
    if model_uri.startswith("hf://") and cache_claim is None:
        return "hub"
    return "volume"


def _fields_at_fault(exc: PlannerError) -> str:
    """'spec.a: ' for one field at fault, 'spec.a, spec.b: ' when the planner says fields disagree."""
    if not isinstance(exc, PlanError) or not exc.field:
        return ""
    fields = (exc.field, *exc.conflicts)
    return ", ".join(_SPEC_FIELD.get(name, name) for name in fields) + ": "


def desired_state(md: ModelDeployment, arch: Architecture, gpus_per_node: int, model_uri: str) -> Desired:
    """The plan and the children to apply, or SpecProblem saying which field stands in the way."""
    serving = md.spec.serving
    # An image other than the pinned one may have other options: only what Shinsa owns is checked.
    known = pinned_release().flags if serving.image == DEFAULT_VLLM_IMAGE else frozenset()
    if problem := extra_args_problem(serving.extra_args, [var.name for var in serving.env], known):
        raise SpecProblem(Reason.INVALID_EXTRA_ARGS, problem)
    try:
        chosen = plan(plan_request(md, arch, gpus_per_node, model_uri))
    except PlannerError as exc:
        raise SpecProblem(Reason.PLAN_FAILED, f"{_fields_at_fault(exc)}{exc}") from None
    try:
        children = render_model_deployment(md, chosen, model_path=model_uri)
    except RenderError as exc:
        raise SpecProblem(Reason.RENDER_FAILED, str(exc)) from None
    return Desired(plan=chosen, children=apply_order(children))


def apply_order(children: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Services before the workload: children are applied one by one, and a refusal stops the rest.
    A refused Service then leaves no GPU pods behind, and a refused workload leaves only a Service,
    which holds nothing."""
    return sorted(children, key=lambda child: child["kind"] != "Service")
