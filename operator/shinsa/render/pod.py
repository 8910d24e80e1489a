"""The vLLM pod every backend runs: container, GPUs, placement, storage, probes and hardening."""

from __future__ import annotations

import copy
import hashlib
import json
import math
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from shinsa.api import ModelDeployment
from shinsa.planner import (
    DATA_PARALLEL_RPC_PORT,
    GPU_PRODUCT_LABEL,
    LEADER_IP_VAR,
    POD_IP_ENV,
    Plan,
    node_product_label,
    pinned_release,
    shell_command,
)
from shinsa.render.labels import (
    HTTP_PORT,
    LAYOUT_ANNOTATION,
    PLAN_HASH_ANNOTATION,
    RenderError,
    common_labels,
)
from shinsa.render.model_source import (
    MODEL_CACHE_DIR,
    ModelSource,
    apply_model_source,
    flag_name,
    has_flag,
)

CONTAINER_NAME = "vllm"
# The image's own entrypoint differs between vLLM releases (`vllm serve` in recent ones, the
# api_server module in older ones); naming the command makes the args mean the same on any image
# that ships the `vllm` CLI, including custom images built on top of vllm/vllm-openai.
VLLM_COMMAND = ("vllm", "serve")

GPU_RESOURCE = "nvidia.com/gpu"
GPU_TAINT_KEY = "nvidia.com/gpu"
# GPU feature discovery reports each GPU's memory in MiB.
GPU_MEMORY_LABEL = "nvidia.com/gpu.memory"

# Flags render sets itself: the Service, probes and metrics scraping all assume them.
RENDER_OWNED_FLAGS: frozenset[str] = frozenset({"--host", "--port"})

# Requests, not limits: a memory limit would also count the page cache of multi-GiB weight files and
# the memory-backed /dev/shm, and OOM-kill a replica mid-load; a CPU limit would throttle the
# scheduler loop and tokenisation, which shows up directly as latency. Requests per GPU cover the
# engine process of each GPU (tokenizer, CUDA graphs, Python heap) so the scheduler reserves them.
CPU_PER_GPU = 4
MEMORY_PER_GPU_GIB = 16

RUN_AS_USER = 1000
# runAsUser picks a UID that has no home in the image: HOME=/root is not writable, so vLLM, Triton and
# torch.compile caches would fail. USER keeps getpass.getuser() (torch's cache naming) from looking the
# UID up in /etc/passwd, where it does not exist.
HOME_DIR = "/home/vllm"
USER_NAME = "vllm"

SHM_VOLUME = "dshm"
CACHE_VOLUME = "model-cache"
HOME_VOLUME = "home"

STARTUP_PERIOD_SECONDS = 10
# The Service keeps sending requests until the endpoint controller has removed the pod; sleeping in
# preStop lets that happen before vLLM stops accepting connections.
PRESTOP_SLEEP_SECONDS = 10
# preStop sleep + time for vLLM to finish in-flight requests before SIGKILL.
TERMINATION_GRACE_SECONDS = 60


@dataclass(frozen=True)
class Role:
    """What a pod of the replica does: `serves_api` pods run the OpenAI server and are probed over HTTP;
    headless workers (multi-node only) run engine ranks and have no HTTP endpoint to probe."""

    serves_api: bool
    # Multi-node leaders also host the data-parallel coordinator the workers dial.
    coordinator: bool = False


API = Role(serves_api=True)
LEADER = Role(serves_api=True, coordinator=True)
WORKER = Role(serves_api=False)


def check_extra_args(md: ModelDeployment) -> None:
    clashes = [
        arg
        for arg in md.spec.serving.extra_args
        if arg.startswith("-") and flag_name(arg) in RENDER_OWNED_FLAGS
    ]
    if clashes:
        raise RenderError(
            f"spec.serving.extraArgs must not set {', '.join(clashes)}: Shinsa serves on port {HTTP_PORT} "
            "on all interfaces, which the Service, probes and metrics rely on"
        )


def _engine_args(md: ModelDeployment, planned: Sequence[str], source: ModelSource) -> list[str]:
    args = apply_model_source(
        planned,
        source,
        revision=md.spec.model.revision,
        trust_remote_code=md.spec.model.trust_remote_code,
    )
    # A user who picked another streaming format (sharded, for example) keeps it.
    if source.args and not has_flag(md.spec.serving.extra_args, source.args[0]):
        args += source.args
    return args


def api_args(md: ModelDeployment, planned: Sequence[str], source: ModelSource) -> list[str]:
    """`vllm serve` args of a pod that serves the API: plan, model source, listen address, extras."""
    return [
        *_engine_args(md, planned, source),
        "--host",
        "0.0.0.0",
        "--port",
        str(HTTP_PORT),
        *md.spec.serving.extra_args,
    ]


# A worker connects to the leader's coordinator, so it needs the leader's IP (vLLM does not resolve
# the name for every socket); the leader's DNS record appears only once its pod has an IP, so the
# name is looked up until it resolves, for a bounded time. python3 is in every vLLM image.
LEADER_RESOLVE_ATTEMPTS = 60
LEADER_RESOLVE_INTERVAL_S = 5
_RESOLVE_LEADER = (
    "i=0; "
    f"until {LEADER_IP_VAR}=$(python3 -c 'import socket,sys; print(socket.gethostbyname(sys.argv[1]))' "
    '"$LWS_LEADER_ADDRESS" 2>/dev/null); do '
    f'i=$((i+1)); if [ "$i" -ge {LEADER_RESOLVE_ATTEMPTS} ]; then '
    'echo "shinsa: the leader $LWS_LEADER_ADDRESS did not resolve" >&2; exit 1; fi; '
    f"sleep {LEADER_RESOLVE_INTERVAL_S}; done; "
)


def worker_extra_args(extra_args: Sequence[str]) -> list[str]:
    """`extraArgs` without the options a headless worker refuses or has no use for: those of the
    API server and the API-server-only data-parallel modes (`VllmRelease.leader_only`); they go to
    the leader only (docs/model-deployment.md)."""
    release = pinned_release()
    kept: list[str] = []
    dropping = False
    for arg in extra_args:
        if dropping and not arg.startswith("-"):
            dropping = False
            continue  # the dropped option's value
        dropping = False
        if arg.startswith("-") and flag_name(arg) in release.leader_only:
            name = flag_name(arg)
            switch = name.startswith("--no-") or f"--no-{name[2:]}" in release.flags
            dropping = "=" not in arg and not switch
            continue
        kept.append(arg)
    return kept


def worker_command(md: ModelDeployment, planned: Sequence[str], source: ModelSource) -> list[str]:
    """`sh -c` for a headless worker: its start rank is shell arithmetic on LWS_WORKER_INDEX, and
    the leader's address is resolved before vLLM starts."""
    line = _RESOLVE_LEADER + shell_command(_engine_args(md, planned, source))
    # User arguments are always quoted, so they can never become shell expansions.
    line += "".join(" " + shlex.quote(arg) for arg in worker_extra_args(md.spec.serving.extra_args))
    return ["sh", "-c", line]


def needs_ipc_lock(plan: Plan) -> bool:
    """Whether the layout moves tensors between GPUs over NCCL with registered host memory.

    Expert-parallel all-to-all and cross-node collectives register (pin) buffers for GPUDirect RDMA,
    which needs CAP_IPC_LOCK or an unlimited RLIMIT_MEMLOCK. Only these layouts get it, so dense
    single-node replicas keep an empty capability set. The kernel grants an added capability to a
    non-root process only through ambient capabilities, which depend on the container runtime; on
    runtimes that do not set them, the node's memlock limit is what RDMA relies on.
    """
    return plan.expert_parallel > 1 or plan.nodes_per_replica > 1


# The keys of `spec.model.s3.credentialsSecretRef`, named as the AWS SDK's variables they become.
S3_SECRET_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
S3_OPTIONAL_SECRET_KEYS = ("AWS_SESSION_TOKEN",)


def _s3_env(md: ModelDeployment, source: ModelSource) -> list[dict[str, Any]]:
    """What the Run:ai streamer needs to read `s3://` weights (api.S3Access); secrets only as
    references to the Secret's keys."""
    access = md.spec.model.s3
    if source.kind != "s3" or access is None:
        return []
    env: list[dict[str, Any]] = []
    if access.endpoint:
        env.append({"name": "AWS_ENDPOINT_URL", "value": access.endpoint})
    if access.region:
        env.append({"name": "AWS_DEFAULT_REGION", "value": access.region})
    if access.virtual_addressing is not None:
        flag = "1" if access.virtual_addressing else "0"
        env.append({"name": "RUNAI_STREAMER_S3_USE_VIRTUAL_ADDRESSING", "value": flag})
    if access.credentials_secret_ref:
        for key in (*S3_SECRET_KEYS, *S3_OPTIONAL_SECRET_KEYS):
            ref: dict[str, Any] = {"name": access.credentials_secret_ref, "key": key}
            if key in S3_OPTIONAL_SECRET_KEYS:
                ref["optional"] = True
            env.append({"name": key, "valueFrom": {"secretKeyRef": ref}})
    return env


def _env(md: ModelDeployment, source: ModelSource) -> list[dict[str, Any]]:
    base: list[dict[str, Any]] = [
        {"name": "HOME", "value": HOME_DIR},
        {"name": "USER", "value": USER_NAME},
        {"name": "HF_HOME", "value": MODEL_CACHE_DIR},
        # Serving pods of third-party models should not report usage to vLLM's servers unasked.
        {"name": "VLLM_NO_USAGE_STATS", "value": "1"},
        *_s3_env(md, source),
    ]
    user = [var.to_k8s() for var in md.spec.serving.env]
    overridden = {var["name"] for var in user}
    return [var for var in base if var["name"] not in overridden] + user


def _resources(plan: Plan) -> dict[str, Any]:
    gpus = plan.gpus_per_node
    return {
        "requests": {
            "cpu": str(CPU_PER_GPU * gpus),
            # /dev/shm is memory-backed and charged to the pod.
            "memory": f"{MEMORY_PER_GPU_GIB * gpus + plan.shm_size_gib}Gi",
            GPU_RESOURCE: str(gpus),
        },
        "limits": {GPU_RESOURCE: str(gpus)},
    }


def _http_get(path: str) -> dict[str, Any]:
    return {"path": path, "port": HTTP_PORT, "scheme": "HTTP"}


def _uses_api_key(md: ModelDeployment) -> bool:
    serving = md.spec.serving
    return has_flag(serving.extra_args, "--api-key") or any(var.name == "VLLM_API_KEY" for var in serving.env)


def _probes(md: ModelDeployment, plan: Plan) -> dict[str, Any]:
    # /v1/models answers only once the model is loaded and the OpenAI routes are up, the moment a
    # client can be sent there. With an API key it answers 401, so /health stands in.
    ready_path = "/health" if _uses_api_key(md) else "/v1/models"
    return {
        # Loading weights and capturing CUDA graphs takes minutes; liveness must not count that time.
        "startupProbe": {
            "httpGet": _http_get("/health"),
            "periodSeconds": STARTUP_PERIOD_SECONDS,
            "timeoutSeconds": 5,
            "failureThreshold": math.ceil(plan.startup_probe_seconds / STARTUP_PERIOD_SECONDS),
        },
        "readinessProbe": {
            "httpGet": _http_get(ready_path),
            "periodSeconds": 10,
            "timeoutSeconds": 5,
            "failureThreshold": 3,
        },
        # Generous: a saturated engine answers /health late, and restarting it means reloading the model.
        "livenessProbe": {
            "httpGet": _http_get("/health"),
            "periodSeconds": 20,
            "timeoutSeconds": 10,
            "failureThreshold": 3,
        },
    }


def _volume_mounts(source: ModelSource) -> list[dict[str, Any]]:
    return [
        {"name": SHM_VOLUME, "mountPath": "/dev/shm"},
        {"name": CACHE_VOLUME, "mountPath": MODEL_CACHE_DIR},
        {"name": HOME_VOLUME, "mountPath": HOME_DIR},
        *(dict(mount) for mount in source.volume_mounts),
    ]


def _cache_volume(md: ModelDeployment) -> dict[str, Any]:
    claim = md.spec.serving.model_cache_claim
    if claim:
        return {"name": CACHE_VOLUME, "persistentVolumeClaim": {"claimName": claim}}
    return {"name": CACHE_VOLUME, "emptyDir": {}}


def _volumes(md: ModelDeployment, plan: Plan, source: ModelSource) -> list[dict[str, Any]]:
    return [
        # The container runtime's 64 MiB /dev/shm is far too small for vLLM's inter-process queues
        # and NCCL's shared-memory transport; the plan sizes it by GPUs per pod.
        {"name": SHM_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": f"{plan.shm_size_gib}Gi"}},
        # Node-local by default; a Hub download is repeated when the pod moves to another node or
        # restarts. A claim keeps it (spec.serving.modelCacheClaim).
        _cache_volume(md),
        {"name": HOME_VOLUME, "emptyDir": {}},
        *(copy.deepcopy(volume) for volume in source.volumes),
    ]


def _container_security(plan: Plan) -> dict[str, Any]:
    capabilities: dict[str, list[str]] = {"drop": ["ALL"]}
    if needs_ipc_lock(plan):
        capabilities["add"] = ["IPC_LOCK"]
    return {"allowPrivilegeEscalation": False, "capabilities": capabilities}


def vllm_container(
    md: ModelDeployment,
    plan: Plan,
    source: ModelSource,
    role: Role,
    *,
    command: Sequence[str],
    args: Sequence[str] = (),
    name: str = CONTAINER_NAME,
) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": name,
        "image": md.spec.serving.image,
        "command": list(command),
    }
    if args:
        container["args"] = list(args)
    ports: list[dict[str, Any]] = []
    if role.serves_api:
        ports.append({"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"})
    if role.coordinator:
        ports.append({"name": "dp-rpc", "containerPort": DATA_PARALLEL_RPC_PORT, "protocol": "TCP"})
    if ports:
        container["ports"] = ports
    container["env"] = _env(md, source)
    if role.coordinator:
        # The leader binds its data-parallel sockets on its own IP (planner.vllm_args).
        container["env"].append(
            {"name": POD_IP_ENV, "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}
        )
    container["resources"] = _resources(plan)
    container["volumeMounts"] = _volume_mounts(source)
    if role.serves_api:
        container.update(_probes(md, plan))
        container["lifecycle"] = {"preStop": {"exec": {"command": ["sleep", str(PRESTOP_SLEEP_SECONDS)]}}}
    container["securityContext"] = _container_security(plan)
    return container


def gpu_node_requirement(md: ModelDeployment, plan: Plan) -> dict[str, Any]:
    gpu = md.spec.resources.gpu
    product = node_product_label(gpu.product) if gpu.product else None
    product = product or (plan.gpu_product if gpu.memory_gib is None else None)
    if product:
        return {"key": GPU_PRODUCT_LABEL, "operator": "In", "values": [product]}
    if gpu.memory_gib is None:
        raise RenderError("spec.resources.gpu must set product or memoryGiB")
    # Gt compares integer-valued labels; "at least N GiB" is "more than N*1024 - 1 MiB". GFD reports
    # what CUDA sees, a little under the marketing size (an H100 80GB reports 81559 MiB), so memoryGiB
    # must be that figure rounded down: the plan assumed memoryGiB per GPU and must not get less.
    return {"key": GPU_MEMORY_LABEL, "operator": "Gt", "values": [str(gpu.memory_gib * 1024 - 1)]}


def merge_affinity(user: dict[str, Any] | None, requirement: dict[str, Any]) -> dict[str, Any]:
    """The user's affinity with the GPU requirement ANDed into every node selector term (terms are
    ORed by the scheduler, so adding it to only one would let the others bypass it)."""
    affinity = copy.deepcopy(user) if user else {}
    node = affinity.setdefault("nodeAffinity", {})
    required = node.setdefault("requiredDuringSchedulingIgnoredDuringExecution", {})
    terms = required.get("nodeSelectorTerms") or [{}]
    required["nodeSelectorTerms"] = [
        {**term, "matchExpressions": [*term.get("matchExpressions", []), requirement]} for term in terms
    ]
    return affinity


def _tolerations(md: ModelDeployment) -> list[dict[str, Any]]:
    gpu = {"key": GPU_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}
    user = [toleration.to_k8s() for toleration in md.spec.scheduling.tolerations]
    return [gpu, *(t for t in user if t != gpu)]


def pod_spec(
    md: ModelDeployment, plan: Plan, source: ModelSource, containers: list[dict[str, Any]]
) -> dict[str, Any]:
    scheduling = md.spec.scheduling
    spec: dict[str, Any] = {
        "containers": containers,
        "volumes": _volumes(md, plan, source),
        # Dozens of *_SERVICE_HOST variables per Service in the namespace; one named like a vLLM
        # setting (VLLM_PORT for a Service called "vllm") would be read as configuration.
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": TERMINATION_GRACE_SECONDS,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS_USER,
            # Weights on a volume owned by root with group read only (a PVC filled by a root Job)
            # stay readable; OnRootMismatch keeps kubelet from walking tens of GiB on every start.
            "fsGroup": RUN_AS_USER,
            "fsGroupChangePolicy": "OnRootMismatch",
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "tolerations": _tolerations(md),
        "affinity": merge_affinity(scheduling.affinity, gpu_node_requirement(md, plan)),
    }
    if scheduling.node_selector:
        spec["nodeSelector"] = dict(scheduling.node_selector)
    if scheduling.priority_class_name:
        spec["priorityClassName"] = scheduling.priority_class_name
    if scheduling.service_account_name:
        spec["serviceAccountName"] = scheduling.service_account_name
    return spec


def plan_hash(containers: Sequence[dict[str, Any]]) -> str:
    """A short fingerprint of what the engine runs with, so `kubectl get pods -o yaml` shows whether two
    pods run the same plan."""
    relevant = [
        {key: c.get(key) for key in ("image", "command", "args", "env", "resources")} for c in containers
    ]
    digest = hashlib.sha256(json.dumps(relevant, sort_keys=True, separators=(",", ":")).encode())
    return digest.hexdigest()[:12]


def pod_annotations(plan: Plan, role: Role, fingerprint: str) -> dict[str, str]:
    annotations = {PLAN_HASH_ANNOTATION: fingerprint, LAYOUT_ANNOTATION: plan.layout}
    if role.serves_api:
        # Headless workers expose no /metrics; annotating them would only add targets that are down.
        annotations |= {
            "prometheus.io/scrape": "true",
            "prometheus.io/port": str(HTTP_PORT),
            "prometheus.io/path": "/metrics",
        }
    return annotations


def pod_template(
    md: ModelDeployment,
    spec: dict[str, Any],
    annotations: dict[str, str],
    *,
    extra_labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    return {
        "metadata": {"labels": {**common_labels(md), **(extra_labels or {})}, "annotations": annotations},
        "spec": spec,
    }
