"""The ModelDeployment resource: an open LLM served by vLLM on GPUs the operator plans for."""

from __future__ import annotations

import enum
import re
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from shinsa.api.base import CelRule, K8sModel, K8sStatusModel, defaulted, require_unique
from shinsa.api.conditions import Condition
from shinsa.api.resource import AGE_COLUMN, K8sResource, PrinterColumn

DEFAULT_VLLM_IMAGE = "vllm/vllm-openai:v0.33.0"
"""The vLLM release Shinsa is tested against; pinned so that upgrading Shinsa never re-rolls models."""

MODEL_URI_PATTERN = (
    r"^(hf://[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*"
    r"|s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/\S*)?"
    r"|pvc://[a-z0-9]([-a-z0-9.]*[a-z0-9])?(/\S*)?"
    r"|models:/[A-Za-z0-9][A-Za-z0-9._-]*(@[A-Za-z0-9][A-Za-z0-9_-]*|/[1-9][0-9]*))$"
)
COMMIT_SHA_PATTERN = r"^[0-9a-f]{40}$"
_LABEL_VALUE_PATTERN = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
_ENV_NAME_PATTERN = r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"
_PARSER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


# What a Service may be named (a DNS-1035 label), and so a ModelDeployment.
DNS_1035_PATTERN = "^[a-z]([-a-z0-9]*[a-z0-9])?$"
NAME_MAX = 63
KSERVE_NAME_MAX = NAME_MAX - len("-predictor")


_OBJECT_NAME = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"


def _is_dns_1035(name: str) -> bool:
    return len(name) <= NAME_MAX and re.fullmatch(DNS_1035_PATTERN[1:-1], name) is not None


def _is_commit(value: str | None) -> bool:
    return value is not None and len(value) == 40 and all(c in "0123456789abcdef" for c in value)


class S3Access(K8sModel):
    """How the serving pods reach an `s3://` model: vLLM streams the weights with the Run:ai model
    streamer, which reads the AWS SDK's variables (runai-model-streamer 0.17's s3 backend:
    AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN,
    AWS_DEFAULT_REGION, AWS_WEB_IDENTITY_TOKEN_FILE with AWS_ROLE_ARN, and
    RUNAI_STREAMER_S3_USE_VIRTUAL_ADDRESSING)."""

    endpoint: str | None = Field(default=None, pattern=r"^https?://\S+$", max_length=2048)
    """The S3-compatible endpoint; default: the operator's own (`AWS_ENDPOINT_URL`), the one it read
    the model's config.json from. Unset on both: AWS S3."""
    region: str | None = Field(default=None, pattern=r"^[a-z0-9-]+$", max_length=64)
    """The bucket's region (`AWS_DEFAULT_REGION`)."""
    virtual_addressing: bool | None = None
    """Virtual-hosted-style bucket addressing (`bucket.endpoint`); false for path style, which most
    S3-compatible servers need. Unset: the streamer's default."""
    credentials_secret_ref: str | None = Field(default=None, pattern=_OBJECT_NAME, max_length=253)
    """A Secret in this namespace with the keys `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` (and
    optionally `AWS_SESSION_TOKEN`), given to the pods as variables from the Secret: the values never
    appear in the pod spec. Unset: workload identity (`spec.scheduling.serviceAccountName` with an
    IRSA or similar annotation) or the node's role."""


class ModelSource(K8sModel):
    """Which weights to serve, and how far to trust the code that ships with them."""

    cel_rules: ClassVar[tuple[CelRule, ...]] = (
        CelRule(
            rule="!has(self.s3) || self.uri.startsWith('s3://') || self.uri.startsWith('models:/')",
            message="spec.model.s3 applies only to an s3:// (or models:/) spec.model.uri",
            holds=lambda m: m.s3 is None or m.uri.startswith(("s3://", "models:/")),
            field_path=".s3",
            reason="FieldValueForbidden",
        ),
        CelRule(
            rule=(
                "!has(self.trustRemoteCode) || !self.trustRemoteCode || "
                "(has(self.revision) && self.revision.matches('^[0-9a-f]{40}$'))"
            ),
            message=(
                "spec.model.revision must be a full 40-character lowercase hex commit SHA "
                "when spec.model.trustRemoteCode is true"
            ),
            holds=lambda m: not m.trust_remote_code or _is_commit(m.revision),
            field_path=".revision",
            reason="FieldValueInvalid",
        ),
    )

    uri: str = Field(pattern=MODEL_URI_PATTERN, max_length=2048)
    """Where the weights are: `hf://org/name` (Hugging Face Hub), `s3://bucket/prefix`, `pvc://claim/path`
    (a PersistentVolumeClaim in the same namespace) or `models:/name@alias` / `models:/name/version`
    (the MLflow model registry)."""
    revision: str | None = Field(default=None, min_length=1, max_length=255)
    """The revision to load (branch, tag or commit). A commit SHA makes the deployment reproducible;
    it is required when `trustRemoteCode` is true."""
    served_name: str | None = Field(default=None, min_length=1, max_length=253)
    """The model name clients pass in OpenAI API requests. Defaults to the resource name."""
    trust_remote_code: bool = False
    """Run Python code shipped with the model (custom tokenizers, modeling files). This executes
    third-party code inside the serving pod, so it must be pinned: `revision` has to be a 40-character
    commit SHA."""
    architecture: str | None = Field(default=None, pattern=r"^[A-Za-z][A-Za-z0-9_]*$", max_length=128)
    """Override the architecture read from the model's config.json (for example `Qwen3MoeForCausalLM`);
    only needed when the planner cannot read the config."""
    s3: S3Access | None = None
    """For `s3://` weights: the endpoint, addressing and credentials the serving pods use."""


class RopeScaling(K8sModel):
    """RoPE scaling to serve beyond the model's native context length."""

    type: Literal["yarn"]
    """The scaling method. Only YaRN is supported."""
    factor: float = Field(gt=1, le=64)
    """How many times the native context to extend to (for example 4: 32,768 -> 131,072 tokens)."""
    original_max_position_embeddings: int | None = Field(default=None, ge=1)
    """The native context length the model was trained with. Defaults to the model's native context:
    `max_position_embeddings` from its config.json, except for Qwen3 configs stating 40,960 (32,768 of
    context plus 8,192 of output), which are 32,768."""


class KeySelector(K8sModel):
    """A key of a Secret or ConfigMap in the resource's namespace."""

    name: str = Field(min_length=1, max_length=253)
    """The Secret or ConfigMap name."""
    key: str = Field(min_length=1, max_length=253)
    """The key within it."""
    optional: bool | None = None
    """Start the pod even when the object or key is missing."""


class EnvVarSource(K8sModel):
    """Where an environment variable's value is read from."""

    cel_rules: ClassVar[tuple[CelRule, ...]] = (
        CelRule(
            rule="has(self.secretKeyRef) != has(self.configMapKeyRef)",
            message="spec.serving.env[].valueFrom must set exactly one of secretKeyRef or configMapKeyRef",
            holds=lambda m: (m.secret_key_ref is None) != (m.config_map_key_ref is None),
        ),
    )

    secret_key_ref: KeySelector | None = None
    """A key of a Secret (for example a Hugging Face token)."""
    config_map_key_ref: KeySelector | None = None
    """A key of a ConfigMap."""


class EnvVar(K8sModel):
    """An environment variable of the serving container."""

    cel_rules: ClassVar[tuple[CelRule, ...]] = (
        CelRule(
            rule="!(has(self.value) && has(self.valueFrom))",
            message="spec.serving.env[]: set value or valueFrom, not both",
            holds=lambda m: m.value is None or m.value_from is None,
        ),
    )

    name: str = Field(pattern=_ENV_NAME_PATTERN, min_length=1, max_length=256)
    """The variable name."""
    value: str | None = None
    """A literal value."""
    value_from: EnvVarSource | None = None
    """Read the value from a Secret or ConfigMap instead."""


class ServingSpec(K8sModel):
    """How the inference engine runs the model."""

    engine: Literal["vllm"] = "vllm"
    """The inference engine. Only vLLM is supported."""
    image: str = Field(default=DEFAULT_VLLM_IMAGE, min_length=1, max_length=512)
    """The engine's container image. Pin a tag or digest."""
    max_model_len: int | None = Field(default=None, ge=1)
    """The longest sequence (prompt + output, tokens) to serve. Defaults to the model's native context
    (for Qwen3, 32,768 rather than the 40,960 its config.json states). It is never lowered to fit: when
    the GPUs cannot hold the KV cache for it, planning fails and the Planned condition's message says what
    would fit instead (a shorter length, when one would)."""
    rope_scaling: RopeScaling | None = None
    """Extend the context with YaRN. Not recommended when typical requests fit the native context."""
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"
    """The weight and activation dtype; `auto` uses the dtype from the model's config.json."""
    gpu_memory_utilization: float = Field(default=0.9, ge=0.1, le=0.99)
    """The fraction of each GPU's memory vLLM may use for weights, activations and KV cache."""
    reasoning_parser: str | None = Field(default=None, pattern=_PARSER_PATTERN, max_length=64)
    """vLLM's `--reasoning-parser`, to split reasoning from the final answer of thinking models."""
    tool_call_parser: str | None = Field(default=None, pattern=_PARSER_PATTERN, max_length=64)
    """vLLM's `--tool-call-parser`; enables automatic tool choice."""
    startup_timeout_seconds: int | None = Field(default=None, ge=60, le=86400)
    """How long a pod may take from start to a healthy engine before it is restarted. Default: a
    budget from the weights' size at a stated rate per source (the Hub ~50 MiB/s, a bucket
    ~200 MiB/s, a volume ~250 MiB/s) plus 300 s of initialisation; the plan in status shows it."""
    model_cache_claim: str | None = Field(default=None, pattern=_OBJECT_NAME, max_length=253)
    """A PersistentVolumeClaim in this namespace for the Hugging Face cache (`HF_HOME`), instead of
    the pod's own empty volume: a restarted pod, or a LeaderWorkerSet group recreated after one of
    its pods failed, finds the weights there instead of downloading them again. It must be writable
    by every pod of the deployment at once (ReadWriteMany) when replicas or nodes are more than one."""
    extra_args: list[str] = Field(default_factory=list, max_length=64)
    """More engine arguments, appended verbatim after the ones Shinsa plans."""
    env: list[EnvVar] = Field(
        default_factory=list,
        max_length=64,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    """Environment variables of the engine container."""

    @field_validator("env")
    @classmethod
    def _unique_env(cls, env: list[EnvVar]) -> list[EnvVar]:
        require_unique(env, "name", "spec.serving.env")
        return env


class GPURequirements(K8sModel):
    """Which GPUs to run on: name a product, or a minimum memory per GPU."""

    cel_rules: ClassVar[tuple[CelRule, ...]] = (
        CelRule(
            rule="has(self.product) != has(self.memoryGiB)",
            message="spec.resources.gpu must set exactly one of product or memoryGiB",
            holds=lambda m: (m.product is None) != (m.memory_gib is None),
        ),
    )

    product: str | None = Field(default=None, pattern=_LABEL_VALUE_PATTERN, min_length=1, max_length=63)
    """The GPU product as GPU feature discovery labels nodes (`nvidia.com/gpu.product`,
    for example `NVIDIA-H100-80GB-HBM3`)."""
    memory_gib: int | None = Field(default=None, ge=1, le=4096)
    """Any GPU with at least this much memory (GiB), matched against `nvidia.com/gpu.memory`."""
    count: int | None = Field(default=None, ge=1, le=1024)
    """GPUs per replica, over all of its nodes. When unset the planner chooses the fewest that hold
    the weights and the KV cache for `targetConcurrency` sequences of `maxModelLen` tokens. With
    `spec.parallelism`, the sizes left unset are filled so that tensor * data equals `count`; pins that
    cannot make up `count` fail planning."""
    target_concurrency: int = Field(default=1, ge=1, le=65536)
    """How many full-length sequences each replica must be able to hold in KV cache at once."""


class Resources(K8sModel):
    """The compute a replica needs."""

    gpu: GPURequirements
    """The GPUs of each replica."""


class Parallelism(K8sModel):
    """An explicit parallel layout for each replica. Fields left unset are chosen by the planner.

    vLLM spreads experts over every tensor- and data-parallel rank, so `expert` is either 1 (each expert
    is sliced over all of them, as tensor parallelism slices the rest) or exactly `tensor * data` (expert
    parallelism enabled). With `resources.gpu.count` set and `tensor` or `data` unset, `expert` may also
    equal `count`: the planner fills the unset sizes so that `tensor * data` is `count`.
    """

    tensor: int | None = Field(default=None, ge=1, le=1024)
    """Tensor-parallel size: GPUs each layer is split across."""
    data: int | None = Field(default=None, ge=1, le=1024)
    """Data-parallel size inside one replica (one engine rank per group of `tensor` GPUs); used with
    expert parallelism for mixture-of-experts models."""
    expert: int | None = Field(default=None, ge=1, le=1024)
    """Expert-parallel size: 1 turns expert parallelism off (even for a mixture-of-experts model), and
    `tensor * data` turns it on (`resources.gpu.count` when that fills `tensor` or `data`)."""
    nodes: int | None = Field(default=None, ge=1, le=1024)
    """Nodes per replica. More than one needs `backend: leaderworkerset`."""


class Backend(enum.StrEnum):
    """The workload kind that runs the replicas."""

    DEPLOYMENT = "deployment"
    LEADERWORKERSET = "leaderworkerset"
    KSERVE = "kserve"


class Toleration(K8sModel):
    """A pod toleration (the core/v1 shape)."""

    key: str | None = Field(default=None, max_length=316)
    """The taint key; empty with operator Exists matches every taint."""
    operator: Literal["Exists", "Equal"] | None = None
    """Exists or Equal (the default)."""
    value: str | None = Field(default=None, max_length=63)
    """The taint value to match with operator Equal."""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    """The taint effect to match; empty matches all effects."""
    toleration_seconds: int | None = None
    """How long a NoExecute taint is tolerated before eviction."""


class Scheduling(K8sModel):
    """Where the pods may run, on top of the GPU constraints Shinsa derives itself."""

    node_selector: dict[str, str] = Field(default_factory=dict)
    """More node labels the pods require."""
    tolerations: list[Toleration] = Field(default_factory=list, max_length=64)
    """Tolerations added to the pods (Shinsa adds the `nvidia.com/gpu` one itself)."""
    affinity: dict[str, Any] | None = None
    """A core/v1 Affinity for the pods, passed through unchanged."""
    priority_class_name: str | None = Field(default=None, max_length=253)
    """The pods' PriorityClass."""
    queue_name: str | None = Field(default=None, max_length=253)
    """A Kueue LocalQueue to admit the workload through (sets `kueue.x-k8s.io/queue-name`)."""
    service_account_name: str | None = Field(default=None, pattern=_OBJECT_NAME, max_length=253)
    """The pods' ServiceAccount: for workload identity (IRSA, GKE Workload Identity) to a model
    bucket. Default: the namespace's `default`."""


def _expert_fits(parallelism: Parallelism | None, count: int | None) -> bool:
    """vLLM's expert-parallel group is every tensor- and data-parallel rank: `expert` is 1 or their product,
    which is `count` when `count` fills a size left unset."""
    if parallelism is None or parallelism.expert is None or parallelism.expert == 1:
        return True
    if parallelism.expert == (parallelism.tensor or 1) * (parallelism.data or 1):
        return True
    open_size = parallelism.tensor is None or parallelism.data is None
    return open_size and count is not None and parallelism.expert == count


class ModelDeploymentSpec(K8sModel):
    """The desired state of a ModelDeployment."""

    cel_rules: ClassVar[tuple[CelRule, ...]] = (
        CelRule(
            # Here rather than on Parallelism: `count` fills the sizes left unset, so it takes part.
            rule=(
                "!has(self.parallelism) || !has(self.parallelism.expert) || self.parallelism.expert == 1 || "
                "self.parallelism.expert == (has(self.parallelism.tensor) ? self.parallelism.tensor : 1) * "
                "(has(self.parallelism.data) ? self.parallelism.data : 1) || "
                "((!has(self.parallelism.tensor) || !has(self.parallelism.data)) && "
                "has(self.resources.gpu.count) && self.parallelism.expert == self.resources.gpu.count)"
            ),
            message=(
                "spec.parallelism.expert must be 1, tensor * data (unset counts as 1) or, with tensor or "
                "data unset, spec.resources.gpu.count: it spans every tensor- and data-parallel rank"
            ),
            holds=lambda m: _expert_fits(m.parallelism, m.resources.gpu.count),
            field_path=".parallelism.expert",
            reason="FieldValueInvalid",
        ),
        CelRule(
            rule=(
                "!has(self.parallelism) || !has(self.parallelism.nodes) || self.parallelism.nodes <= 1 || "
                "(has(self.backend) && self.backend == 'leaderworkerset')"
            ),
            message="spec.parallelism.nodes > 1 requires spec.backend: leaderworkerset",
            holds=lambda m: (
                m.parallelism is None
                or (m.parallelism.nodes or 1) <= 1
                or m.backend == Backend.LEADERWORKERSET
            ),
            field_path=".backend",
            reason="FieldValueInvalid",
        ),
    )

    model: ModelSource
    """The model to serve."""
    serving: ServingSpec = defaulted(ServingSpec)
    """Inference engine settings."""
    resources: Resources
    """GPU requirements of each replica."""
    parallelism: Parallelism | None = None
    """Pin the parallel layout instead of letting the planner choose it."""
    replicas: int = Field(default=1, ge=0, le=1000)
    """Independent serving replicas behind the Service."""
    backend: Backend = Backend.DEPLOYMENT
    """What runs the replicas: a Deployment, a LeaderWorkerSet (needed for several nodes per replica)
    or a KServe InferenceService."""
    scheduling: Scheduling = defaulted(Scheduling)
    """Pod placement constraints."""


class ModelDeploymentPhase(enum.StrEnum):
    """A one-word summary of a ModelDeployment's state; conditions carry the detail."""

    PENDING = "Pending"
    PLANNING = "Planning"
    SCHEDULING = "Scheduling"
    LOADING = "Loading"
    READY = "Ready"
    DEGRADED = "Degraded"
    FAILED = "Failed"
    SCALED_TO_ZERO = "ScaledToZero"
    """Planned, with `spec.replicas: 0`: nothing is meant to run, so nothing is pending."""


class RegisteredVersion(K8sModel):
    """The MLflow registry's model version a `models:/` URI resolved to when the deployment last
    reconciled: what evaluations of this deployment are recorded against, and what promotion moves."""

    name: str = Field(min_length=1)
    """The registered model."""
    version: str = Field(pattern=r"^[0-9]+$")
    """Its version, as the registry numbers them."""
    source: str = Field(min_length=1)
    """The version's source URI, the one served."""
    revision: str | None = None
    """The revision the version was registered with (tag `shinsa.model.revision`), served when
    `spec.model.revision` names none."""


class ModelDeploymentStatus(K8sStatusModel):
    """The observed state of a ModelDeployment, written by the operator."""

    observed_generation: int | None = Field(default=None, ge=0)
    """The `metadata.generation` this status describes."""
    phase: ModelDeploymentPhase | None = None
    """Pending, Planning, Scheduling, Loading, Ready, Degraded, Failed or ScaledToZero."""
    conditions: list[Condition] = Field(
        default_factory=list,
        max_length=32,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    """The latest observations, one per type; `Ready` summarises them."""
    plan: dict[str, Any] | None = None
    """What the planner decided and why: memory budget, parallel layout, engine arguments."""
    endpoint: str | None = None
    """The in-cluster OpenAI-compatible base URL (`http://<service>.<namespace>.svc:<port>/v1`)."""
    model: str | None = None
    """The model as resolved for serving (URI and revision)."""
    registered_model: RegisteredVersion | None = None
    """For a `models:/` URI: the registered version served."""
    replicas: int | None = Field(default=None, ge=0)
    """Replicas that exist."""
    ready_replicas: int | None = Field(default=None, ge=0)
    """Replicas that answer requests."""
    layout: str | None = None
    """The parallel layout of a replica in short form, for example `TP2` or `DP4+EP`."""
    gpus: int | None = Field(default=None, ge=0)
    """GPUs requested by all replicas together."""
    gpus_per_replica: int | None = Field(default=None, ge=0)
    """GPUs requested by each replica."""


class ModelDeployment(K8sResource):
    """An open LLM served by vLLM on GPUs: Shinsa plans GPU memory and parallelism from the model's
    architecture, runs the pods and a Service, and reports what it planned and why it is (not) Ready."""

    cel_rules: ClassVar[tuple[CelRule, ...]] = (
        CelRule(
            # The name is the Service's, a DNS-1035 label, stricter than the DNS-1123 subdomain the
            # API server checks for custom objects: a name it lets through would be refused only at
            # the Service, after other children were applied. The LeaderWorkerSet's name is cut to
            # LWS_NAME_MAX (40) with a hash, so its pod hostnames (<lws>-<group>-<worker>) stay
            # within 63 characters for any name this rule accepts.
            rule=(
                f"self.metadata.name.size() <= {NAME_MAX} && self.metadata.name.matches('{DNS_1035_PATTERN}')"
            ),
            message=(
                f"metadata.name of a ModelDeployment must be a DNS-1035 label (a-z, 0-9 and '-', a letter "
                f"first, at most {NAME_MAX}): it names the Service; LeaderWorkerSet pods get it cut to 40 "
                "with a hash"
            ),
            holds=lambda m: m.metadata.name is None or _is_dns_1035(m.metadata.name),
        ),
        CelRule(
            # KServe names the predictor's Deployment and Service `<name>-predictor`.
            rule=(
                "!has(self.spec.backend) || self.spec.backend != 'kserve' || "
                f"self.metadata.name.size() <= {KSERVE_NAME_MAX}"
            ),
            message=(
                f"metadata.name of a ModelDeployment with spec.backend: kserve must be at most "
                f"{KSERVE_NAME_MAX} characters: KServe names its predictor Service <name>-predictor"
            ),
            holds=lambda m: (
                m.metadata.name is None
                or m.spec.backend != Backend.KSERVE
                or len(m.metadata.name) <= KSERVE_NAME_MAX
            ),
        ),
    )
    plural: ClassVar[str] = "modeldeployments"
    singular: ClassVar[str] = "modeldeployment"
    short_names: ClassVar[tuple[str, ...]] = ("md",)
    printer_columns: ClassVar[tuple[PrinterColumn, ...]] = (
        PrinterColumn("Model", "string", ".spec.model.uri", "Where the weights come from."),
        PrinterColumn("GPUs", "integer", ".status.gpus", "GPUs requested by all replicas."),
        PrinterColumn("Layout", "string", ".status.layout", "Parallel layout of one replica."),
        PrinterColumn("Ready", "string", '.status.conditions[?(@.type=="Ready")].status', "Ready condition."),
        PrinterColumn("Endpoint", "string", ".status.endpoint", "OpenAI-compatible base URL."),
        AGE_COLUMN,
        PrinterColumn("Phase", "string", ".status.phase", "Summary of the state.", priority=1),
    )

    api_version: Literal["shinsa.dev/v1alpha1"] = "shinsa.dev/v1alpha1"
    kind: Literal["ModelDeployment"] = "ModelDeployment"
    spec: ModelDeploymentSpec
    status: ModelDeploymentStatus = Field(default_factory=ModelDeploymentStatus)
