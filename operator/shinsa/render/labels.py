"""Names, labels and owner references every child of a ModelDeployment carries."""

from __future__ import annotations

import hashlib
from typing import Any

from shinsa.api import API_VERSION, Backend, ModelDeployment

HTTP_PORT = 8000

NAME_LABEL = "app.kubernetes.io/name"
INSTANCE_LABEL = "app.kubernetes.io/instance"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MODEL_DEPLOYMENT_LABEL = "shinsa.dev/model-deployment"
KUEUE_QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
# Set by LeaderWorkerSet on every pod; "0" marks the leader, the only pod that serves the API.
LWS_WORKER_INDEX_LABEL = "leaderworkerset.sigs.k8s.io/worker-index"

PLAN_HASH_ANNOTATION = "shinsa.dev/plan-hash"
LAYOUT_ANNOTATION = "shinsa.dev/layout"

APP_NAME = "vllm"
MANAGER = "shinsa"


class RenderError(ValueError):
    """The spec and plan cannot be turned into objects; the message says which field and why."""


def identity(md: ModelDeployment) -> tuple[str, str, str]:
    """(name, namespace, uid): without all three there is no owner reference and no DNS name."""
    name, namespace, uid = md.metadata.name, md.metadata.namespace, md.metadata.uid
    if not name or not namespace or not uid:
        missing = [
            f"metadata.{key}"
            for key, value in (("name", name), ("namespace", namespace), ("uid", uid))
            if not value
        ]
        raise RenderError(f"{', '.join(missing)} must be set to render a ModelDeployment")
    return name, namespace, uid


def pod_selector(md: ModelDeployment) -> dict[str, str]:
    """The labels that select every pod of the deployment (leaders and workers alike).

    Deployment selectors are immutable, so this must stay a small, never-changing subset of the pod
    labels: adding a key here later would orphan the pods of every existing ModelDeployment.
    """
    name, _, _ = identity(md)
    return {NAME_LABEL: APP_NAME, MODEL_DEPLOYMENT_LABEL: name}


def common_labels(md: ModelDeployment) -> dict[str, str]:
    name, _, _ = identity(md)
    return {
        NAME_LABEL: APP_NAME,
        INSTANCE_LABEL: name,
        MANAGED_BY_LABEL: MANAGER,
        MODEL_DEPLOYMENT_LABEL: name,
    }


def workload_labels(md: ModelDeployment) -> dict[str, str]:
    """Labels of the object that owns the pods. Kueue reads the queue name from the workload object
    (Deployment, LeaderWorkerSet) and manages the pod templates itself; putting it on the pods as well
    would make Kueue's plain-pod integration admit each pod on its own."""
    labels = common_labels(md)
    if md.spec.scheduling.queue_name:
        labels[KUEUE_QUEUE_LABEL] = md.spec.scheduling.queue_name
    return labels


def owner_reference(md: ModelDeployment) -> dict[str, Any]:
    name, _, uid = identity(md)
    return {
        "apiVersion": API_VERSION,
        "kind": md.kind,
        "name": name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def object_meta(md: ModelDeployment, name: str, *, labels: dict[str, str] | None = None) -> dict[str, Any]:
    _, namespace, _ = identity(md)
    return {
        "name": name,
        "namespace": namespace,
        "labels": dict(labels if labels is not None else common_labels(md)),
        "ownerReferences": [owner_reference(md)],
    }


def bounded_name(base: str, suffix: str, max_length: int) -> str:
    """`base-suffix`, shortened with a hash of `base` when too long, so two long names that share a
    prefix still get different children."""
    full = f"{base}-{suffix}"
    if len(full) <= max_length:
        return full
    digest = hashlib.sha256(base.encode()).hexdigest()[:6]
    keep = max_length - len(suffix) - len(digest) - 2
    return f"{base[:keep].rstrip('-.')}-{digest}-{suffix}"


def service_name(md: ModelDeployment) -> str:
    name, _, _ = identity(md)
    return name


def kserve_predictor_service(md: ModelDeployment) -> str:
    # KServe names the predictor's Service itself; this mirrors its convention.
    name, _, _ = identity(md)
    return f"{name}-predictor"


def endpoint_url(md: ModelDeployment) -> str:
    """The in-cluster OpenAI-compatible base URL of the deployment.

    With KServe the InferenceService owns networking: its predictor Service listens on port 80 and
    forwards to the container's port. Shinsa creates no Service of its own there, because KServe may
    already own one named after the InferenceService.
    """
    _, namespace, _ = identity(md)
    if md.spec.backend == Backend.KSERVE:
        return f"http://{kserve_predictor_service(md)}.{namespace}.svc/v1"
    return f"http://{service_name(md)}.{namespace}.svc:{HTTP_PORT}/v1"
