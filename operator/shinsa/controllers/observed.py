"""Pure: a ModelDeployment's conditions and phase from what its pods report.

`Scheduled`, `Ready` and `Degraded` are read from real signals (the scheduler's PodScheduled
condition, pod readiness, container restarts); `Ready` is what the printer column shows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from shinsa.api import Condition, ConditionStatus, ModelDeploymentPhase
from shinsa.api.conditions import get_condition, set_condition
from shinsa.api.lifecycle import ModelDeploymentCondition as Cond
from shinsa.api.lifecycle import ModelDeploymentReason as Reason

# Planned=False for these is retried by the operator and heals without a spec change.
RETRIED_PLAN_REASONS = frozenset(
    {
        Reason.BACKEND_UNAVAILABLE,
        Reason.REJECTED,
        Reason.CONFIG_PENDING,
        Reason.CONFIG_UNREADABLE,
        Reason.REGISTRY_UNAVAILABLE,
    }
)
# Restarts beyond this (or a CrashLoopBackOff) mark the deployment Degraded.
RESTARTS_DEGRADED = 3
_CRASH_REASONS = {
    "CrashLoopBackOff",
    "Error",
    "OOMKilled",
    "ImagePullBackOff",
    "ErrImagePull",
    "CreateContainerError",
}


@dataclass(frozen=True)
class Observed:
    conditions: list[Condition]
    phase: ModelDeploymentPhase
    replicas: int
    ready_replicas: int


def _pod_condition(pod: dict[str, Any], type_: str) -> dict[str, Any] | None:
    return next((c for c in pod.get("status", {}).get("conditions") or [] if c.get("type") == type_), None)


def _is_ready(pod: dict[str, Any]) -> bool:
    ready = _pod_condition(pod, Reason.READY)
    return bool(ready and ready.get("status") == "True") and not pod["metadata"].get("deletionTimestamp")


def _crash(pod: dict[str, Any]) -> str | None:
    for container in pod.get("status", {}).get("containerStatuses") or []:
        waiting = (container.get("state") or {}).get("waiting") or {}
        terminated = (container.get("lastState") or {}).get("terminated") or {}
        where = f"pod {pod['metadata']['name']} container {container['name']}"
        if waiting.get("reason") in _CRASH_REASONS:
            return f"{where}: {waiting['reason']} {waiting.get('message', '')}".strip()
        if (restarts := container.get("restartCount", 0)) > RESTARTS_DEGRADED:
            return f"{where} restarted {restarts} times ({terminated.get('reason') or 'restarting'})"
    return None


def _unschedulable_reason(message: str) -> Reason:
    return Reason.INSUFFICIENT_GPU if "Insufficient nvidia.com/gpu" in message else Reason.UNSCHEDULABLE


# LeaderWorkerSet labels every pod of a group with the group's index (LWS v0.8.0,
# api/leaderworkerset/v1/leaderworkerset_types.go: GroupIndexLabelKey).
LWS_GROUP_INDEX_LABEL = "leaderworkerset.sigs.k8s.io/group-index"


def observe(
    conditions: Sequence[Condition],
    generation: int | None,
    desired_replicas: int,
    pods_per_replica: int,
    pods: Sequence[dict[str, Any]],
) -> Observed:
    """Update Scheduled, Ready and Degraded from `pods` (all pods of the deployment) and derive the
    phase. `Planned` is left as the reconcile wrote it."""
    live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    unscheduled = [
        (p, pod_scheduled)
        for p in live
        if (pod_scheduled := _pod_condition(p, "PodScheduled")) is not None
        and pod_scheduled.get("status") == "False"
    ]
    # A replica is ready when all of its pods (leader and workers) are: a multi-node replica is one
    # LeaderWorkerSet group, its pods labelled with the group's index.
    group_of = [p["metadata"].get("labels", {}).get(LWS_GROUP_INDEX_LABEL) for p in live]
    if pods_per_replica > 1 and None not in group_of:
        groups: dict[str, list[dict[str, Any]]] = {}
        for pod, group in zip(live, group_of, strict=True):
            groups.setdefault(group, []).append(pod)
        ready_count = sum(
            1 for g in groups.values() if len(g) >= pods_per_replica and all(_is_ready(p) for p in g)
        )
    else:
        ready_count = sum(1 for p in live if _is_ready(p)) // max(pods_per_replica, 1)
    ready_replicas = min(desired_replicas, ready_count)
    replicas = len(live) // max(pods_per_replica, 1)

    def put(type_: Cond, status: ConditionStatus | bool, reason: str, message: str) -> None:
        nonlocal conditions
        conditions = set_condition(conditions, type_, status, reason, message, observed_generation=generation)

    planned = get_condition(conditions, Cond.PLANNED)
    if planned is None or planned.status != ConditionStatus.TRUE:
        put(
            Cond.SCHEDULED,
            ConditionStatus.UNKNOWN,
            Reason.NOT_PLANNED,
            "nothing to schedule until the plan succeeds",
        )
        put(
            Cond.READY,
            False,
            planned.reason if planned else Reason.NOT_PLANNED,
            planned.message if planned else "",
        )
        put(Cond.DEGRADED, False, Reason.NOT_PLANNED, "")
        return Observed(
            list(conditions),
            ModelDeploymentPhase.PENDING
            if planned is None or planned.reason in RETRIED_PLAN_REASONS
            else ModelDeploymentPhase.FAILED,
            replicas,
            0,
        )

    if unscheduled:
        pod, pod_scheduled = unscheduled[0]
        message = pod_scheduled.get("message", "")
        put(
            Cond.SCHEDULED,
            False,
            _unschedulable_reason(message),
            f"{len(unscheduled)} pod(s) cannot be placed; {pod['metadata']['name']}: {message}",
        )
    elif desired_replicas == 0:
        put(Cond.SCHEDULED, True, Reason.SCALED_TO_ZERO, "spec.replicas is 0")
    elif live and all(p.get("spec", {}).get("nodeName") for p in live):
        nodes = sorted({p["spec"]["nodeName"] for p in live})
        put(Cond.SCHEDULED, True, Reason.SCHEDULED, f"{len(live)} pod(s) on {', '.join(nodes)}")
    else:
        put(
            Cond.SCHEDULED,
            ConditionStatus.UNKNOWN,
            Reason.PENDING,
            "waiting for pods to be created and placed",
        )

    crash = next((found for p in live if (found := _crash(p))), None)
    if crash:
        put(Cond.DEGRADED, True, Reason.CRASH_LOOP, crash)
    else:
        put(Cond.DEGRADED, False, Reason.HEALTHY if live else Reason.NO_PODS, "")

    if desired_replicas == 0:
        # Not Pending: nothing is on its way, and nothing will come without a spec change.
        put(Cond.READY, False, Reason.SCALED_TO_ZERO, "spec.replicas is 0")
        phase = ModelDeploymentPhase.SCALED_TO_ZERO
    elif ready_replicas >= desired_replicas:
        put(
            Cond.READY,
            True,
            Reason.READY,
            f"{ready_replicas}/{desired_replicas} replica(s) answer on /v1/models",
        )
        phase = ModelDeploymentPhase.DEGRADED if crash else ModelDeploymentPhase.READY
    else:
        scheduled = get_condition(conditions, Cond.SCHEDULED)
        assert scheduled is not None
        if scheduled.status == ConditionStatus.FALSE:
            put(Cond.READY, False, scheduled.reason, scheduled.message)
            phase = ModelDeploymentPhase.SCHEDULING
        elif crash:
            put(Cond.READY, False, Reason.CRASH_LOOP, crash)
            phase = ModelDeploymentPhase.DEGRADED
        elif scheduled.status == ConditionStatus.TRUE:
            put(
                Cond.READY,
                False,
                Reason.LOADING,
                f"{ready_replicas}/{desired_replicas} replica(s) ready; loading the model",
            )
            phase = ModelDeploymentPhase.LOADING
        else:
            put(Cond.READY, False, Reason.PENDING, "waiting for pods")
            phase = ModelDeploymentPhase.SCHEDULING
    return Observed(list(conditions), phase, replicas, ready_replicas)
