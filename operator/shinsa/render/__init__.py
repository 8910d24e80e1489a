"""Pure rendering: a ModelDeployment and its plan -> the Kubernetes objects that serve it, as dicts.

No I/O and no Kubernetes client: controllers apply what `render_model_deployment` returns, in order,
with server-side apply.
"""

from __future__ import annotations

from typing import Any

from shinsa.api import Backend, ModelDeployment
from shinsa.planner import Plan
from shinsa.render.deployment import render_deployment, render_service
from shinsa.render.kserve import render_inference_service
from shinsa.render.labels import (
    KUEUE_QUEUE_LABEL,
    LWS_WORKER_INDEX_LABEL,
    MODEL_DEPLOYMENT_LABEL,
    PLAN_HASH_ANNOTATION,
    RenderError,
    common_labels,
    endpoint_url,
    owner_reference,
    pod_selector,
)
from shinsa.render.leaderworkerset import leader_selector, lws_name, render_leaderworkerset
from shinsa.render.model_source import ModelSource, resolve_model_source, vllm_model_argument
from shinsa.render.pod import RENDER_OWNED_FLAGS, check_extra_args


def render_model_deployment(
    md: ModelDeployment, plan: Plan, *, model_path: str | None = None
) -> list[dict[str, Any]]:
    """The children of `md` (the workload and its Service); `controllers.desired.apply_order` orders them.

    `model_path` replaces `spec.model.uri` as the place to load from: the controller passes the
    hf://, s3:// or pvc:// URI a `models:/name@alias` reference resolved to. The plan's model flags
    (the model argument, `--revision`, `--trust-remote-code`) are rewritten from the spec and this URI.
    """
    source = resolve_model_source(model_path or md.spec.model.uri)
    check_extra_args(md)
    backend = md.spec.backend
    # Only a LeaderWorkerSet groups pods across nodes; the other backends run a replica in one pod.
    if plan.nodes_per_replica > 1 and backend != Backend.LEADERWORKERSET:
        raise RenderError(
            f"the plan spans {plan.nodes_per_replica} nodes per replica, which needs "
            "spec.backend: leaderworkerset"
        )
    if backend == Backend.DEPLOYMENT:
        return [render_deployment(md, plan, source), render_service(md, pod_selector(md))]
    if backend == Backend.LEADERWORKERSET:
        return [render_leaderworkerset(md, plan, source), render_service(md, leader_selector(md))]
    if backend == Backend.KSERVE:
        return [render_inference_service(md, plan, source)]
    raise RenderError(f"spec.backend {backend!r} is not supported")


__all__ = [
    "KUEUE_QUEUE_LABEL",
    "LWS_WORKER_INDEX_LABEL",
    "MODEL_DEPLOYMENT_LABEL",
    "PLAN_HASH_ANNOTATION",
    "RENDER_OWNED_FLAGS",
    "ModelSource",
    "RenderError",
    "common_labels",
    "endpoint_url",
    "lws_name",
    "owner_reference",
    "pod_selector",
    "render_model_deployment",
    "resolve_model_source",
    "vllm_model_argument",
]
