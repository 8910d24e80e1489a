"""backend: leaderworkerset: one group of pods per replica, one pod per node, for replicas that span nodes.

The leader runs the OpenAI server and the first data-parallel ranks; workers run the remaining ranks
headless and reach the leader's coordinator at $(LWS_LEADER_ADDRESS).
"""

from __future__ import annotations

from typing import Any

from shinsa.api import ModelDeployment
from shinsa.planner import Plan
from shinsa.render.labels import (
    LWS_WORKER_INDEX_LABEL,
    bounded_name,
    identity,
    object_meta,
    pod_selector,
    workload_labels,
)
from shinsa.render.model_source import ModelSource
from shinsa.render.pod import (
    API,
    LEADER,
    VLLM_COMMAND,
    WORKER,
    api_args,
    plan_hash,
    pod_annotations,
    pod_spec,
    pod_template,
    vllm_container,
    worker_command,
)

LWS_API_VERSION = "leaderworkerset.x-k8s.io/v1"
# LeaderWorkerSet creates a headless Service named after itself, so it cannot share the
# ModelDeployment's name with Shinsa's Service. Its pods are named <lws>-<group>[-<worker>] by
# StatefulSets whose names must leave room for a revision hash within 63 characters.
LWS_NAME_MAX = 40


def lws_name(md: ModelDeployment) -> str:
    name, _, _ = identity(md)
    return bounded_name(name, "lws", LWS_NAME_MAX)


def leader_selector(md: ModelDeployment) -> dict[str, str]:
    """Only leaders serve the API; workers have no HTTP server."""
    return {**pod_selector(md), LWS_WORKER_INDEX_LABEL: "0"}


def render_leaderworkerset(md: ModelDeployment, plan: Plan, source: ModelSource) -> dict[str, Any]:
    group: dict[str, Any] = {
        "size": plan.nodes_per_replica,
        # NCCL communicators cannot re-admit a restarted rank: the whole group must start over.
        "restartPolicy": "RecreateGroupOnPodRestart",
    }
    if plan.nodes_per_replica > 1:
        leader = vllm_container(
            md, plan, source, LEADER, command=VLLM_COMMAND, args=api_args(md, plan.leader_args, source)
        )
        worker = vllm_container(
            md, plan, source, WORKER, command=worker_command(md, plan.worker_args, source)
        )
        fingerprint = plan_hash([leader, worker])
        group["leaderTemplate"] = pod_template(
            md, pod_spec(md, plan, source, [leader]), pod_annotations(plan, LEADER, fingerprint)
        )
        group["workerTemplate"] = pod_template(
            md, pod_spec(md, plan, source, [worker]), pod_annotations(plan, WORKER, fingerprint)
        )
    else:
        # A plan that fits one node still runs as a group of one, because this backend was asked for.
        # Without a leaderTemplate the leader (the only pod) is made from the worker template.
        single = vllm_container(
            md, plan, source, API, command=VLLM_COMMAND, args=api_args(md, plan.vllm_args, source)
        )
        group["workerTemplate"] = pod_template(
            md, pod_spec(md, plan, source, [single]), pod_annotations(plan, API, plan_hash([single]))
        )
    return {
        "apiVersion": LWS_API_VERSION,
        "kind": "LeaderWorkerSet",
        "metadata": object_meta(md, lws_name(md), labels=workload_labels(md)),
        "spec": {
            "replicas": md.spec.replicas,
            "leaderWorkerTemplate": group,
            # Same reasoning as the Deployment: a surge group needs a spare set of GPU nodes.
            "rolloutStrategy": {
                "type": "RollingUpdate",
                "rollingUpdateConfiguration": {"maxUnavailable": 1, "maxSurge": 0},
            },
            "startupPolicy": "LeaderCreated",
        },
    }
