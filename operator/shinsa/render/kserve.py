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

# KServe finds the model server by this container name (to mount storage, to aggregate metrics).
KSERVE_CONTAINER_NAME = "kserve-container"

# RawDeployment (a plain Deployment and Service) rather than Knative: GPU replicas must not scale to
# zero and take minutes to load, and Knative's pod-spec restrictions reject what the pod needs
# (memory-backed /dev/shm, PVCs, node affinity, tolerations, added capabilities).
DEPLOYMENT_MODE_ANNOTATION = "serving.kserve.io/deploymentMode"
# The replica count comes from the spec; no HPA should second-guess it.
AUTOSCALER_CLASS_ANNOTATION = "serving.kserve.io/autoscalerClass"


def render_inference_service(md: ModelDeployment, plan: Plan, source: ModelSource) -> dict[str, Any]:
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
    # Imported here: the SDK pulls in KServe's model server (fastapi, grpc), about 0.7 s that the
    # planner CLI and the other backends should not pay.
    from kserve import constants
    from kserve.models import V1beta1InferenceService, V1beta1InferenceServiceSpec, V1beta1PredictorSpec
    from kubernetes.client import ApiClient, V1DeploymentStrategy, V1RollingUpdateDeployment

    predictor = V1beta1PredictorSpec(
        min_replicas=md.spec.replicas,
        max_replicas=md.spec.replicas,
        # Pod labels and annotations, so pod_selector() finds the predictor pods like any others.
        labels=common_labels(md),
        annotations=pod_annotations(plan, API, plan_hash([container])),
        # See the Deployment backend: surging needs spare GPUs.
        deployment_strategy=V1DeploymentStrategy(
            type="RollingUpdate",
            rolling_update=V1RollingUpdateDeployment(max_surge=0, max_unavailable=1),
        ),
        **_predictor_fields(pod_spec(md, plan, source, [container])),
    )
    service = V1beta1InferenceService(
        api_version=constants.KSERVE_V1BETA1,
        kind=constants.KSERVE_KIND_INFERENCESERVICE,
        metadata=metadata,
        spec=V1beta1InferenceServiceSpec(predictor=predictor),
    )
    rendered: dict[str, Any] = ApiClient().sanitize_for_serialization(service)
    return rendered


def _predictor_fields(pod: dict[str, Any]) -> dict[str, Any]:
    """The shared pod spec as PredictorSpec keyword arguments. The predictor inlines a core/v1
    PodSpec; a pod field the SDK's predictor lacks is a rendering bug, refused here by name."""
    from kserve.models import V1beta1PredictorSpec

    by_json_name = {json: attr for attr, json in V1beta1PredictorSpec.attribute_map.items()}
    missing = sorted(set(pod) - set(by_json_name))
    if missing:
        raise RenderError(f"the KServe predictor has no field for pod spec field(s) {', '.join(missing)}")
    return {by_json_name[key]: value for key, value in pod.items()}
