"""backend: deployment: one pod per replica, as a Deployment, behind a ClusterIP Service."""

from __future__ import annotations

from typing import Any

from shinsa.api import ModelDeployment
from shinsa.planner import Plan
from shinsa.render.labels import (
    HTTP_PORT,
    identity,
    object_meta,
    pod_selector,
    service_name,
    workload_labels,
)
from shinsa.render.model_source import ModelSource
from shinsa.render.pod import (
    API,
    VLLM_COMMAND,
    api_args,
    plan_hash,
    pod_annotations,
    pod_spec,
    pod_template,
    vllm_container,
)

# Time to schedule, pull a multi-GiB image and pass the probes, on top of the planned startup time,
# before the Deployment reports ProgressDeadlineExceeded.
PROGRESS_MARGIN_SECONDS = 600


def render_deployment(md: ModelDeployment, plan: Plan, source: ModelSource) -> dict[str, Any]:
    name, _, _ = identity(md)
    container = vllm_container(
        md, plan, source, API, command=VLLM_COMMAND, args=api_args(md, plan.vllm_args, source)
    )
    template = pod_template(
        md, pod_spec(md, plan, source, [container]), pod_annotations(plan, API, plan_hash([container]))
    )
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": object_meta(md, name, labels=workload_labels(md)),
        "spec": {
            "replicas": md.spec.replicas,
            "selector": {"matchLabels": pod_selector(md)},
            # Surging would need a spare set of GPUs for the new pod; on a full GPU pool it stays
            # Pending and the rollout never finishes. Replacing one replica at a time costs capacity
            # during a rollout (and availability when there is a single replica) but always completes.
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}},
            "progressDeadlineSeconds": plan.startup_probe_seconds + PROGRESS_MARGIN_SECONDS,
            "revisionHistoryLimit": 3,
            "template": template,
        },
    }


def render_service(md: ModelDeployment, selector: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": object_meta(md, service_name(md)),
        "spec": {
            "type": "ClusterIP",
            "selector": selector,
            "ports": [{"name": "http", "port": HTTP_PORT, "targetPort": HTTP_PORT, "protocol": "TCP"}],
        },
    }
