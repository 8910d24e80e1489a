"""A platform team applies ModelDeployments and watches what the operator makes of them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from tests.support.operator import InProcessOperator
from tests.support.vllm_cli import flag_value, served_model
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
GROUP, VERSION, PLURAL = "shinsa.dev", "v1alpha1", "modeldeployments"


def create(kube: client.ApiClient, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
    return dict(
        client.CustomObjectsApi(kube).create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
    )


def get(kube: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    return dict(
        client.CustomObjectsApi(kube).get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    )


def condition(md: dict[str, Any], type_: str) -> dict[str, Any] | None:
    return next((c for c in md.get("status", {}).get("conditions", []) if c["type"] == type_), None)


def wait_condition(
    kube: client.ApiClient, namespace: str, name: str, type_: str, status: str, timeout_s: float = 60
) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def probe() -> dict[str, Any] | None:
        seen.update(get(kube, namespace, name))
        found = condition(seen, type_)
        return dict(seen) if found and found["status"] == status else None

    try:
        return eventually(probe, timeout_s, what=f"{name} {type_}={status}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; status was {seen.get('status')}") from None


def wait_warning(kube: client.ApiClient, namespace: str, name: str, reason: str) -> None:
    """A Warning event with `reason` on the ModelDeployment. The operator posts it right after the
    status write that reports the transition, so it may arrive a moment after the condition."""
    core = client.CoreV1Api(kube)
    eventually(
        lambda: any(
            e.reason == reason and e.type == "Warning"
            for e in core.list_namespaced_event(namespace, field_selector=f"involvedObject.name={name}").items
        ),
        timeout_s=30,
        what=f"a {reason} Warning event on {name}",
    )


def pods_of(kube: client.ApiClient, namespace: str, name: str) -> list[client.V1Pod]:
    return (
        client.CoreV1Api(kube)
        .list_namespaced_pod(namespace, label_selector=f"shinsa.dev/model-deployment={name}")
        .items
    )


def vllm_args(pod: client.V1Pod) -> list[str]:
    container = next(c for c in pod.spec.containers if c.name == "vllm")
    return [*(container.command or []), *(container.args or [])]


def small(name: str, **spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "model": {"uri": "hf://llm-jp/llm-jp-4-8b"},
        "serving": {"maxModelLen": 8192},
        "resources": {"gpu": {"product": "NVIDIA-H100-80GB-HBM3"}},
    }
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {**base, **spec},
    }


REVIEWED_COMMIT = "0123456789abcdef0123456789abcdef01234567"

# What the issue expects of each example on 8-GPU H100-80GB nodes: GPUs per replica, the layout's
# flags, and the context length (the model's native one where the example sets none).
EXAMPLE_PLANS = {
    "llm-jp-4-8b-thinking": (1, {"--tensor-parallel-size": "1", "--max-model-len": "65536"}, False),
    "llm-jp-4-32b-a3b-thinking": (2, {"--data-parallel-size": "2", "--max-model-len": "65536"}, True),
    "qwen3-8b": (1, {"--tensor-parallel-size": "1", "--max-model-len": "32768"}, False),
    "qwen3-30b-a3b": (2, {"--data-parallel-size": "2", "--max-model-len": "32768"}, True),
}


@pytest.mark.parametrize("example", sorted(EXAMPLE_PLANS))
def test_example_becomes_ready_vllm_pods_on_gpu_nodes_with_the_planned_layout(
    kube: client.ApiClient, namespace: str, operator: InProcessOperator, example: str
) -> None:
    gpus, flags, expert_parallel = EXAMPLE_PLANS[example]
    body = yaml.safe_load((EXAMPLES / f"{example}.yaml").read_text())
    create(kube, namespace, body)
    remote_code = example.endswith("-thinking")
    if remote_code:
        # As shipped, a model that needs its own tokenizer code is refused, saying what to set:
        # Shinsa never opts into third-party code for the user.
        md = wait_condition(kube, namespace, example, "Planned", "False")
        planned = condition(md, "Planned")
        assert planned["reason"] == "PlanFailed"
        assert "spec.model.trustRemoteCode, spec.model.revision" in planned["message"], planned
        assert not pods_of(kube, namespace, example)
        # What the user does after reviewing the repository's code at a commit.
        client.CustomObjectsApi(kube).patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, example,
            {"spec": {"model": {"trustRemoteCode": True, "revision": REVIEWED_COMMIT}}},
        )  # fmt: skip

    md = wait_condition(kube, namespace, example, "Ready", "True")
    status = md["status"]
    assert status["endpoint"] == f"http://{example}.{namespace}.svc:8000/v1"
    assert status["phase"] == "Ready" and status["readyReplicas"] == 1
    assert status["gpusPerReplica"] == gpus
    assert condition(md, "Planned")["status"] == "True"
    assert condition(md, "Scheduled")["status"] == "True"
    assert status["observedGeneration"] == md["metadata"]["generation"]

    (pod,) = pods_of(kube, namespace, example)
    assert pod.spec.node_name.startswith("gpu-node")
    container = next(c for c in pod.spec.containers if c.name == "vllm")
    assert container.resources.limits["nvidia.com/gpu"] == str(gpus)
    args = vllm_args(pod)
    assert {flag: args[args.index(flag) + 1] for flag in flags} == flags
    assert ("--enable-expert-parallel" in args) is expert_parallel
    assert ("--trust-remote-code" in args) is remote_code
    if remote_code:
        assert flag_value(args, "--revision") == REVIEWED_COMMIT


def test_an_oversized_request_reports_scheduled_false_with_the_schedulers_reason(
    kube: client.ApiClient, namespace: str, operator: InProcessOperator
) -> None:
    # Three 8-GPU replicas on a cluster with two 8-GPU nodes: one replica cannot be placed.
    create(kube, namespace, small("too-big", replicas=3, parallelism={"tensor": 8}))

    md = wait_condition(kube, namespace, "too-big", "Scheduled", "False")
    scheduled = condition(md, "Scheduled")
    assert scheduled["reason"] == "InsufficientGPU"
    assert "Insufficient nvidia.com/gpu" in scheduled["message"]
    assert condition(md, "Ready")["status"] == "False"
    assert md["status"]["phase"] == "Scheduling"
    wait_warning(kube, namespace, "too-big", "InsufficientGPU")


def test_changing_max_model_len_rolls_the_workload_and_delete_removes_children(
    kube: client.ApiClient, namespace: str, operator: InProcessOperator
) -> None:
    create(kube, namespace, small("rolling"))
    wait_condition(kube, namespace, "rolling", "Ready", "True")
    assert any("8192" in vllm_args(p) for p in pods_of(kube, namespace, "rolling"))

    client.CustomObjectsApi(kube).patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "rolling", {"spec": {"serving": {"maxModelLen": 16384}}}
    )

    def rolled() -> list[client.V1Pod] | None:
        pods = [p for p in pods_of(kube, namespace, "rolling") if not p.metadata.deletion_timestamp]
        return pods if pods and all("16384" in vllm_args(p) for p in pods) else None

    eventually(rolled, what="pods running with --max-model-len 16384")
    md = eventually(
        lambda: (
            m if (m := get(kube, namespace, "rolling"))["status"].get("observedGeneration") == 2 else None
        ),
        what="the status to describe generation 2",
    )
    assert md["status"]["plan"]["maxModelLen"] == 16384
    assert md["metadata"]["generation"] == 2
    wait_condition(kube, namespace, "rolling", "Ready", "True")

    client.CustomObjectsApi(kube).delete_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "rolling"
    )
    apps, core = client.AppsV1Api(kube), client.CoreV1Api(kube)
    eventually(
        lambda: (
            not apps.list_namespaced_deployment(namespace).items
            and not core.list_namespaced_service(namespace).items
        ),
        what="the Deployment and Service to be garbage-collected",
    )


def test_the_api_server_refuses_remote_code_without_a_pinned_commit_naming_the_field(
    kube: client.ApiClient, namespace: str, crds: list[str]
) -> None:
    body = small("unpinned", model={"uri": "hf://llm-jp/llm-jp-4-8b-thinking", "trustRemoteCode": True})
    with pytest.raises(ApiException) as refused:
        create(kube, namespace, body)
    assert refused.value.status == 422
    assert "revision" in refused.value.body and "trustRemoteCode" in refused.value.body


def test_extra_args_that_collide_with_planned_flags_become_a_condition_not_a_crash(
    kube: client.ApiClient, namespace: str, operator: InProcessOperator
) -> None:
    create(kube, namespace, small("collides", serving={"extraArgs": ["--max-model-len=4096"]}))

    md = wait_condition(kube, namespace, "collides", "Planned", "False")
    planned = condition(md, "Planned")
    assert planned["reason"] == "InvalidExtraArgs"
    assert "spec.serving.extraArgs" in planned["message"] and "--max-model-len" in planned["message"]
    assert md["status"]["phase"] == "Failed"
    assert not client.AppsV1Api(kube).list_namespaced_deployment(namespace).items

    # Spellings vLLM's parser reads as owned or unplanned options, and a variable that sets the
    # data-parallel layout, are refused alike (checked against the pinned vLLM's own options).
    sneaky = {
        "extraArgs": ["--max-model=4096", "--kv-cache-memory-bytes=8g", "--no-such-option"],
        "env": [{"name": "VLLM_DP_SIZE", "value": "4"}],
    }
    create(kube, namespace, small("sneaky", serving=sneaky))
    message = condition(wait_condition(kube, namespace, "sneaky", "Planned", "False"), "Planned")["message"]
    for says in ("--max-model=4096, which Shinsa sets", "--kv-cache-memory-bytes=8g, which is not planned",
                 "--no-such-option, which this vLLM release does not accept", "VLLM_DP_SIZE"):  # fmt: skip
        assert says in message, message
    assert not client.AppsV1Api(kube).list_namespaced_deployment(namespace).items


def test_a_model_too_large_for_the_gpus_asked_for_is_refused_with_what_would_fit(
    kube: client.ApiClient, namespace: str, operator: InProcessOperator
) -> None:
    # LLM-jp-4 32B-A3B on a single 24 GiB GPU: ~60 GiB of weights cannot fit.
    body = small(
        "no-fit",
        model={"uri": "hf://llm-jp/llm-jp-4-32b-a3b"},
        resources={"gpu": {"memoryGiB": 24, "count": 1}},
    )
    create(kube, namespace, body)

    md = wait_condition(kube, namespace, "no-fit", "Planned", "False")
    planned = condition(md, "Planned")
    assert planned["reason"] == "PlanFailed"
    assert "GiB" in planned["message"] and "What would fit" in planned["message"]
    assert md["status"]["phase"] == "Failed"
    assert not client.AppsV1Api(kube).list_namespaced_deployment(namespace).items


def test_prometheus_metrics_count_reconciles_and_deployments_by_phase(
    kube: client.ApiClient, namespace: str, operator: InProcessOperator
) -> None:
    import httpx
    from prometheus_client import start_http_server
    from prometheus_client.parser import text_string_to_metric_families

    from shinsa.devcluster.cluster import free_port

    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1")
    try:
        create(kube, namespace, small("metered"))
        wait_condition(kube, namespace, "metered", "Ready", "True")

        def scrape() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
            text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
            return {
                (s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(text)
                for s in family.samples
            }

        samples = eventually(
            lambda: (
                (m if m.get(("shinsa_model_deployments", (("phase", "Ready"),)), 0) >= 1 else None)
                if (m := scrape())
                else None
            ),
            what="a Ready ModelDeployment in the metrics",
        )
        assert samples[("shinsa_reconcile_total", (("kind", "ModelDeployment"),))] >= 1
        assert samples[("shinsa_reconcile_duration_seconds_count", (("kind", "ModelDeployment"),))] >= 1

        # A deleted ModelDeployment leaves the gauge, also one that never had pods (no pod event
        # tells the operator about it, and it holds no finalizer for a delete handler).
        create(kube, namespace, small("unplannable", resources={"gpu": {"memoryGiB": 8, "count": 1}}))
        failed = ("shinsa_model_deployments", (("phase", "Failed"),))
        before = eventually(lambda: scrape().get(failed), what="a Failed ModelDeployment in the metrics")
        custom = client.CustomObjectsApi(kube)
        custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "unplannable")
        eventually(
            lambda: scrape()[failed] <= before - 1, what="the deleted ModelDeployment to leave the gauge"
        )
    finally:
        server.shutdown()
        thread.join(timeout=5)


def test_a_registered_model_alias_resolves_to_its_s3_source_and_plans_from_its_config_json(
    kube: client.ApiClient,
    namespace: str,
    operator: InProcessOperator,
    mlflow_server: str,
    s3_server: str,
) -> None:
    import boto3
    from mlflow.tracking import MlflowClient

    config_json = (
        Path(__file__).resolve().parents[1] / "unit" / "fixtures" / "configs" / "mistral-7b" / "config.json"
    )
    s3 = boto3.client("s3", endpoint_url=s3_server)
    s3.create_bucket(Bucket="models")
    s3.put_object(Bucket="models", Key="chat/mistral-7b/config.json", Body=config_json.read_bytes())
    registry = MlflowClient(tracking_uri=mlflow_server, registry_uri=mlflow_server)
    registry.create_registered_model("support-chat")
    version = registry.create_model_version("support-chat", source="s3://models/chat/mistral-7b")
    registry.set_registered_model_alias("support-chat", "champion", version.version)
    # The session operator's settings name this server (tests/conftest.py).

    # The pods read the weights themselves: credentials from a Secret, path-style addressing, and
    # (unset here) the endpoint the operator read the config from.
    access = {"credentialsSecretRef": "model-bucket", "virtualAddressing": False, "region": "us-east-1"}
    create(kube, namespace, small("champion", model={"uri": "models:/support-chat@champion", "s3": access}))

    md = wait_condition(kube, namespace, "champion", "Ready", "True")
    assert md["status"]["model"] == "s3://models/chat/mistral-7b (registered model support-chat version 1)"
    assert md["status"]["registeredModel"] == {
        "name": "support-chat", "version": "1", "source": "s3://models/chat/mistral-7b"
    }  # fmt: skip
    assert md["status"]["plan"]["layout"] == "TP1"
    (pod,) = pods_of(kube, namespace, "champion")
    args = vllm_args(pod)
    assert served_model(args) == "s3://models/chat/mistral-7b"
    assert args[args.index("--load-format") + 1] == "runai_streamer"
    vllm = next(c for c in pod.spec.containers if c.name == "vllm")
    env = {e.name: e for e in vllm.env}
    assert env["AWS_ENDPOINT_URL"].value == s3_server
    assert env["AWS_DEFAULT_REGION"].value == "us-east-1"
    assert env["RUNAI_STREAMER_S3_USE_VIRTUAL_ADDRESSING"].value == "0"
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        ref = env[key].value_from.secret_key_ref
        assert (ref.name, ref.key, env[key].value) == ("model-bucket", key, None)
    assert pod.spec.security_context.fs_group == pod.spec.security_context.run_as_user

    # Promotion moves the alias: the served model follows without a spec change.
    s3.put_object(Bucket="models", Key="chat/mistral-7b-v2/config.json", Body=config_json.read_bytes())
    newer = registry.create_model_version("support-chat", source="s3://models/chat/mistral-7b-v2")
    registry.set_registered_model_alias("support-chat", "champion", newer.version)
    md = eventually(
        lambda: m if "version 2" in (m := get(kube, namespace, "champion"))["status"]["model"] else None,
        what="the status to show the version the alias moved to",
    )
    assert md["status"]["model"] == "s3://models/chat/mistral-7b-v2 (registered model support-chat version 2)"
    assert md["status"]["registeredModel"]["version"] == "2"
    assert md["metadata"]["generation"] == 1
    # Followed without holding the object: deleting it must not wait for the operator.
    assert not md["metadata"].get("finalizers")
    template = client.AppsV1Api(kube).read_namespaced_deployment("champion", namespace).spec.template
    served = next(c for c in template.spec.containers if c.name == "vllm")
    args = [*(served.command or []), *(served.args or [])]
    assert served_model(args) == "s3://models/chat/mistral-7b-v2"

    # The alias moved to a version that cannot be planned (no config.json where its source says):
    # what runs is left alone, and the status says so and keeps naming what runs.
    unplannable = registry.create_model_version("support-chat", source="s3://models/chat/missing")
    registry.set_registered_model_alias("support-chat", "champion", unplannable.version)
    md = wait_condition(kube, namespace, "champion", "Planned", "False")
    assert "still serving s3://models/chat/mistral-7b-v2" in condition(md, "Planned")["message"]
    assert md["status"]["registeredModel"]["version"] == "2"
    template = client.AppsV1Api(kube).read_namespaced_deployment("champion", namespace).spec.template
    served = next(c for c in template.spec.containers if c.name == "vllm")
    assert served_model([*(served.command or []), *(served.args or [])]) == "s3://models/chat/mistral-7b-v2"
    assert len(pods_of(kube, namespace, "champion")) == 1

    create(kube, namespace, small("no-such-model", model={"uri": "models:/support-chat@nonexistent"}))
    md = wait_condition(kube, namespace, "no-such-model", "Planned", "False")
    planned = condition(md, "Planned")
    assert planned["reason"] == "ModelNotRegistered"
    assert "support-chat" in planned["message"]


def test_a_crash_looping_server_shows_degraded_with_the_container_state(
    kube: client.ApiClient, namespace: str, operator: InProcessOperator
) -> None:
    from shinsa.devcluster.cluster import SIMULATE_ANNOTATION

    create(kube, namespace, small("crashing"))
    wait_condition(kube, namespace, "crashing", "Ready", "True")

    # What a vLLM that exits at start-up looks like to the API: KWOK's crash-loop simulation,
    # switched on in the pod template by another field manager than the operator.
    client.AppsV1Api(kube).patch_namespaced_deployment(
        "crashing",
        namespace,
        {"spec": {"template": {"metadata": {"annotations": {SIMULATE_ANNOTATION: "crash-loop"}}}}},
    )

    md = wait_condition(kube, namespace, "crashing", "Degraded", "True")
    degraded = condition(md, "Degraded")
    assert degraded["reason"] == "CrashLoop"
    assert "CrashLoopBackOff" in degraded["message"]
    assert md["status"]["phase"] == "Degraded"
    wait_warning(kube, namespace, "crashing", "CrashLoop")


def test_a_model_on_a_volume_is_planned_from_the_config_json_its_reader_job_returns(
    kube: client.ApiClient, namespace: str, operator: InProcessOperator
) -> None:
    import base64
    import gzip

    from prometheus_client import REGISTRY

    from shinsa.render.config_reader import READER_LABEL

    core = client.CoreV1Api(kube)
    volume = f"models-{namespace}"
    core.create_persistent_volume(
        {
            "metadata": {"name": volume},
            "spec": {
                "capacity": {"storage": "100Gi"},
                "accessModes": ["ReadOnlyMany"],
                "hostPath": {"path": "/srv/models"},
                "storageClassName": "",
                "persistentVolumeReclaimPolicy": "Retain",
            },
        }
    )
    try:
        core.create_namespaced_persistent_volume_claim(
            namespace,
            {
                "metadata": {"name": "model-store"},
                "spec": {
                    "accessModes": ["ReadOnlyMany"],
                    "resources": {"requests": {"storage": "100Gi"}},
                    "storageClassName": "",
                    "volumeName": volume,
                },
            },
        )
        # The operator runs in this process: its metrics are what a scrape would return.
        errors = {"kind": "ModelDeployment", "reason": "TemporaryError"}

        def retried() -> float:
            return REGISTRY.get_sample_value("shinsa_reconcile_errors_total", errors) or 0

        retried_before = retried()

        # Not a catalog model: only its config.json can say how big it is.
        create(kube, namespace, small("on-volume", model={"uri": "pvc://model-store/chat/mistral-7b"}))
        md = wait_condition(kube, namespace, "on-volume", "Planned", "False")
        assert condition(md, "Planned")["reason"] == "ConfigPending"
        assert md["status"]["phase"] == "Pending"  # retried, not failed
        # Each retry while the reader runs is a reconcile that ended in kopf's TemporaryError (counted
        # as the reconcile returns, just after it wrote the condition).
        eventually(
            lambda: retried() > retried_before,
            timeout_s=30,
            what="the retried reconcile in shinsa_reconcile_errors_total",
        )
        job = client.BatchV1Api(kube).read_namespaced_job("on-volume-config", namespace)
        (claim,) = job.spec.template.spec.volumes
        assert (claim.persistent_volume_claim.claim_name, claim.persistent_volume_claim.read_only) == (
            "model-store",
            True,
        )

        # KWOK runs no containers: play the kubelet, which puts the file the reader wrote to its
        # termination log into the finished pod's status.
        reader = eventually(
            lambda: next(
                (
                    p
                    for p in core.list_namespaced_pod(
                        namespace, label_selector=f"{READER_LABEL}=on-volume"
                    ).items
                    if p.status.phase == "Succeeded"
                ),
                None,
            ),
            what="the config reader's pod to finish",
        )
        config = (
            Path(__file__).resolve().parents[1]
            / "unit"
            / "fixtures"
            / "configs"
            / "mistral-7b"
            / "config.json"
        )
        message = base64.b64encode(gzip.compress(config.read_bytes())).decode()
        core.patch_namespaced_pod_status(
            reader.metadata.name,
            namespace,
            {
                "status": {
                    "containerStatuses": [
                        {
                            "name": "read-config",
                            "image": reader.spec.containers[0].image,
                            "imageID": "",
                            "ready": False,
                            "restartCount": 0,
                            "state": {
                                "terminated": {"exitCode": 0, "reason": "Completed", "message": message}
                            },
                        }
                    ]
                }
            },
        )

        md = wait_condition(kube, namespace, "on-volume", "Ready", "True")
        assert md["status"]["plan"]["layout"] == "TP1"
        assert md["status"]["plan"]["totalParams"] > 7_000_000_000
        (pod,) = pods_of(kube, namespace, "on-volume")
        args = vllm_args(pod)
        assert served_model(args) == "/models/pvc/chat/mistral-7b"
    finally:
        core.delete_persistent_volume(volume)
