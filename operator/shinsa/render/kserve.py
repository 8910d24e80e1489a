"""backend: kserve: a KServe v1beta1 InferenceService whose predictor runs the vLLM container as is.

KServe's own Hugging Face runtime would pick its own vLLM arguments; a custom predictor container keeps
the plan the single description of what runs. The predictor embeds a core/v1 PodSpec, so the pod spec
is the same one the other backends use.
"""

from __future__ import annotations

from typing import Any

from shinsa.api import ModelDeployment
from shinsa.planner import Plan
from shinsa.render.labels import RenderError, common_labels, identity, object_meta, workload_labels
from shinsa.render.model_source import ModelSource
from shinsa.render.pod import (
    API,
    VLLM_COMMAND,
    api_args,
    plan_hash,
    pod_annotations,
    pod_spec,
    vllm_container,
)

KSERVE_API_VERSION = "serving.kserve.io/v1beta1"
# KServe finds the model server by this container name (to mount storage, to aggregate metrics).
KSERVE_CONTAINER_NAME = "kserve-container"

# RawDeployment (a plain Deployment and Service) rather than Knative: GPU replicas must not scale to
# zero and take minutes to load, and Knative's pod-spec restrictions reject what the pod needs
# (memory-backed /dev/shm, PVCs, node affinity, tolerations, added capabilities).
DEPLOYMENT_MODE_ANNOTATION = "serving.kserve.io/deploymentMode"
# The replica count comes from the spec; no HPA should second-guess it.
AUTOSCALER_CLASS_ANNOTATION = "serving.kserve.io/autoscalerClass"


def render_inference_service(md: ModelDeployment, plan: Plan, source: ModelSource) -> dict[str, Any]:
    if plan.nodes_per_replica > 1:
        raise RenderError(
            f"the plan spans {plan.nodes_per_replica} nodes per replica, which needs "
            "spec.backend: leaderworkerset"
        )
    name, _, _ = identity(md)
    container = vllm_container(
        md,
        plan,
        source,
        API,
        command=VLLM_COMMAND,
        args=api_args(md, plan.vllm_args, source),
        name=KSERVE_CONTAINER_NAME,
    )
    metadata = object_meta(md, name, labels=workload_labels(md))
    metadata["annotations"] = {
        DEPLOYMENT_MODE_ANNOTATION: "RawDeployment",
        AUTOSCALER_CLASS_ANNOTATION: "none",
    }
    predictor: dict[str, Any] = {
        "minReplicas": md.spec.replicas,
        "maxReplicas": md.spec.replicas,
        # Pod labels and annotations, so pod_selector() finds the predictor pods like any others.
        "labels": common_labels(md),
        "annotations": pod_annotations(plan, API, plan_hash([container])),
        # See the Deployment backend: surging needs spare GPUs.
        "deploymentStrategy": {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1},
        },
        **pod_spec(md, plan, source, [container]),
    }
    return {
        "apiVersion": KSERVE_API_VERSION,
        "kind": "InferenceService",
        "metadata": metadata,
        "spec": {"predictor": predictor},
    }
