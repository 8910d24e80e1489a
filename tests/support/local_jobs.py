"""Jobs whose pods the dev cluster's local runner really runs, and what to wait for on them."""

from __future__ import annotations

import sys
from typing import Any

from kubernetes import client

from shinsa.devcluster.local_runner import RUNNER_NODE_SELECTOR, RUNNER_TOLERATION
from tests.support.waiting import eventually


def python_job(
    name: str,
    script: str,
    *,
    args: list[str] | None = None,
    env: list[dict[str, Any]] | None = None,
    volumes: list[dict[str, Any]] | None = None,
    mounts: list[dict[str, Any]] | None = None,
    backoff_limit: int = 0,
    grace_s: int = 30,
    **container: Any,
) -> dict[str, Any]:
    """A Job of one pod running `python -c script args...` on the local runner's node: the
    nodeSelector and toleration are what an evaluation Job of the dev cluster carries. The image
    names what a cluster would pull; the runner uses the virtualenv's python instead."""
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": backoff_limit,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "nodeSelector": RUNNER_NODE_SELECTOR,
                    "tolerations": [RUNNER_TOLERATION],
                    "terminationGracePeriodSeconds": grace_s,
                    "containers": [
                        {
                            "name": "main",
                            "image": f"python:{sys.version_info.major}.{sys.version_info.minor}-slim",
                            "command": ["python", "-c", script],
                            "args": args or [],
                            "env": env or [],
                            "volumeMounts": mounts or [],
                            **container,
                        }
                    ],
                    "volumes": volumes or [],
                }
            },
        },
    }


def job_condition(kube: client.ApiClient, namespace: str, name: str, timeout_s: float = 60) -> str:
    """`Complete` or `Failed`, once the Job controller has decided (its conditions say which)."""

    def probe() -> str | None:
        status = client.BatchV1Api(kube).read_namespaced_job_status(name, namespace).status
        for condition in status.conditions or []:
            if condition.type in ("Complete", "Failed") and condition.status == "True":
                return str(condition.type)
        return None

    return eventually(probe, timeout_s, what=f"Job {name} to complete or fail")


def job_pods(kube: client.ApiClient, namespace: str, name: str) -> list[client.V1Pod]:
    pods = client.CoreV1Api(kube).list_namespaced_pod(
        namespace, label_selector=f"batch.kubernetes.io/job-name={name}"
    )
    return sorted(pods.items, key=lambda p: p.metadata.creation_timestamp)


def terminated(pod: client.V1Pod) -> client.V1ContainerStateTerminated | None:
    (status,) = pod.status.container_statuses or [None]
    return status.state.terminated if status is not None else None
