"""A multi-node ModelDeployment run by the real LeaderWorkerSet controller (tools/lws's pin).

The operator renders the LeaderWorkerSet; LWS's controller makes the leader StatefulSet, the
leader pod, the worker StatefulSet it owns and the worker pod; LWS's pod webhook gives the pods
their LWS_* environment; KWOK plays their kubelets on two simulated 8-GPU H200 nodes of this
module's own (the session's H100 nodes stay free for other tests).

What v0.8.0 does that the operator must not copy: a worker StatefulSet counts as ready once it
has its replicas (pkg/utils/statefulset StatefulsetReady compares spec.replicas with
status.replicas), so an LWS group is Available with its worker Pending. The operator's Ready reads
the pods; the first test holds a worker unschedulable to show the two apart.

A deleted pod of a group with `RecreateGroupOnPodRestart` makes LWS delete the leader (foreground,
so the worker StatefulSet and its pods go with it) and the StatefulSets recreate the whole group.
LWS acts on the pod it sees terminating (pkg/controllers/pod_controller.go handleRestartPolicy
reads its deletionTimestamp); a kubelet takes the grace period to stop the container, KWOK removes
the pod within milliseconds, so whether LWS sees it is a race (it won in the runs here). The test
holds the pod terminating with a finalizer of its own until LWS has reacted, as a kubelet would,
which also makes the not-Ready state in between observable.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from shinsa.devcluster.cluster import LocalCluster, NodePool
from shinsa.devcluster.lws import NAME_LABEL, RunningLws
from tests.e2e.test_backends import model_deployment, rendered_children
from tests.e2e.test_model_deployment import condition, create, get, wait_condition
from tests.support.lws import (
    GROUP_INDEX_LABEL,
    LWS_ENV,
    WORKER_INDEX_LABEL,
    container_env,
    exec_words,
    expand,
    get_lws,
    group_pods,
    is_ready,
    lws_condition,
    option,
    shell_value,
    unresolved_references,
)
from tests.support.operator import InProcessOperator
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e

H200 = "NVIDIA-H200"
# Four nodes: two groups of two for the test with two replicas.
POOL = NodePool("lws-h200", 4, gpus=8, gpu_product=H200)
GPUS_PER_NODE = 8
HOLD_FINALIZER = "shinsa.dev/test-terminating"
NAME = "moe"
LWS_NAME = f"{NAME}-lws"
LEADER, WORKER = f"{LWS_NAME}-0", f"{LWS_NAME}-0-1"


@pytest.fixture(scope="module")
def h200_nodes(cluster: LocalCluster) -> Iterator[list[str]]:
    names = cluster.ensure_nodes([POOL])
    try:
        yield names
    finally:
        core = client.CoreV1Api(cluster.api())
        for name in names:
            core.delete_node(name)


def _cordon(kube: client.ApiClient, nodes: list[str], unschedulable: bool) -> None:
    for node in nodes:
        client.CoreV1Api(kube).patch_node(node, {"spec": {"unschedulable": unschedulable}})


def _unschedulable(pod: client.V1Pod | None) -> client.V1Pod | None:
    conditions = (pod.status.conditions or []) if pod else []
    scheduled = next((c for c in conditions if c.type == "PodScheduled"), None)
    return pod if scheduled and scheduled.status == "False" else None


def multi_node_moe(name: str, replicas: int = 1) -> dict[str, Any]:
    """LLM-jp-4 32B-A3B over 16 data-parallel ranks with expert parallelism: two 8-GPU H200 nodes."""
    return model_deployment(
        name,
        replicas=replicas,
        backend="leaderworkerset",
        model={"uri": "hf://llm-jp/llm-jp-4-32b-a3b"},
        serving={"maxModelLen": 8192},
        resources={"gpu": {"product": H200}},
        parallelism={"data": 16, "expert": 16},
    )


def _pods_ready(kube: client.ApiClient, namespace: str) -> dict[str, client.V1Pod] | None:
    pods = group_pods(kube, namespace, LWS_NAME)
    return pods if set(pods) == {LEADER, WORKER} and all(map(is_ready, pods.values())) else None


def _md_ready(kube: client.ApiClient, namespace: str) -> dict[str, Any] | None:
    md = get(kube, namespace, NAME)
    ready = condition(md, "Ready")
    return md if ready and ready["status"] == "True" and md["status"].get("readyReplicas") == 1 else None


@pytest.fixture
def running_group(
    kube: client.ApiClient,
    namespace: str,
    operator: InProcessOperator,
    lws: RunningLws,
    h200_nodes: list[str],
) -> Iterator[dict[str, client.V1Pod]]:
    """The ModelDeployment with its group of two pods Ready, all nodes but one held back at first:
    the worker stays Pending while LWS already calls the group Available."""
    _cordon(kube, h200_nodes[1:], True)
    try:
        create(kube, namespace, multi_node_moe(NAME))
        wait_condition(kube, namespace, NAME, "Planned", "True")

        eventually(
            lambda: _unschedulable(group_pods(kube, namespace, LWS_NAME).get(WORKER)),
            what="the worker pod to be made and stay unschedulable",
        )

        def lws_available() -> dict[str, Any] | None:
            found = get_lws(kube, namespace, LWS_NAME)
            available = lws_condition(found, "Available")
            return found if available and available["status"] == "True" else None

        reported = eventually(lws_available, what="LWS to report the group Available")
        assert reported["status"]["readyReplicas"] == 1
        # ... while the operator, which reads the pods, does not call it Ready.
        md = wait_condition(kube, namespace, NAME, "Scheduled", "False")
        assert condition(md, "Ready")["status"] == "False", condition(md, "Ready")
        assert md["status"].get("readyReplicas", 0) == 0
        assert WORKER in condition(md, "Scheduled")["message"]
    finally:
        _cordon(kube, h200_nodes[1:], False)
    pods = eventually(lambda: _pods_ready(kube, namespace), what="leader and worker pods Ready")
    eventually(lambda: _md_ready(kube, namespace), what="the ModelDeployment Ready with one replica")
    yield pods


def test_the_real_controller_makes_the_group_the_operator_rendered_and_ready_waits_for_its_pods(
    kube: client.ApiClient, namespace: str, running_group: dict[str, client.V1Pod], h200_nodes: list[str]
) -> None:
    apps, core = client.AppsV1Api(kube), client.CoreV1Api(kube)
    md = get(kube, namespace, NAME)
    lws = get_lws(kube, namespace, LWS_NAME)
    assert lws["metadata"]["ownerReferences"][0]["uid"] == md["metadata"]["uid"]

    # The leader StatefulSet is the LWS's; the worker StatefulSet of group 0 is its leader pod's.
    leader_sts = apps.read_namespaced_stateful_set(LWS_NAME, namespace)
    worker_sts = apps.read_namespaced_stateful_set(LEADER, namespace)
    leader, worker = running_group[LEADER], running_group[WORKER]
    assert leader_sts.metadata.owner_references[0].uid == lws["metadata"]["uid"]
    assert worker_sts.metadata.owner_references[0].uid == leader.metadata.uid
    assert leader_sts.spec.replicas == 1 and worker_sts.spec.replicas == 1

    # One pod per node, on this module's nodes.
    nodes = [leader.spec.node_name, worker.spec.node_name]
    assert len(set(nodes)) == 2 and set(nodes) <= set(h200_nodes)
    assert [pod.metadata.labels[WORKER_INDEX_LABEL] for pod in (leader, worker)] == ["0", "1"]
    assert leader.metadata.labels[GROUP_INDEX_LABEL] == worker.metadata.labels[GROUP_INDEX_LABEL] == "0"

    # The operator's status reflects the group.
    assert md["status"]["phase"] == "Ready"
    assert md["status"]["plan"]["nodesPerReplica"] == 2
    scheduled = condition(md, "Scheduled")
    assert scheduled["status"] == "True" and all(node in scheduled["message"] for node in nodes)

    # What the operator rendered reached both pods unchanged through LWS and its webhooks.
    group = lws["spec"]["leaderWorkerTemplate"]
    rendered = rendered_children(md)["LeaderWorkerSet"]["spec"]["leaderWorkerTemplate"]
    (leader_c,), (worker_c,) = leader.spec.containers, worker.spec.containers
    for pod_c, template in ((leader_c, "leaderTemplate"), (worker_c, "workerTemplate")):
        (stored,) = group[template]["spec"]["containers"]
        (pure,) = rendered[template]["spec"]["containers"]
        assert pod_c.command == stored["command"] == pure["command"], template
        assert (pod_c.args or []) == stored.get("args", []) == pure.get("args", []), template

    # The pod webhook's environment: the leader's DNS name, the group size, each pod's index.
    leader_env, worker_env = container_env(leader, leader_c), container_env(worker, worker_c)
    address = f"{LEADER}.{LWS_NAME}.{namespace}"
    for env, index in ((leader_env, "0"), (worker_env, "1")):
        assert {name: env.get(name) for name in LWS_ENV} == {
            "LWS_LEADER_ADDRESS": address,
            "LWS_GROUP_SIZE": "2",
            "LWS_WORKER_INDEX": index,
        }
    # The name resolves through the headless Service LWS made for its pods.
    assert leader.spec.hostname == LEADER and leader.spec.subdomain == LWS_NAME
    headless = core.read_namespaced_service(LWS_NAME, namespace)
    assert headless.spec.cluster_ip == "None" and headless.spec.selector[NAME_LABEL] == LWS_NAME

    # The leader's command line as its kubelet expands it: every $(VAR) is defined, the
    # data-parallel coordinator binds the leader's own pod IP (ZMQ does not resolve names on bind).
    leader_words = [*leader_c.command, *(leader_c.args or [])]
    assert unresolved_references(leader_words, leader_env) == []
    leader_argv = [expand(word, leader_env) for word in leader_words]
    assert leader_argv[:2] == ["vllm", "serve"] and "--headless" not in leader_argv
    assert option(leader_argv, "--data-parallel-address") == leader.status.pod_ip
    assert option(leader_argv, "--data-parallel-size") == "16"
    assert option(leader_argv, "--data-parallel-size-local") == str(GPUS_PER_NODE)

    # The worker's: headless, connecting to the leader's name resolved, its ranks after the
    # leader's, computed by its shell from the webhook's LWS_WORKER_INDEX.
    assert worker_c.command[:2] == ["sh", "-c"] and not worker_c.args
    assert unresolved_references(worker_c.command, worker_env) == []
    line = expand(worker_c.command[2], worker_env)
    assert '"$LWS_LEADER_ADDRESS"' in line
    words = exec_words(line)
    assert words[:2] == ["vllm", "serve"] and "--headless" in words
    assert option(words, "--data-parallel-size") == "16"
    assert option(words, "--data-parallel-address") == "${SHINSA_LEADER_IP}"
    assert shell_value(option(words, "--data-parallel-start-rank"), worker_env) == str(GPUS_PER_NODE)

    # Only the leader serves the API.
    service = core.read_namespaced_service(NAME, namespace)
    endpoints = eventually(
        lambda: [
            address
            for subset in core.read_namespaced_endpoints(NAME, namespace).subsets or []
            for address in subset.addresses or []
        ],
        what="the Service's endpoints",
    )
    assert service.spec.selector[WORKER_INDEX_LABEL] == "0"
    assert [a.ip for a in endpoints] == [leader.status.pod_ip]


def test_a_deleted_worker_recreates_the_whole_group_and_the_deployment_recovers(
    kube: client.ApiClient, namespace: str, running_group: dict[str, client.V1Pod]
) -> None:
    core = client.CoreV1Api(kube)
    before = {name: pod.metadata.uid for name, pod in running_group.items()}
    assert get_lws(kube, namespace, LWS_NAME)["spec"]["leaderWorkerTemplate"]["restartPolicy"] == (
        "RecreateGroupOnPodRestart"
    )

    core.patch_namespaced_pod(WORKER, namespace, {"metadata": {"finalizers": [HOLD_FINALIZER]}})
    core.delete_namespaced_pod(WORKER, namespace)
    try:

        def leader_deleting() -> client.V1Pod | None:
            pod = group_pods(kube, namespace, LWS_NAME).get(LEADER)
            return pod if pod is not None and pod.metadata.deletion_timestamp else None

        eventually(leader_deleting, what="LWS to delete the leader of the group whose worker is terminating")

        # With the group going, the operator no longer reports it Ready.
        def not_ready() -> dict[str, Any] | None:
            md = get(kube, namespace, NAME)
            ready = condition(md, "Ready")
            return md if ready and ready["status"] == "False" else None

        md = eventually(not_ready, what="the ModelDeployment to leave Ready")
        assert md["status"].get("readyReplicas", 0) == 0
    finally:
        core.patch_namespaced_pod(WORKER, namespace, {"metadata": {"finalizers": None}})

    def recreated() -> dict[str, client.V1Pod] | None:
        pods = _pods_ready(kube, namespace)
        return pods if pods and all(pods[name].metadata.uid != uid for name, uid in before.items()) else None

    eventually(recreated, timeout_s=90, what="a new leader and a new worker, both Ready")
    events = core.list_namespaced_event(namespace, field_selector=f"involvedObject.name={LWS_NAME}").items
    assert any(e.reason == "RecreateGroupOnPodRestart" and WORKER in e.message for e in events), [
        (e.reason, e.message) for e in events
    ]
    md = eventually(lambda: _md_ready(kube, namespace), what="the ModelDeployment Ready again")
    assert md["status"]["phase"] == "Ready"


def test_with_two_groups_a_replica_counts_as_ready_only_when_all_of_its_pods_are(
    kube: client.ApiClient,
    namespace: str,
    operator: InProcessOperator,
    lws: RunningLws,
    h200_nodes: list[str],
) -> None:
    """Two leaders Ready and both workers Pending: no group can serve, and LWS counts both."""
    leaders, workers = [f"{LWS_NAME}-0", f"{LWS_NAME}-1"], [f"{LWS_NAME}-0-1", f"{LWS_NAME}-1-1"]
    _cordon(kube, h200_nodes[2:], True)
    try:
        create(kube, namespace, multi_node_moe(NAME, replicas=2))

        def leaders_ready_workers_pending() -> dict[str, client.V1Pod] | None:
            pods = group_pods(kube, namespace, LWS_NAME)
            ok = all(name in pods and is_ready(pods[name]) for name in leaders) and all(
                _unschedulable(pods.get(name)) for name in workers
            )
            return pods if ok else None

        eventually(leaders_ready_workers_pending, what="both leaders Ready and both workers unschedulable")
        assert eventually(
            lambda: (get_lws(kube, namespace, LWS_NAME).get("status") or {}).get("readyReplicas") == 2,
            what="LWS to count both groups ready",
        )
        md = wait_condition(kube, namespace, NAME, "Scheduled", "False")
        assert condition(md, "Ready")["status"] == "False", condition(md, "Ready")

        # The operator refreshes its status on pod events: give it time to see both leaders Ready.
        def miscounted() -> dict[str, Any] | None:
            seen = get(kube, namespace, NAME)
            return seen if seen["status"].get("readyReplicas") else None

        try:
            md = eventually(miscounted, timeout_s=15, what="a ready replica counted")
        except AssertionError:
            md = get(kube, namespace, NAME)
        assert condition(md, "Ready")["status"] == "False", condition(md, "Ready")
        assert md["status"]["phase"] != "Ready"
        # Two Ready leaders of two groups whose workers are Pending make no ready replica.
        assert md["status"].get("readyReplicas", 0) == 0, md["status"]
    finally:
        _cordon(kube, h200_nodes[2:], False)
