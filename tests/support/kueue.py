"""Kueue objects for e2e tests: quota (ResourceFlavor, ClusterQueue, LocalQueue), GPU Jobs that
ask a LocalQueue for admission, and the lookups of what Kueue reports about them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException
from kubernetes.dynamic import DynamicClient

from shinsa.devcluster.kueue import QUEUE_LABEL
from tests.support.waiting import eventually

GROUP, VERSION = "kueue.x-k8s.io", "v1beta2"
API_VERSION = f"{GROUP}/{VERSION}"
GPU = "nvidia.com/gpu"
GPU_TOLERATION = {"key": GPU, "operator": "Exists", "effect": "NoSchedule"}


def resource_flavor(name: str, node_labels: dict[str, str] | None = None) -> dict[str, Any]:
    """A flavor; Kueue copies `node_labels` into the nodeSelector of the pods it admits with it."""
    return {
        "apiVersion": API_VERSION,
        "kind": "ResourceFlavor",
        "metadata": {"name": name},
        "spec": {"nodeLabels": node_labels or {}},
    }


def cluster_queue(
    name: str, flavor: str, *, gpus: int, cpu: str = "8", memory: str = "32Gi"
) -> dict[str, Any]:
    """A ClusterQueue with one flavor's nominal quota, open to every namespace."""
    quota = {"cpu": cpu, "memory": memory, GPU: str(gpus)}
    return {
        "apiVersion": API_VERSION,
        "kind": "ClusterQueue",
        "metadata": {"name": name},
        "spec": {
            "namespaceSelector": {},
            "resourceGroups": [
                {
                    "coveredResources": list(quota),
                    "flavors": [
                        {
                            "name": flavor,
                            "resources": [{"name": r, "nominalQuota": q} for r, q in quota.items()],
                        }
                    ],
                }
            ],
        },
    }


def local_queue(name: str, namespace: str, cluster_queue_name: str) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "LocalQueue",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"clusterQueue": cluster_queue_name},
    }


def gpu_job(
    name: str, queue: str, *, gpus: int = 1, scheduling_gates: list[str] | None = None
) -> dict[str, Any]:
    """A plain batch/v1 Job of one pod asking for `gpus` GPUs, queued in the LocalQueue `queue`
    by the label alone (Kueue's webhook suspends it until admitted). Requests equal limits, so
    what Kueue counts against quota is what the scheduler reserves on a node."""
    resources = {"cpu": "1", "memory": "1Gi", GPU: str(gpus)}
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "tolerations": [GPU_TOLERATION],
        "containers": [
            {"name": "main", "image": "busybox", "resources": {"requests": resources, "limits": resources}}
        ],
    }
    if scheduling_gates:
        pod_spec["schedulingGates"] = [{"name": gate} for gate in scheduling_gates]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": {QUEUE_LABEL: queue}},
        "spec": {"backoffLimit": 0, "template": {"spec": pod_spec}},
    }


def workload_of(kube: client.ApiClient, namespace: str, job: client.V1Job) -> dict[str, Any] | None:
    """The Workload Kueue made for `job` (it owns it), or None while there is none."""
    custom = client.CustomObjectsApi(kube)
    workloads = custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "workloads")["items"]
    return next(
        (
            w
            for w in workloads
            if any(ref.get("uid") == job.metadata.uid for ref in w["metadata"].get("ownerReferences", []))
        ),
        None,
    )


def condition(workload: dict[str, Any] | None, kind: str) -> dict[str, Any] | None:
    if workload is None:
        return None
    return next((c for c in workload.get("status", {}).get("conditions", []) if c["type"] == kind), None)


@contextmanager
def queues_applied(
    kube: client.ApiClient, objects: list[dict[str, Any]], cluster_queue_name: str
) -> Iterator[None]:
    """Create Kueue's queue objects, wait until the ClusterQueue is Active, and delete them after."""
    dynamic = DynamicClient(kube)
    for body in objects:
        resource = dynamic.resources.get(api_version=body["apiVersion"], kind=body["kind"])
        dynamic.create(resource, body=body, namespace=body["metadata"].get("namespace"))

    def active() -> bool:
        got = client.CustomObjectsApi(kube).get_cluster_custom_object(
            "kueue.x-k8s.io", "v1beta2", "clusterqueues", cluster_queue_name
        )
        return any(
            c["type"] == "Active" and c["status"] == "True"
            for c in got.get("status", {}).get("conditions", [])
        )

    eventually(active, what="the ClusterQueue to be Active")
    yield
    for body in reversed(objects):
        resource = dynamic.resources.get(api_version=body["apiVersion"], kind=body["kind"])
        try:
            dynamic.delete(
                resource, name=body["metadata"]["name"], namespace=body["metadata"].get("namespace")
            )
        except ApiException as exc:
            if exc.status != 404:
                raise
