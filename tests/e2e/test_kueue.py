"""The real Kueue controller admits GPU Jobs against a ClusterQueue's quota: a second Job that
does not fit stays suspended with its Workload pending, and runs once the first releases its GPU.

The first Job's pod waits at a scheduling gate of the test's own: KWOK completes a Job's pod as
soon as it runs, so without it the first Job would give its quota back before the second could
be seen waiting. Removing the gate lets it run to completion; deleting the Job is the other way
out of the queue.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from shinsa.devcluster.kueue import MUTATING_WEBHOOKS, VALIDATING_WEBHOOKS, RunningKueue
from tests.support.kueue import (
    GPU,
    cluster_queue,
    condition,
    gpu_job,
    local_queue,
    queues_applied,
    resource_flavor,
    workload_of,
)
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e

HOLD_GATE = "shinsa.dev/test-hold"
GPU_PRODUCT = "NVIDIA-H100-80GB-HBM3"


@pytest.fixture
def queue(kube: client.ApiClient, kueue: RunningKueue, namespace: str) -> Iterator[dict[str, str]]:
    """A flavor of the test cluster's H100 nodes, a ClusterQueue with a quota of one GPU and a
    LocalQueue for it in the test's namespace. Cluster-scoped names are unique per test."""
    suffix = uuid.uuid4().hex[:6]
    names = {"flavor": f"h100-{suffix}", "cluster_queue": f"one-gpu-{suffix}", "local_queue": "gpus"}
    objects = [
        resource_flavor(names["flavor"], {"nvidia.com/gpu.product": GPU_PRODUCT}),
        cluster_queue(names["cluster_queue"], names["flavor"], gpus=1),
        local_queue(names["local_queue"], namespace, names["cluster_queue"]),
    ]
    with queues_applied(kube, objects, names["cluster_queue"]):
        yield names


def _admitted(kube: client.ApiClient, namespace: str, job: client.V1Job) -> dict[str, Any] | None:
    workload = workload_of(kube, namespace, job)
    admitted = condition(workload, "Admitted")
    return workload if admitted and admitted["status"] == "True" else None


@pytest.mark.parametrize("release", ["first job completes", "first job is deleted"])
def test_a_gpu_job_over_quota_waits_suspended_until_the_first_releases_its_gpu(
    kube: client.ApiClient, namespace: str, queue: dict[str, str], release: str
) -> None:
    batch, core = client.BatchV1Api(kube), client.CoreV1Api(kube)
    first = batch.create_namespaced_job(
        namespace, gpu_job("first", queue["local_queue"], scheduling_gates=[HOLD_GATE])
    )
    # Kueue's webhook suspends a queued Job on creation; its controller admits and resumes it.
    assert first.spec.suspend is True
    eventually(lambda: _admitted(kube, namespace, first), what="the first Job's Workload to be admitted")
    eventually(
        lambda: batch.read_namespaced_job("first", namespace).spec.suspend is False,
        what="the first Job to be resumed",
    )

    second = batch.create_namespaced_job(namespace, gpu_job("second", queue["local_queue"]))
    assert second.spec.suspend is True

    def pending() -> dict[str, Any] | None:
        reserved = condition(workload_of(kube, namespace, second), "QuotaReserved")
        return reserved if reserved and reserved["status"] == "False" else None

    reserved = eventually(pending, what="the second Job's Workload to wait for quota")
    # What the scheduler of Kueue writes (pkg/scheduler/scheduler.go, flavorassigner.go).
    assert reserved["reason"] == "Pending"
    assert reserved["message"] == (
        f"couldn't assign flavors to pod set main: insufficient unused quota for {GPU} in flavor "
        f"{queue['flavor']}, 1 more needed"
    )
    admitted = condition(workload_of(kube, namespace, second), "Admitted")
    assert admitted is None or admitted["status"] == "False"
    assert batch.read_namespaced_job("second", namespace).spec.suspend is True
    assert not core.list_namespaced_pod(namespace, label_selector="job-name=second").items

    if release == "first job completes":
        pod = eventually(
            lambda: next(
                iter(core.list_namespaced_pod(namespace, label_selector="job-name=first").items), None
            ),
            what="the first Job's pod",
        )
        core.patch_namespaced_pod(
            pod.metadata.name, namespace, [{"op": "remove", "path": "/spec/schedulingGates"}]
        )
        eventually(
            lambda: batch.read_namespaced_job_status("first", namespace).status.succeeded,
            what="the first Job to succeed",
        )
    else:
        batch.delete_namespaced_job("first", namespace, propagation_policy="Background")

    workload = eventually(
        lambda: _admitted(kube, namespace, second), what="the second Job's Workload to be admitted"
    )
    assert workload["status"]["admission"]["clusterQueue"] == queue["cluster_queue"]
    [assignment] = workload["status"]["admission"]["podSetAssignments"]
    assert assignment["flavors"][GPU] == queue["flavor"]
    job = eventually(
        lambda: j if (j := batch.read_namespaced_job("second", namespace)).spec.suspend is False else None,
        what="the second Job to be resumed",
    )
    # Admitted with the flavor, the Job's pods are sent to the flavor's nodes.
    assert job.spec.template.spec.node_selector == {"nvidia.com/gpu.product": GPU_PRODUCT}
    eventually(
        lambda: batch.read_namespaced_job_status("second", namespace).status.succeeded,
        what="the second Job to succeed",
    )
    [pod] = core.list_namespaced_pod(namespace, label_selector="job-name=second").items
    assert core.read_node(pod.spec.node_name).metadata.labels["nvidia.com/gpu.product"] == GPU_PRODUCT


def test_kueue_webhooks_cover_its_kinds_and_the_enabled_integrations_only(
    kube: client.ApiClient, kueue: RunningKueue
) -> None:
    admission = client.AdmissionregistrationV1Api(kube)
    mutating = admission.read_mutating_webhook_configuration(MUTATING_WEBHOOKS).webhooks
    validating = admission.read_validating_webhook_configuration(VALIDATING_WEBHOOKS).webhooks
    intercepted = {
        (group, resource)
        for webhook in [*mutating, *validating]
        for rule in webhook.rules
        for group in rule.api_groups
        for resource in rule.resources
    }
    assert {group for group, _ in intercepted} == {"kueue.x-k8s.io", "batch", ""}
    assert {("batch", "jobs"), ("", "pods")} <= intercepted
    for webhook in [*mutating, *validating]:
        assert webhook.client_config.url.startswith(f"{kueue.webhook_url}/")
        assert webhook.failure_policy == "Fail"
    # As Kueue's kustomization patches them: pods of the system namespaces are never intercepted.
    for webhook in (w for w in [*mutating, *validating] if w.name in ("mpod.kb.io", "vpod.kb.io")):
        [expression] = webhook.namespace_selector.match_expressions
        assert expression.operator == "NotIn" and set(expression.values) == {"kube-system", "kueue-system"}
    # Kueue's kinds are served in v1beta1 too, converted by Kueue on the same server.
    crd = client.ApiextensionsV1Api(kube).read_custom_resource_definition("workloads.kueue.x-k8s.io")
    assert crd.spec.conversion.strategy == "Webhook"
    assert crd.spec.conversion.webhook.client_config.url == f"{kueue.webhook_url}/convert"
