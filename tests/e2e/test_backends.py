"""The non-default backends, checked against the real upstream CRDs.

LeaderWorkerSet and KServe's InferenceService are served from their projects' own CRDs at the
versions pinned in tools/upstream-crds.txt. Their controllers do not run here, so no pods appear:
what these tests show is that the API server accepts what the operator renders, keeps every field
of it (a CRD schema silently prunes fields it does not know), and that the ModelDeployment's status
says what was planned without claiming it is Ready.
"""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from shinsa.api import ModelDeployment
from shinsa.controllers.desired import desired_state
from shinsa.controllers.sources import resolve_architecture
from shinsa.devcluster.webhook_controllers import crd_served
from tests.e2e.test_model_deployment import GROUP, VERSION, condition, create, wait_condition, wait_warning
from tests.support.operator import InProcessOperator, operator_settings

pytestmark = pytest.mark.e2e

H100 = "NVIDIA-H100-80GB-HBM3"
GPUS_PER_NODE = 8  # the test cluster's GPU nodes (tests/conftest.py)
LWS_GROUP, LWS_VERSION, LWS_PLURAL = "leaderworkerset.x-k8s.io", "v1", "leaderworkersets"
LWS_CRD = f"{LWS_PLURAL}.{LWS_GROUP}"
ISVC_GROUP, ISVC_VERSION, ISVC_PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"


def model_deployment(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": spec,
    }


def multi_node_moe(name: str) -> dict[str, Any]:
    """LLM-jp-4 32B-A3B over 16 data-parallel ranks with expert parallelism: two 8-GPU nodes."""
    return model_deployment(
        name,
        backend="leaderworkerset",
        model={"uri": "hf://llm-jp/llm-jp-4-32b-a3b"},
        serving={"maxModelLen": 8192},
        resources={"gpu": {"product": H100}},
        parallelism={"data": 16, "expert": 16},
    )


def get_object(
    kube: client.ApiClient, group: str, version: str, plural: str, namespace: str, name: str
) -> Any:
    return client.CustomObjectsApi(kube).get_namespaced_custom_object(group, version, namespace, plural, name)


def rendered_children(md_body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """What the operator's pure core renders for this ModelDeployment, by kind."""
    md = ModelDeployment.from_body(md_body)
    arch = resolve_architecture(md, md.spec.model.uri, operator_settings())
    desired = desired_state(md, arch, GPUS_PER_NODE, md.spec.model.uri)
    return {child["kind"]: child for child in desired.children}


def dropped_fields(sent: Any, stored: Any, path: str = "") -> list[str]:
    """Fields of `sent` that `stored` lacks or holds differently. Fields only `stored` has (schema
    defaults) are fine; a field the schema does not know is pruned silently and shows up here."""
    if isinstance(sent, dict):
        if not isinstance(stored, dict):
            return [f"{path}: sent an object, stored {stored!r}"]
        return [
            problem
            for key, value in sent.items()
            for problem in (
                dropped_fields(value, stored[key], f"{path}.{key}") if key in stored else [f"{path}.{key}"]
            )
        ]
    if isinstance(sent, list):
        if not isinstance(stored, list) or len(stored) != len(sent):
            return [f"{path}: sent {sent!r}, stored {stored!r}"]
        return [
            p
            for i, (a, b) in enumerate(zip(sent, stored, strict=True))
            for p in dropped_fields(a, b, f"{path}[{i}]")
        ]
    return [] if sent == stored else [f"{path}: sent {sent!r}, stored {stored!r}"]


def assert_not_ready_without_pods(md: dict[str, Any]) -> None:
    """No backend controller runs, so no pod exists: the status must not claim otherwise."""
    ready = condition(md, "Ready")
    assert ready is not None and ready["status"] in ("False", "Unknown"), ready
    assert ready["reason"] not in ("Ready", ""), ready
    assert md["status"]["phase"] != "Ready"
    assert md["status"].get("readyReplicas", 0) == 0


# First in this file, so it runs before the session installs the upstream CRDs (tests run in file
# order, and nothing earlier installs them).
def test_without_lws_crds_a_leaderworkerset_deployment_is_backend_unavailable_until_they_are_installed(
    kube: client.ApiClient, namespace: str, operator: InProcessOperator, request: pytest.FixtureRequest
) -> None:
    if crd_served(kube, LWS_CRD):
        pytest.skip("the LeaderWorkerSet CRD was installed earlier in this session; run this test first")
    create(kube, namespace, multi_node_moe("moe-early"))

    md = wait_condition(kube, namespace, "moe-early", "Planned", "False")
    planned = condition(md, "Planned")
    assert planned["reason"] == "BackendUnavailable"
    assert "spec.backend=leaderworkerset" in planned["message"]
    assert "LeaderWorkerSet" in planned["message"] and "leaderworkerset.x-k8s.io/v1" in planned["message"]
    assert condition(md, "Ready")["status"] == "False"
    assert condition(md, "Ready")["reason"] == "BackendUnavailable"
    # The plan was made, so the status still says what it would run.
    assert md["status"]["plan"]["nodesPerReplica"] == 2
    # Nothing half-made: the Service is applied after the workload.
    with pytest.raises(ApiException) as missing:
        client.CoreV1Api(kube).read_namespaced_service("moe-early", namespace)
    assert missing.value.status == 404

    wait_warning(kube, namespace, "moe-early", "BackendUnavailable")

    # A platform team installs LeaderWorkerSet; the operator's retry picks it up without any edit.
    request.getfixturevalue("upstream_crds")
    md = wait_condition(kube, namespace, "moe-early", "Planned", "True", timeout_s=150)
    assert get_object(kube, LWS_GROUP, LWS_VERSION, LWS_PLURAL, namespace, "moe-early-lws")
    assert client.CoreV1Api(kube).read_namespaced_service("moe-early", namespace)


def test_a_multi_node_moe_deployment_becomes_a_leaderworkerset_the_real_crd_keeps_whole(
    kube: client.ApiClient, namespace: str, operator: InProcessOperator, upstream_crds: list[str]
) -> None:
    create(kube, namespace, multi_node_moe("moe"))

    md = wait_condition(kube, namespace, "moe", "Planned", "True")
    status = md["status"]
    assert status["plan"]["nodesPerReplica"] == 2
    assert status["gpusPerReplica"] == 16 and status["gpus"] == 16
    assert "x2 nodes" in status["layout"]
    assert "x2 nodes" in condition(md, "Planned")["message"]
    assert status["endpoint"] == f"http://moe.{namespace}.svc:8000/v1"
    assert_not_ready_without_pods(md)

    lws = get_object(kube, LWS_GROUP, LWS_VERSION, LWS_PLURAL, namespace, "moe-lws")
    assert lws["metadata"]["ownerReferences"][0]["uid"] == md["metadata"]["uid"]
    group = lws["spec"]["leaderWorkerTemplate"]
    assert lws["spec"]["replicas"] == 1 and group["size"] == 2
    (leader,) = group["leaderTemplate"]["spec"]["containers"]
    (worker,) = group["workerTemplate"]["spec"]["containers"]
    for container in (leader, worker):
        assert container["resources"]["limits"]["nvidia.com/gpu"] == str(GPUS_PER_NODE)
    leader_args = [*leader["command"], *leader["args"]]
    assert leader_args[:2] == ["vllm", "serve"]
    # The leader binds on its pod IP (ZMQ cannot bind a DNS name); the API server kept the downward
    # API reference that gives it.
    assert leader_args[leader_args.index("--data-parallel-address") + 1] == "$(SHINSA_POD_IP)"
    (pod_ip,) = [e for e in leader["env"] if e["name"] == "SHINSA_POD_IP"]
    assert pod_ip["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    assert leader_args[leader_args.index("--data-parallel-size") + 1] == "16"
    assert leader_args[leader_args.index("--data-parallel-size-local") + 1] == "8"
    assert "--enable-expert-parallel" in leader_args and "--headless" not in leader_args
    assert worker["command"][:2] == ["sh", "-c"]
    worker_line = worker["command"][2]
    assert "--headless" in worker_line
    assert "--data-parallel-start-rank $((LWS_WORKER_INDEX*8))" in worker_line
    assert "--data-parallel-address ${SHINSA_LEADER_IP}" in worker_line
    assert '"$LWS_LEADER_ADDRESS"' in worker_line  # resolved before vLLM starts

    # The schema accepted the object and pruned nothing of it.
    sent = rendered_children(md)["LeaderWorkerSet"]
    assert dropped_fields(sent["spec"], lws["spec"], ".spec") == []
    assert dropped_fields(sent["metadata"]["labels"], lws["metadata"]["labels"], ".metadata.labels") == []

    # Only leaders serve the API.
    service = client.CoreV1Api(kube).read_namespaced_service("moe", namespace)
    assert service.spec.selector["leaderworkerset.sigs.k8s.io/worker-index"] == "0"


def test_a_kserve_deployment_becomes_an_inference_service_the_real_crd_keeps_whole(
    kube: client.ApiClient, namespace: str, operator: InProcessOperator, upstream_crds: list[str]
) -> None:
    create(
        kube,
        namespace,
        model_deployment(
            "dense",
            backend="kserve",
            model={"uri": "hf://llm-jp/llm-jp-4-8b"},
            serving={"maxModelLen": 8192},
            resources={"gpu": {"product": H100}},
            parallelism={"tensor": 2},
        ),
    )

    md = wait_condition(kube, namespace, "dense", "Planned", "True")
    assert md["status"]["gpusPerReplica"] == 2
    assert md["status"]["endpoint"] == f"http://dense-predictor.{namespace}.svc/v1"
    assert_not_ready_without_pods(md)

    isvc = get_object(kube, ISVC_GROUP, ISVC_VERSION, ISVC_PLURAL, namespace, "dense")
    assert isvc["metadata"]["ownerReferences"][0]["uid"] == md["metadata"]["uid"]
    assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "RawDeployment"
    predictor = isvc["spec"]["predictor"]
    assert predictor["minReplicas"] == predictor["maxReplicas"] == 1
    (container,) = predictor["containers"]
    assert container["name"] == "kserve-container"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "2"
    args = [*container["command"], *container["args"]]
    assert args[args.index("--tensor-parallel-size") + 1] == "2"

    sent = rendered_children(md)["InferenceService"]
    assert dropped_fields(sent["spec"], isvc["spec"], ".spec") == []
    assert dropped_fields(sent["metadata"], isvc["metadata"], ".metadata") == []
    # KServe owns the networking: Shinsa makes no Service of its own.
    with pytest.raises(ApiException) as missing:
        client.CoreV1Api(kube).read_namespaced_service("dense", namespace)
    assert missing.value.status == 404
