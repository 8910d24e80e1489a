"""render turns a ModelDeployment and the planner's plan into the objects that serve it: the GPUs the plan
asked for, pods that land only on those GPUs, weights loaded from where the spec says, and children the
ModelDeployment owns."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from shinsa.api import DEFAULT_VLLM_IMAGE, ModelDeployment
from shinsa.planner import Plan, PlanRequest, lookup_model, plan, resolve_gpu
from shinsa.render import (
    LWS_WORKER_INDEX_LABEL,
    PLAN_HASH_ANNOTATION,
    RenderError,
    endpoint_url,
    pod_selector,
    render_model_deployment,
    resolve_model_source,
    vllm_model_argument,
)
from tests.support.manifests import H100, model_deployment
from tests.support.vllm_cli import flag_value, served_model

pytestmark = pytest.mark.unit

SHA = "0123456789abcdef0123456789abcdef01234567"


def plan_for(md: ModelDeployment, preset: str = "llm-jp-4-8b", gpu: str = "H100-80GB", **pins: Any) -> Plan:
    """What the controller does: plan with --model as render will load it."""
    spec = md.spec
    return plan(
        PlanRequest(
            architecture=lookup_model(preset).architecture,
            gpu=resolve_gpu(gpu),
            model=vllm_model_argument(spec.model.uri) if not spec.model.uri.startswith("models:/") else "x",
            served_name=spec.model.served_name or md.metadata.name,
            revision=spec.model.revision,
            trust_remote_code=spec.model.trust_remote_code,
            max_model_len=spec.serving.max_model_len,
            target_concurrency=spec.resources.gpu.target_concurrency,
            backend=spec.backend.value,
            **pins,
        )
    )


def render(md: ModelDeployment, result: Plan | None = None, **kwargs: Any) -> list[dict[str, Any]]:
    return render_model_deployment(md, result or plan_for(md), **kwargs)


def pod_templates(child: dict[str, Any]) -> list[dict[str, Any]]:
    if child["kind"] == "Deployment":
        return [child["spec"]["template"]]
    if child["kind"] == "LeaderWorkerSet":
        group = child["spec"]["leaderWorkerTemplate"]
        return [group[key] for key in ("leaderTemplate", "workerTemplate") if key in group]
    raise AssertionError(child["kind"])


def deployment_pod(md: ModelDeployment, result: Plan | None = None, **kwargs: Any) -> dict[str, Any]:
    deployment = render(md, result, **kwargs)[0]
    assert deployment["kind"] == "Deployment"
    return deployment["spec"]["template"]  # type: ignore[no-any-return]


def container(template: dict[str, Any]) -> dict[str, Any]:
    (only,) = template["spec"]["containers"]
    return only  # type: ignore[no-any-return]


def moe_model_deployment(**spec: Any) -> ModelDeployment:
    md = model_deployment(
        model={"uri": "hf://llm-jp/llm-jp-4-32b-a3b"},
        resources={"gpu": {"product": H100, "targetConcurrency": 4}},
        **spec,
    )
    md.metadata.name = "llm-jp-4-32b-a3b"
    return md


# --- children per backend ---------------------------------------------------------------------------------


def test_deployment_backend_renders_a_deployment_and_a_service_named_after_the_model_deployment() -> None:
    md = model_deployment(replicas=2)
    deployment, service = render(md)
    assert (deployment["kind"], deployment["metadata"]["name"]) == ("Deployment", "llm-jp-4-8b")
    assert (service["kind"], service["metadata"]["name"]) == ("Service", "llm-jp-4-8b")
    assert deployment["spec"]["replicas"] == 2
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"] == [{"name": "http", "port": 8000, "targetPort": 8000, "protocol": "TCP"}]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"] == pod_selector(md)
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert endpoint_url(md) == "http://llm-jp-4-8b.models.svc:8000/v1"


@pytest.mark.parametrize("backend", ["deployment", "leaderworkerset", "kserve"])
def test_every_child_is_owned_by_the_model_deployment_and_labelled_for_it(backend: str) -> None:
    md = model_deployment(backend=backend)
    children = render(md)
    assert children
    for child in children:
        meta = child["metadata"]
        assert meta["namespace"] == "models"
        assert meta["ownerReferences"] == [
            {
                "apiVersion": "shinsa.dev/v1alpha1",
                "kind": "ModelDeployment",
                "name": "llm-jp-4-8b",
                "uid": "llm-jp-4-8b-uid",
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
        assert (
            meta["labels"].items()
            >= {
                "app.kubernetes.io/name": "vllm",
                "app.kubernetes.io/instance": "llm-jp-4-8b",
                "app.kubernetes.io/managed-by": "shinsa",
                "shinsa.dev/model-deployment": "llm-jp-4-8b",
            }.items()
        )


def test_a_model_deployment_without_a_uid_cannot_own_children() -> None:
    md = model_deployment()
    md.metadata.uid = None
    with pytest.raises(RenderError, match=r"metadata\.uid"):
        render(md)


def test_rendering_is_deterministic() -> None:
    md = model_deployment()
    result = plan_for(md)
    assert render(md, result) == render(md, result)


# --- GPUs and placement ------------------------------------------------------------------------------------


@pytest.mark.parametrize("pins", [{}, {"tensor_parallel": 2}, {"tensor_parallel": 4}])
def test_each_pod_requests_the_gpus_the_plan_put_on_its_node(pins: dict[str, Any]) -> None:
    md = model_deployment()
    result = plan_for(md, **pins)
    resources = container(deployment_pod(md, result))["resources"]
    assert resources["limits"]["nvidia.com/gpu"] == str(result.gpus_per_node)
    assert resources["requests"]["nvidia.com/gpu"] == str(result.gpus_per_node)
    assert flag_value(container(deployment_pod(md, result))["args"], "--tensor-parallel-size") == str(
        result.tensor_parallel
    )
    # CPU and memory scale with the GPUs, and memory covers the memory-backed /dev/shm.
    assert resources["requests"]["cpu"] == str(4 * result.gpus_per_node)
    assert resources["requests"]["memory"] == f"{16 * result.gpus_per_node + result.shm_size_gib}Gi"


def test_a_named_product_pins_the_pods_to_nodes_with_that_product_and_tolerates_the_gpu_taint() -> None:
    spec = deployment_pod(model_deployment())["spec"]
    terms = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ]
    assert terms == [
        {"matchExpressions": [{"key": "nvidia.com/gpu.product", "operator": "In", "values": [H100]}]}
    ]
    assert spec["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]


@pytest.mark.parametrize(
    ("product", "label"),
    [("H100", H100), ("h100-80gb", H100), ("NVIDIA-H100-PCIe", "NVIDIA-H100-PCIe"), ("H200", "NVIDIA-H200")],
)
def test_short_gpu_names_select_nodes_by_their_label_and_label_values_are_kept(
    product: str, label: str
) -> None:
    """Nodes carry GPU feature discovery's label value: a short name must not end up in the
    affinity, and a variant the planner sizes like its sibling (PCIe) keeps its own label."""
    md = model_deployment(resources={"gpu": {"product": product}})
    spec = deployment_pod(md, plan_for(md, gpu=product))["spec"]
    terms = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ]
    (expression,) = terms[0]["matchExpressions"]
    assert expression == {"key": "nvidia.com/gpu.product", "operator": "In", "values": [label]}


def test_a_memory_size_selects_nodes_whose_gpus_have_at_least_that_much() -> None:
    md = model_deployment(resources={"gpu": {"memoryGiB": 79}})
    spec = deployment_pod(md, plan_for(md, gpu="79GiB"))["spec"]
    terms = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ]
    (expression,) = terms[0]["matchExpressions"]
    assert expression == {"key": "nvidia.com/gpu.memory", "operator": "Gt", "values": [str(79 * 1024 - 1)]}
    # An H100 80GB as GPU feature discovery labels it (81559 MiB) qualifies for 79 GiB.
    assert int(expression["values"][0]) < 81559


def test_user_scheduling_is_merged_with_the_gpu_constraints() -> None:
    user_affinity: dict[str, Any] = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]},
                    {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]},
                ]
            },
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 1,
                    "preference": {"matchExpressions": [{"key": "spot", "operator": "DoesNotExist"}]},
                }
            ],
        },
        "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": []},
    }
    md = model_deployment(
        scheduling={
            "nodeSelector": {"pool": "gpu"},
            "tolerations": [
                {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
                {
                    "key": "dedicated",
                    "operator": "Equal",
                    "value": "llm",
                    "effect": "NoExecute",
                    "tolerationSeconds": 30,
                },
            ],
            "affinity": copy.deepcopy(user_affinity),
            "priorityClassName": "inference-high",
        }
    )
    spec = deployment_pod(md)["spec"]
    assert spec["nodeSelector"] == {"pool": "gpu"}
    assert spec["priorityClassName"] == "inference-high"
    assert spec["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
        {
            "key": "dedicated",
            "operator": "Equal",
            "value": "llm",
            "effect": "NoExecute",
            "tolerationSeconds": 30,
        },
    ]
    node = spec["affinity"]["nodeAffinity"]
    # Terms are ORed: the GPU requirement has to be in each, or one zone would accept any node.
    for term in node["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]:
        assert term["matchExpressions"][0]["key"] == "zone"
        assert term["matchExpressions"][-1]["key"] == "nvidia.com/gpu.product"
    assert (
        node["preferredDuringSchedulingIgnoredDuringExecution"]
        == (user_affinity["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"])
    )
    assert spec["affinity"]["podAntiAffinity"] == user_affinity["podAntiAffinity"]
    # The spec itself is not modified by rendering.
    assert md.spec.scheduling.affinity == user_affinity


def test_a_kueue_queue_labels_the_workload_not_its_pods() -> None:
    md = model_deployment(scheduling={"queueName": "gpu-queue"})
    deployment = render(md)[0]
    assert deployment["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "gpu-queue"
    assert "kueue.x-k8s.io/queue-name" not in deployment["spec"]["template"]["metadata"]["labels"]


# --- the pod -----------------------------------------------------------------------------------------------


def test_dev_shm_is_memory_backed_and_sized_by_the_plan() -> None:
    md = model_deployment()
    result = plan_for(md, tensor_parallel=4)
    pod = deployment_pod(md, result)
    (shm,) = [v for v in pod["spec"]["volumes"] if v.get("emptyDir", {}).get("medium") == "Memory"]
    assert shm["emptyDir"]["sizeLimit"] == f"{result.shm_size_gib}Gi"
    mounts = {m["mountPath"]: m["name"] for m in container(pod)["volumeMounts"]}
    assert mounts["/dev/shm"] == shm["name"]


def test_probes_give_the_model_its_planned_startup_time_before_liveness_counts() -> None:
    md = moe_model_deployment()
    result = plan_for(md, preset="llm-jp-4-32b-a3b")
    vllm = container(deployment_pod(md, result))
    startup = vllm["startupProbe"]
    assert startup["httpGet"] == {"path": "/health", "port": 8000, "scheme": "HTTP"}
    assert startup["failureThreshold"] * startup["periodSeconds"] >= result.startup_probe_seconds
    assert vllm["readinessProbe"]["httpGet"]["path"] == "/v1/models"
    assert vllm["livenessProbe"]["httpGet"]["path"] == "/health"


def test_a_model_cache_claim_keeps_downloaded_weights_across_restarts() -> None:
    pod = deployment_pod(model_deployment(serving={"modelCacheClaim": "hf-cache"}))
    (cache,) = [v for v in pod["spec"]["volumes"] if v["name"] == "model-cache"]
    assert cache == {"name": "model-cache", "persistentVolumeClaim": {"claimName": "hf-cache"}}
    plain = deployment_pod(model_deployment())
    assert {"name": "model-cache", "emptyDir": {}} in plain["spec"]["volumes"]


def test_with_an_api_key_readiness_uses_the_unauthenticated_health_endpoint() -> None:
    md = model_deployment(
        serving={"env": [{"name": "VLLM_API_KEY", "valueFrom": {"secretKeyRef": {"name": "k", "key": "k"}}}]}
    )
    assert container(deployment_pod(md))["readinessProbe"]["httpGet"]["path"] == "/health"


def test_pods_drain_before_stopping_and_are_scraped_for_metrics() -> None:
    pod = deployment_pod(model_deployment())
    vllm = container(pod)
    assert vllm["lifecycle"]["preStop"]["exec"]["command"][0] == "sleep"
    assert pod["spec"]["terminationGracePeriodSeconds"] >= 30
    assert pod["spec"]["enableServiceLinks"] is False
    assert (
        pod["metadata"]["annotations"].items()
        >= {
            "prometheus.io/scrape": "true",
            "prometheus.io/port": "8000",
            "prometheus.io/path": "/metrics",
        }.items()
    )
    assert vllm["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]


def test_a_dense_single_gpu_replica_runs_non_root_with_no_capabilities() -> None:
    pod = deployment_pod(model_deployment())
    assert pod["spec"]["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 1000,
        # Group-readable weights owned by root stay readable, without a chown walk on every start.
        "fsGroup": 1000,
        "fsGroupChangePolicy": "OnRootMismatch",
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert container(pod)["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }


def test_an_expert_parallel_moe_layout_enables_expert_parallelism_and_may_lock_memory() -> None:
    md = moe_model_deployment()
    result = plan_for(md, preset="llm-jp-4-32b-a3b")
    assert result.expert_parallel > 1
    vllm = container(deployment_pod(md, result))
    assert "--enable-expert-parallel" in vllm["args"]
    assert flag_value(vllm["args"], "--data-parallel-size") == str(result.data_parallel)
    assert vllm["securityContext"]["capabilities"] == {"drop": ["ALL"], "add": ["IPC_LOCK"]}
    assert vllm["securityContext"]["allowPrivilegeEscalation"] is False


def test_the_container_runs_vllm_serve_with_the_plan_then_the_listen_address_then_extra_args() -> None:
    md = model_deployment(serving={"extraArgs": ["--enable-prefix-caching", "--max-num-seqs", "64"]})
    result = plan_for(md)
    vllm = container(deployment_pod(md, result))
    assert vllm["command"] == ["vllm", "serve"]
    assert vllm["image"] == DEFAULT_VLLM_IMAGE
    assert vllm["args"][: len(result.vllm_args)] == result.vllm_args
    assert vllm["args"][len(result.vllm_args) :] == [
        "--host",
        "0.0.0.0",
        "--port",
        "8000",
        "--enable-prefix-caching",
        "--max-num-seqs",
        "64",
    ]


@pytest.mark.parametrize("arg", ["--port=9000", "--host", "--port"])
def test_extra_args_cannot_move_the_port_the_service_and_probes_use(arg: str) -> None:
    md = model_deployment(serving={"extraArgs": [arg, "9000"] if "=" not in arg else [arg]})
    with pytest.raises(RenderError, match="extraArgs"):
        render(md)


def test_user_env_is_appended_with_secret_references_intact_and_may_override_defaults() -> None:
    md = model_deployment(
        serving={
            "env": [
                {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf", "key": "token"}}},
                {"name": "VLLM_NO_USAGE_STATS", "value": "0"},
            ]
        }
    )
    env = container(deployment_pod(md))["env"]
    assert env[-2:] == [
        {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf", "key": "token"}}},
        {"name": "VLLM_NO_USAGE_STATS", "value": "0"},
    ]
    assert [var["name"] for var in env].count("VLLM_NO_USAGE_STATS") == 1


def test_changing_max_model_len_changes_the_pod_template_so_the_deployment_rolls() -> None:
    short, long = (
        model_deployment(serving={"maxModelLen": 8192}),
        model_deployment(serving={"maxModelLen": 32768}),
    )
    before, after = deployment_pod(short), deployment_pod(long)
    assert before != after
    assert flag_value(container(after)["args"], "--max-model-len") == "32768"
    assert (
        before["metadata"]["annotations"][PLAN_HASH_ANNOTATION]
        != after["metadata"]["annotations"][PLAN_HASH_ANNOTATION]
    )
    # ...while rendering the same spec again keeps the template, so nothing rolls without a reason.
    assert (
        deployment_pod(short)["metadata"]["annotations"][PLAN_HASH_ANNOTATION]
        == (before["metadata"]["annotations"][PLAN_HASH_ANNOTATION])
    )


def test_rollouts_replace_a_replica_at_a_time_instead_of_surging_onto_spare_gpus() -> None:
    md = model_deployment()
    result = plan_for(md)
    deployment = render(md, result)[0]
    assert deployment["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1},
    }
    assert deployment["spec"]["progressDeadlineSeconds"] > result.startup_probe_seconds


# --- where the weights come from ---------------------------------------------------------------------------


def test_a_hugging_face_model_loads_by_repo_id_at_the_pinned_revision_into_a_cache_volume() -> None:
    md = model_deployment(model={"uri": "hf://llm-jp/llm-jp-4-8b", "revision": SHA})
    pod = deployment_pod(md)
    vllm = container(pod)
    assert served_model(vllm["args"]) == "llm-jp/llm-jp-4-8b"
    assert flag_value(vllm["args"], "--revision") == SHA
    assert {"name": "HF_HOME", "value": "/models/cache"} in vllm["env"]
    assert "HF_HUB_OFFLINE" not in {var["name"] for var in vllm["env"]}
    mounts = {m["mountPath"]: m["name"] for m in vllm["volumeMounts"]}
    (cache,) = [v for v in pod["spec"]["volumes"] if v["name"] == mounts["/models/cache"]]
    assert cache == {"name": mounts["/models/cache"], "emptyDir": {}}


def test_an_s3_model_streams_from_the_bucket_with_the_users_credentials() -> None:
    md = model_deployment(
        model={"uri": "s3://models-bucket/llm-jp-4-8b/v1", "revision": "main"},
        serving={
            "env": [
                {"name": "AWS_ACCESS_KEY_ID", "valueFrom": {"secretKeyRef": {"name": "s3", "key": "id"}}},
                {
                    "name": "AWS_SECRET_ACCESS_KEY",
                    "valueFrom": {"secretKeyRef": {"name": "s3", "key": "secret"}},
                },
                {"name": "AWS_ENDPOINT_URL", "value": "http://minio.storage:9000"},
            ]
        },
    )
    vllm = container(deployment_pod(md))
    assert served_model(vllm["args"]) == "s3://models-bucket/llm-jp-4-8b/v1"
    assert flag_value(vllm["args"], "--load-format") == "runai_streamer"
    # Buckets have no revisions: the prefix is the version.
    assert "--revision" not in vllm["args"]
    names = [var["name"] for var in vllm["env"]]
    assert names[-3:] == ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL"]
    assert vllm["env"][-3]["valueFrom"] == {"secretKeyRef": {"name": "s3", "key": "id"}}


def test_spec_model_s3_gives_the_streamer_its_endpoint_addressing_and_secret_references() -> None:
    access = {
        "endpoint": "http://minio.storage:9000",
        "virtualAddressing": True,
        "credentialsSecretRef": "s3",
    }
    md = model_deployment(
        model={"uri": "s3://models-bucket/llm-jp-4-8b/v1", "s3": access},
        scheduling={"serviceAccountName": "model-reader"},
    )
    pod = deployment_pod(md)
    env = container(pod)["env"]
    assert {"name": "AWS_ENDPOINT_URL", "value": "http://minio.storage:9000"} in env
    assert {"name": "RUNAI_STREAMER_S3_USE_VIRTUAL_ADDRESSING", "value": "1"} in env
    secrets = [var for var in env if "valueFrom" in var]
    assert [(v["name"], v["valueFrom"]["secretKeyRef"]) for v in secrets] == [
        ("AWS_ACCESS_KEY_ID", {"name": "s3", "key": "AWS_ACCESS_KEY_ID"}),
        ("AWS_SECRET_ACCESS_KEY", {"name": "s3", "key": "AWS_SECRET_ACCESS_KEY"}),
        ("AWS_SESSION_TOKEN", {"name": "s3", "key": "AWS_SESSION_TOKEN", "optional": True}),
    ]
    assert all("value" not in var for var in secrets)
    # Workload identity (IRSA and the like) comes with the pods' ServiceAccount.
    assert pod["spec"]["serviceAccountName"] == "model-reader"


def test_an_s3_model_keeps_a_load_format_the_user_chose() -> None:
    md = model_deployment(
        model={"uri": "s3://models-bucket/llm-jp-4-8b"},
        serving={"extraArgs": ["--load-format", "runai_streamer_sharded"]},
    )
    args = container(deployment_pod(md))["args"]
    assert args.count("--load-format") == 1
    assert flag_value(args, "--load-format") == "runai_streamer_sharded"


def test_a_pvc_model_is_mounted_read_only_and_loaded_from_the_mount() -> None:
    md = model_deployment(model={"uri": "pvc://model-store/llm-jp/llm-jp-4-8b"})
    pod = deployment_pod(md)
    vllm = container(pod)
    assert served_model(vllm["args"]) == "/models/pvc/llm-jp/llm-jp-4-8b"
    assert {"name": "model", "persistentVolumeClaim": {"claimName": "model-store", "readOnly": True}} in pod[
        "spec"
    ]["volumes"]
    assert {"name": "model", "mountPath": "/models/pvc", "readOnly": True} in vllm["volumeMounts"]


def test_a_registry_reference_must_be_resolved_by_the_controller_before_rendering() -> None:
    md = model_deployment(model={"uri": "models:/llm-jp-4-8b@champion"})
    result = plan_for(md)
    with pytest.raises(RenderError, match="MLflow"):
        render(md, result)
    vllm = container(deployment_pod(md, result, model_path="s3://mlflow/1/abc/artifacts/model"))
    assert served_model(vllm["args"]) == "s3://mlflow/1/abc/artifacts/model"
    assert flag_value(vllm["args"], "--load-format") == "runai_streamer"
    assert "--model" not in vllm["args"]  # the positional argument only


def test_the_model_argument_to_plan_with_matches_what_render_loads() -> None:
    assert vllm_model_argument("hf://llm-jp/llm-jp-4-8b") == "llm-jp/llm-jp-4-8b"
    assert vllm_model_argument("pvc://store") == "/models/pvc"
    assert vllm_model_argument("s3://bucket/prefix/") == "s3://bucket/prefix"
    assert resolve_model_source("pvc://store/a/b").volumes[0]["persistentVolumeClaim"]["claimName"] == "store"


def test_a_plan_made_from_the_raw_uri_still_loads_the_resolved_model() -> None:
    md = model_deployment(model={"uri": "pvc://model-store/8b"})
    result = plan(
        PlanRequest(
            architecture=lookup_model("llm-jp-4-8b").architecture,
            gpu=resolve_gpu("H100-80GB"),
            model="pvc://model-store/8b",
            revision=SHA,
        )
    )
    args = container(deployment_pod(md, result))["args"]
    assert served_model(args) == "/models/pvc/8b"
    assert "--revision" not in args


def test_remote_code_runs_only_when_the_spec_opts_in() -> None:
    plain = model_deployment()
    assert "--trust-remote-code" not in container(deployment_pod(plain))["args"]

    opted_in = model_deployment(
        model={"uri": "hf://llm-jp/llm-jp-4-8b", "revision": SHA, "trustRemoteCode": True}
    )
    args = container(deployment_pod(opted_in))["args"]
    assert args.count("--trust-remote-code") == 1
    assert flag_value(args, "--revision") == SHA

    # A plan made for a request that trusted remote code cannot smuggle it into a spec that does not.
    trusting_plan = plan_for(opted_in)
    assert "--trust-remote-code" in trusting_plan.vllm_args
    assert "--trust-remote-code" not in container(deployment_pod(plain, trusting_plan))["args"]


# --- LeaderWorkerSet --------------------------------------------------------------------------------------


def multi_node() -> tuple[ModelDeployment, Plan]:
    md = moe_model_deployment(backend="leaderworkerset", replicas=2)
    result = plan_for(
        md,
        preset="llm-jp-4-32b-a3b",
        nodes=2,
        gpus_per_node=2,
        tensor_parallel=1,
        data_parallel=4,
        expert_parallel=4,
    )
    assert result.nodes_per_replica == 2
    return md, result


def test_a_multi_node_replica_is_a_leader_worker_group_with_one_pod_per_node() -> None:
    md, result = multi_node()
    lws, service = render(md, result)
    assert lws["apiVersion"] == "leaderworkerset.x-k8s.io/v1"
    assert lws["kind"] == "LeaderWorkerSet"
    # LeaderWorkerSet makes a headless Service named after itself; it must not collide with Shinsa's.
    assert lws["metadata"]["name"] != service["metadata"]["name"] == "llm-jp-4-32b-a3b"
    group = lws["spec"]["leaderWorkerTemplate"]
    assert lws["spec"]["replicas"] == 2
    assert group["size"] == result.nodes_per_replica
    assert group["restartPolicy"] == "RecreateGroupOnPodRestart"
    for template in pod_templates(lws):
        vllm = container(template)
        assert vllm["resources"]["limits"]["nvidia.com/gpu"] == str(result.gpus_per_node)
        assert vllm["securityContext"]["capabilities"]["add"] == ["IPC_LOCK"]


def test_the_leader_serves_the_api_and_the_workers_run_headless_ranks_through_a_shell() -> None:
    md, result = multi_node()
    # API-server options (vLLM's FrontendArgs, --api-server-count) go to the leader only: a headless
    # worker refuses --api-server-count and has no server for the others.
    md.spec.serving.extra_args = [
        "--api-key", "k", "--enable-prefix-caching", "--api-server-count=4", "--disable-fastapi-docs",
        "--max-num-seqs", "64",
    ]  # fmt: skip
    group = render(md, result)[0]["spec"]["leaderWorkerTemplate"]
    leader = container(group["leaderTemplate"])
    worker = container(group["workerTemplate"])

    assert leader["command"] == ["vllm", "serve"]
    assert leader["args"][: len(result.leader_args)] == result.leader_args
    # The leader binds on its own pod IP, which the downward API gives it.
    assert flag_value(leader["args"], "--data-parallel-address") == "$(SHINSA_POD_IP)"
    assert {"name": "SHINSA_POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}} in leader[
        "env"
    ]
    assert flag_value(leader["args"], "--port") == "8000"
    assert leader["args"][-len(md.spec.serving.extra_args) :] == md.spec.serving.extra_args
    assert "readinessProbe" in leader

    assert worker["command"][:2] == ["sh", "-c"]
    line = worker["command"][2]
    # The worker waits (bounded) until the leader's name resolves, then connects to that IP.
    resolve, _, serve = line.partition("exec vllm serve ")
    assert "SHINSA_LEADER_IP=$(python3 -c" in resolve and '"$LWS_LEADER_ADDRESS"' in resolve
    assert "-ge 60 ]" in resolve and "exit 1" in resolve
    assert "--headless" in serve and "--data-parallel-start-rank $((LWS_WORKER_INDEX*2))" in serve
    assert "--data-parallel-address ${SHINSA_LEADER_IP}" in serve
    assert serve.endswith(" --enable-prefix-caching --max-num-seqs 64")
    assert "--port" not in serve and "--api-key" not in serve and "--api-server-count" not in serve
    assert not any(e["name"] == "SHINSA_POD_IP" for e in worker["env"])
    # Workers have no HTTP server to probe or scrape.
    assert not {"readinessProbe", "livenessProbe", "startupProbe", "ports"} & worker.keys()
    assert "prometheus.io/scrape" not in group["workerTemplate"]["metadata"]["annotations"]
    leader_hash = group["leaderTemplate"]["metadata"]["annotations"][PLAN_HASH_ANNOTATION]
    assert group["workerTemplate"]["metadata"]["annotations"][PLAN_HASH_ANNOTATION] == leader_hash


def test_the_leader_worker_service_sends_traffic_to_leaders_only() -> None:
    md, result = multi_node()
    service = render(md, result)[1]
    assert service["spec"]["selector"] == {**pod_selector(md), LWS_WORKER_INDEX_LABEL: "0"}
    assert endpoint_url(md) == "http://llm-jp-4-32b-a3b.models.svc:8000/v1"


def test_a_single_node_plan_on_the_leader_worker_backend_is_a_group_of_one() -> None:
    md = model_deployment(backend="leaderworkerset")
    group = render(md)[0]["spec"]["leaderWorkerTemplate"]
    assert group["size"] == 1
    assert "leaderTemplate" not in group
    assert container(group["workerTemplate"])["command"] == ["vllm", "serve"]


@pytest.mark.parametrize("backend", ["deployment", "kserve"])
def test_a_multi_node_plan_cannot_be_rendered_as_a_single_pod_backend(backend: str) -> None:
    _, result = multi_node()
    with pytest.raises(RenderError, match="leaderworkerset"):
        render(model_deployment(backend=backend), result)


def test_long_names_still_give_a_bounded_leader_worker_set_name() -> None:
    md = model_deployment(backend="leaderworkerset")
    md.metadata.name = "a" * 63
    lws = render(md)[0]
    assert len(lws["metadata"]["name"]) <= 40
    assert lws["metadata"]["name"].endswith("-lws")


# --- KServe -----------------------------------------------------------------------------------------------


def test_kserve_backend_renders_a_raw_deployment_inference_service_with_the_vllm_container() -> None:
    md = model_deployment(backend="kserve", replicas=3)
    result = plan_for(md)
    (isvc,) = render(md, result)
    assert isvc["apiVersion"] == "serving.kserve.io/v1beta1"
    assert (isvc["kind"], isvc["metadata"]["name"]) == ("InferenceService", "llm-jp-4-8b")
    assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "RawDeployment"
    predictor = isvc["spec"]["predictor"]
    assert (predictor["minReplicas"], predictor["maxReplicas"]) == (3, 3)
    assert predictor["deploymentStrategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1},
    }
    assert "model" not in predictor
    (kserve_container,) = predictor["containers"]
    assert kserve_container["name"] == "kserve-container"
    assert kserve_container["args"][: len(result.vllm_args)] == result.vllm_args
    assert kserve_container["resources"]["limits"] == {"nvidia.com/gpu": str(result.gpus_per_node)}
    assert kserve_container["ports"][0]["containerPort"] == 8000
    # The predictor embeds the pod spec the other backends use.
    assert predictor["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert any(v.get("emptyDir", {}).get("medium") == "Memory" for v in predictor["volumes"])
    assert predictor["labels"].items() >= pod_selector(md).items()
    assert PLAN_HASH_ANNOTATION in predictor["annotations"]
    assert endpoint_url(md) == "http://llm-jp-4-8b-predictor.models.svc/v1"


def test_a_pod_field_the_kserve_predictor_lacks_is_refused_by_name() -> None:
    from shinsa.render.kserve import _predictor_fields

    assert _predictor_fields({"nodeSelector": {"a": "b"}}) == {"node_selector": {"a": "b"}}
    with pytest.raises(RenderError, match="hostMagic"):
        _predictor_fields({"hostMagic": True, "nodeSelector": {}})
