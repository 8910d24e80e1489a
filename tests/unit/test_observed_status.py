"""How pod signals become a ModelDeployment's Scheduled / Ready / Degraded conditions and phase."""

from __future__ import annotations

from typing import Any

import pytest

from shinsa.api import ConditionStatus, ModelDeploymentPhase
from shinsa.api.conditions import get_condition, set_condition
from shinsa.controllers.observed import observe

pytestmark = pytest.mark.unit

PLANNED = set_condition([], "Planned", True, "Planned", "TP1 on 1 GPU(s) per replica", observed_generation=1)


def pod(
    name: str,
    *,
    node: str | None = "gpu-node-0",
    ready: bool = False,
    unschedulable: str | None = None,
    waiting: str | None = None,
    restarts: int = 0,
) -> dict[str, Any]:
    conditions = []
    if unschedulable is not None:
        conditions.append(
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": unschedulable}
        )
    elif node:
        conditions.append({"type": "PodScheduled", "status": "True"})
    conditions.append({"type": "Ready", "status": "True" if ready else "False"})
    state = {"waiting": {"reason": waiting, "message": "back-off"}} if waiting else {"running": {}}
    return {
        "metadata": {"name": name},
        "spec": {"nodeName": None if unschedulable is not None else node},
        "status": {
            "conditions": conditions,
            "containerStatuses": [{"name": "vllm", "state": state, "restartCount": restarts}],
        },
    }


def status_of(seen: Any, type_: str) -> tuple[str, str]:
    condition = get_condition(seen.conditions, type_)
    assert condition is not None
    return condition.status.value, condition.reason


def test_all_replicas_ready_means_ready_and_scheduled() -> None:
    seen = observe(PLANNED, 1, 2, 1, [pod("a", ready=True), pod("b", node="gpu-node-1", ready=True)])
    assert status_of(seen, "Ready") == ("True", "Ready")
    assert status_of(seen, "Scheduled") == ("True", "Scheduled")
    assert status_of(seen, "Degraded") == ("False", "Healthy")
    assert seen.phase == ModelDeploymentPhase.READY and seen.ready_replicas == 2


def test_a_pod_short_of_gpus_is_reported_as_insufficient_gpu_with_the_schedulers_message() -> None:
    message = "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."
    seen = observe(PLANNED, 1, 2, 1, [pod("a", ready=True), pod("b", unschedulable=message)])
    status, reason = status_of(seen, "Scheduled")
    assert (status, reason) == ("False", "InsufficientGPU")
    scheduled = get_condition(seen.conditions, "Scheduled")
    assert scheduled is not None and message in scheduled.message
    assert status_of(seen, "Ready") == ("False", "InsufficientGPU")
    assert seen.phase == ModelDeploymentPhase.SCHEDULING


def test_other_scheduler_refusals_keep_the_schedulers_reason() -> None:
    message = "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector."
    seen = observe(PLANNED, 1, 1, 1, [pod("a", unschedulable=message)])
    assert status_of(seen, "Scheduled") == ("False", "Unschedulable")


def test_scheduled_but_not_ready_pods_are_loading() -> None:
    seen = observe(PLANNED, 1, 1, 1, [pod("a")])
    assert status_of(seen, "Ready") == ("False", "Loading")
    assert seen.phase == ModelDeploymentPhase.LOADING


def test_a_crash_looping_container_marks_the_deployment_degraded() -> None:
    seen = observe(PLANNED, 1, 1, 1, [pod("a", waiting="CrashLoopBackOff", restarts=5)])
    assert status_of(seen, "Degraded") == ("True", "CrashLoop")
    assert status_of(seen, "Ready") == ("False", "CrashLoop")
    assert seen.phase == ModelDeploymentPhase.DEGRADED


def test_a_multi_node_replica_is_ready_only_when_leader_and_workers_are() -> None:
    pods = [pod("leader", ready=True), pod("worker", node="gpu-node-1")]
    assert observe(PLANNED, 1, 1, 2, pods).ready_replicas == 0
    pods[1] = pod("worker", node="gpu-node-1", ready=True)
    assert observe(PLANNED, 1, 1, 2, pods).ready_replicas == 1


def test_a_failed_plan_fails_the_deployment_without_looking_at_pods() -> None:
    failed = set_condition([], "Planned", False, "PlanFailed", "does not fit", observed_generation=3)
    seen = observe(failed, 3, 1, 1, [])
    assert status_of(seen, "Ready") == ("False", "PlanFailed")
    assert get_condition(seen.conditions, "Scheduled").status == ConditionStatus.UNKNOWN  # type: ignore[union-attr]
    assert seen.phase == ModelDeploymentPhase.FAILED


def test_unchanged_signals_keep_the_transition_time() -> None:
    first = observe(PLANNED, 1, 1, 1, [pod("a", ready=True)])
    again = observe(first.conditions, 1, 1, 1, [pod("a", ready=True)])
    assert again.conditions == first.conditions


def test_a_multi_node_replica_is_ready_only_when_every_pod_of_its_group_is() -> None:
    def member(name: str, group: str, ready: bool) -> dict[str, Any]:
        labelled = pod(name, ready=ready)
        labelled["metadata"]["labels"] = {"leaderworkerset.sigs.k8s.io/group-index": group}
        return labelled

    # Two groups of two: both leaders Ready, both workers not. No replica can serve.
    leaders_only = [member("g0-l", "0", True), member("g0-w", "0", False),
                    member("g1-l", "1", True), member("g1-w", "1", False)]  # fmt: skip
    assert observe(PLANNED, 1, 2, 2, leaders_only).ready_replicas == 0
    one_group = [member("g0-l", "0", True), member("g0-w", "0", True),
                 member("g1-l", "1", True), member("g1-w", "1", False)]  # fmt: skip
    assert observe(PLANNED, 1, 2, 2, one_group).ready_replicas == 1
