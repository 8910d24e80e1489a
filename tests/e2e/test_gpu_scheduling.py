"""The real kube-scheduler places GPU workloads on KWOK-simulated GPU nodes by `nvidia.com/gpu`."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client

from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e

GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


def gpu_pod_spec(gpus: int) -> dict[str, Any]:
    return {
        "tolerations": [GPU_TOLERATION],
        "containers": [
            {"name": "main", "image": "busybox", "resources": {"limits": {"nvidia.com/gpu": str(gpus)}}}
        ],
    }


def test_two_gpu_deployment_is_bound_to_a_gpu_node_with_free_gpus(
    kube: client.ApiClient, namespace: str
) -> None:
    apps, core = client.AppsV1Api(kube), client.CoreV1Api(kube)
    apps.create_namespaced_deployment(
        namespace,
        {
            "metadata": {"name": "two-gpus"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "two-gpus"}},
                "template": {"metadata": {"labels": {"app": "two-gpus"}}, "spec": gpu_pod_spec(2)},
            },
        },
    )

    def running_pod() -> client.V1Pod | None:
        pods = core.list_namespaced_pod(namespace, label_selector="app=two-gpus").items
        return next((p for p in pods if p.spec.node_name and p.status.phase == "Running"), None)

    pod = eventually(running_pod, what="the pod to be bound and Running")
    node = core.read_node(pod.spec.node_name)
    assert node.metadata.labels["nvidia.com/gpu.product"] == "NVIDIA-H100-80GB-HBM3"
    # The scheduler placed it where its 2 GPUs were free: everything bound there fits the node.
    bound = core.list_pod_for_all_namespaces(field_selector=f"spec.nodeName={pod.spec.node_name}").items
    in_use = sum(
        int((c.resources.limits or {}).get("nvidia.com/gpu", 0))
        for p in bound
        if p.status.phase not in ("Succeeded", "Failed")
        for c in p.spec.containers
    )
    assert 2 <= in_use <= int(node.status.allocatable["nvidia.com/gpu"])
    assert any(t.key == "nvidia.com/gpu" and t.effect == "NoSchedule" for t in node.spec.taints)

    def ready_replicas() -> int | None:
        status = apps.read_namespaced_deployment_status("two-gpus", namespace).status
        return status.ready_replicas if status.ready_replicas == 1 else None

    eventually(ready_replicas, what="the Deployment to report one ready replica")


def test_pod_asking_for_more_gpus_than_any_node_has_stays_pending_as_unschedulable(
    kube: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(kube)
    core.create_namespaced_pod(namespace, {"metadata": {"name": "nine-gpus"}, "spec": gpu_pod_spec(9)})

    def unschedulable() -> client.V1PodCondition | None:
        pod = core.read_namespaced_pod("nine-gpus", namespace)
        return next(
            (
                c
                for c in pod.status.conditions or []
                if c.type == "PodScheduled" and c.reason == "Unschedulable"
            ),
            None,
        )

    condition = eventually(unschedulable, what="the scheduler's Unschedulable condition")
    assert condition.status == "False"
    assert "Insufficient nvidia.com/gpu" in condition.message
    pod = core.read_namespaced_pod("nine-gpus", namespace)
    assert pod.status.phase == "Pending" and not pod.spec.node_name


def test_a_pod_without_the_gpu_toleration_is_kept_off_gpu_nodes(
    kube: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(kube)
    core.create_namespaced_pod(
        namespace,
        {"metadata": {"name": "cpu-only"}, "spec": {"containers": [{"name": "main", "image": "busybox"}]}},
    )
    pod = eventually(
        lambda: p if (p := core.read_namespaced_pod("cpu-only", namespace)).spec.node_name else None,
        what="the pod to be bound",
    )
    assert pod.spec.node_name.startswith("cpu-node")


def test_job_pods_complete_and_the_job_succeeds(kube: client.ApiClient, namespace: str) -> None:
    batch = client.BatchV1Api(kube)
    batch.create_namespaced_job(
        namespace,
        {
            "metadata": {"name": "once"},
            "spec": {
                "template": {
                    "spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": "busybox"}]}
                }
            },
        },
    )
    eventually(
        lambda: batch.read_namespaced_job_status("once", namespace).status.succeeded or None,
        what="the Job to succeed",
    )
