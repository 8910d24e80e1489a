"""The condition types and reasons each Shinsa resource reports, and who writes them when.

Every `type` and `reason` a controller writes into `status.conditions` is a member here, so that a
platform team (alerts, `kubectl wait --for=condition=...`) and the controllers read one list. The
values are the wire strings: they are part of the API and do not change once released.

A ModelDeployment is a *living* resource: it converges on `Ready` and may leave it again. An
EvalRun is a *batch* resource: it runs once and ends in `Succeeded` True or False (phase
Succeeded, Failed or Incomplete), the way a Job or a Tekton TaskRun ends.
"""

from __future__ import annotations

import enum

# -- ModelDeployment ---------------------------------------------------------------------------------


class ModelDeploymentCondition(enum.StrEnum):
    """The condition types of a ModelDeployment. `Planned` is written by the reconcile (spec ->
    plan -> applied children); `Scheduled`, `Ready` and `Degraded` are derived from the serving
    pods, by the reconcile and again on every pod event."""

    PLANNED = "Planned"
    """True once the plan was made and every child applied; False with the reason that stopped it
    (a spec the planner refuses, a model source that cannot be read, a child the cluster refused)."""
    SCHEDULED = "Scheduled"
    """True when every pod is bound to a node; False with the scheduler's reason; Unknown before
    the pods exist or while nothing is planned."""
    READY = "Ready"
    """True when `spec.replicas` replicas answer; otherwise False with the reason of the step that
    holds them back (Planned's or Scheduled's reason, Loading, CrashLoop...). The printer column."""
    DEGRADED = "Degraded"
    """True (bad news: the one condition whose True is a problem) when a serving container crash-loops
    or restarts repeatedly; False otherwise."""


class ModelDeploymentReason(enum.StrEnum):
    """Every reason a ModelDeployment's conditions carry. Planned=False reasons marked *retried*
    heal without a spec edit (the operator retries them and the phase stays Pending); the others
    need the spec (or the cluster) changed, and the phase is Failed."""

    # Planned=True
    PLANNED = "Planned"
    """Planned=True, by the reconcile: the message summarises the layout and why it was chosen."""

    # Planned=False: the spec as written cannot be served (phase Failed).
    INVALID_SPEC = "InvalidSpec"
    """Planned=False and Ready=False, by the reconcile, when the stored object does not validate
    against the operator's models (a CRD older than the operator); not retried."""
    INVALID_EXTRA_ARGS = "InvalidExtraArgs"
    """Planned=False, by the reconcile: `spec.serving.extraArgs` sets a flag the plan owns."""
    UNKNOWN_GPU = "UnknownGPU"
    """Planned=False, by the reconcile: `spec.resources.gpu.product` is not a GPU the planner knows."""
    PLAN_FAILED = "PlanFailed"
    """Planned=False, by the reconcile: the planner found no layout; the message names the fields
    at fault and what would fit."""
    RENDER_FAILED = "RenderFailed"
    """Planned=False, by the reconcile: the plan cannot be expressed by the chosen backend."""
    ARCHITECTURE_UNKNOWN = "ArchitectureUnknown"
    """Planned=False, by the reconcile: an `hf://` model outside the built-in catalog (the operator
    does not read the Hub)."""
    UNSUPPORTED_ARCHITECTURE = "UnsupportedArchitecture"
    """Planned=False, by the reconcile: the model's config.json names an architecture the planner
    cannot size."""
    CONFIG_INVALID = "ConfigInvalid"
    """Planned=False, by the reconcile: the model's config.json was read and is not valid JSON (or
    the reader Job's answer could not be decoded)."""
    CONFIG_READER_CONFLICT = "ConfigReaderConflict"
    """Planned=False, by the reconcile: the name of a `pvc://` model's config-reader Job is taken by
    a Job of another owner."""
    REGISTRY_NOT_CONFIGURED = "RegistryNotConfigured"
    """Planned=False, by the reconcile: a `models:/` URI and no MLflow tracking URI in the
    operator's settings."""
    MODEL_NOT_REGISTERED = "ModelNotRegistered"
    """Planned=False, by the reconcile or the registry follower: the registry answered and has no
    such model, alias or version, or its source is not one vLLM can load."""

    # Planned=False: retried by the operator (phase Pending).
    CONFIG_PENDING = "ConfigPending"
    """Planned=False, *retried*: the Job reading a `pvc://` model's config.json still runs."""
    CONFIG_UNREADABLE = "ConfigUnreadable"
    """Planned=False, *retried*: config.json could not be read (S3 refused or unreachable, the
    reader Job failed)."""
    REGISTRY_UNAVAILABLE = "RegistryUnavailable"
    """Planned=False, *retried*: the MLflow registry did not answer while nothing was planned yet
    (with a plan in place, an outage changes no condition: what runs keeps serving)."""
    BACKEND_UNAVAILABLE = "BackendUnavailable"
    """Planned=False, *retried*: the cluster does not serve the backend's kind (LeaderWorkerSet or
    KServe CRDs missing)."""
    REJECTED = "Rejected"
    """Planned=False, *retried*: the API server refused a child (schema, admission); the message is
    the server's."""

    # Scheduled, Ready, Degraded: derived from the pods.
    NOT_PLANNED = "NotPlanned"
    """Scheduled=Unknown and Degraded=False (and Ready=False before any Planned exists): nothing to
    run until the plan succeeds."""
    SCHEDULED = "Scheduled"
    """Scheduled=True: every pod is on a node; the message lists the nodes."""
    INSUFFICIENT_GPU = "InsufficientGPU"
    """Scheduled=False and Ready=False: the scheduler found no node with enough free `nvidia.com/gpu`."""
    UNSCHEDULABLE = "Unschedulable"
    """Scheduled=False and Ready=False: the scheduler cannot place a pod for another reason (taints,
    affinity, other resources); the message is the scheduler's."""
    PENDING = "Pending"
    """Scheduled=Unknown or Ready=False: pods are still being created or placed."""
    SCALED_TO_ZERO = "ScaledToZero"
    """Scheduled=True and Ready=False: `spec.replicas` is 0."""
    LOADING = "Loading"
    """Ready=False: the pods are placed and vLLM is loading the weights."""
    READY = "Ready"
    """Ready=True: every replica answers on /v1/models."""
    CRASH_LOOP = "CrashLoop"
    """Degraded=True (and Ready=False while too few replicas answer): a serving container
    crash-loops or restarted more than the operator tolerates; the message names pod and container."""
    HEALTHY = "Healthy"
    """Degraded=False: pods exist and none crash-loops."""
    NO_PODS = "NoPods"
    """Degraded=False: no pods exist yet (or `spec.replicas` is 0)."""


# -- EvalRun -----------------------------------------------------------------------------------------


class EvalRunCondition(enum.StrEnum):
    """The condition types of an EvalRun, in the order a run passes through them. All are written by
    the EvalRun controller; `Succeeded` is the summary a user waits on."""

    TARGET_READY = "TargetReady"
    """True once the model to evaluate answers: its ModelDeployment is Ready (or `spec.target` gives
    an endpoint); False while the run waits for it. Nothing is started before it is True."""
    JOB_CREATED = "JobCreated"
    """True once the evaluation Job (and its configuration) is applied; False when the spec cannot
    become an engine configuration or the API server refused the Job."""
    RUNNING = "Running"
    """True while the Job's evaluator runs; False while it waits (for its pod, or for Kueue to admit
    the workload) and after it ended (the reason then says how)."""
    SUCCEEDED = "Succeeded"
    """The outcome, as for a batch resource: Unknown until the Job ends, then True (scores written)
    or False (failed, incomplete, stopped). Phase Succeeded, Failed or Incomplete follows it."""
    GATES_PASSED = "GatesPassed"
    """Written after Succeeded=True when `spec.gates` is set: True when every rule passed against the
    baseline, False when one failed, Unknown when the comparison is inconclusive or cannot be made
    yet. The reason is the verdict (`status.gate`)."""
    PROMOTED = "Promoted"
    """Written after the gates: True once the registry alias points at the evaluated version; False
    when promotion is not configured or the gates did not pass."""


class EvalRunReason(enum.StrEnum):
    """Every reason an EvalRun's conditions carry, grouped by the condition that carries it."""

    # TargetReady
    WAITING_FOR_DEPLOYMENT = "WaitingForDeployment"
    """TargetReady=False: the target ModelDeployment does not exist yet or is not Ready; re-checked
    when it changes. The message carries the deployment's own Ready reason."""
    DEPLOYMENT_READY = "DeploymentReady"
    """TargetReady=True: the target ModelDeployment is Ready; the message is its endpoint."""
    ENDPOINT_GIVEN = "EndpointGiven"
    """TargetReady=True: `spec.target` names an endpoint directly, which the evaluator will check."""

    # JobCreated
    CONFIG_INVALID = "ConfigInvalid"
    """JobCreated=False and Succeeded=False: the spec cannot become an engine configuration (an
    unknown benchmark, a dataset or Secret reference the engine cannot use); not retried."""
    JOB_CREATED = "JobCreated"
    """JobCreated=True: the Job is applied; the message names it."""
    JOB_REJECTED = "JobRejected"
    """JobCreated=False, retried: the API server refused the Job (quota, admission); the message is
    the server's."""

    # Running
    JOB_PENDING = "JobPending"
    """Running=False and Succeeded=Unknown: the Job exists and its pod has not started (image pull,
    scheduling)."""
    QUOTA_PENDING = "QuotaPending"
    """Running=False and Succeeded=Unknown: the Job waits for Kueue to admit its workload into the
    LocalQueue's quota."""
    JOB_RUNNING = "JobRunning"
    """Running=True and Succeeded=Unknown: the evaluator generates and judges; progress is in its log
    and in MLflow."""
    FINISHED = "Finished"
    """Running=False: the Job ended; Succeeded says how."""

    # Succeeded
    JOB_SUCCEEDED = "JobSucceeded"
    """Succeeded=True: the evaluator wrote its results (phase Succeeded); `status.scores` holds the
    summary and `status.mlflowRunId` the run."""
    JOB_FAILED = "JobFailed"
    """Succeeded=False: the Job failed (evaluator crash, backoff limit, deadline; phase Failed); the
    message carries the evaluator's last words."""
    INCOMPLETE = "Incomplete"
    """Succeeded=False: the evaluator finished with too many failed requests for the scores to be
    trusted (its "incomplete" exit; phase Incomplete). Gates are not applied to it."""
    STOPPED = "Stopped"
    """Succeeded=False: the Job was deleted or suspended before it finished (phase Failed)."""

    # GatesPassed: the verdict of `shinsa.gates`
    PASSED = "Passed"
    """GatesPassed=True: every rule held against the baseline."""
    FAILED = "Failed"
    """GatesPassed=False: at least one rule regressed beyond its threshold; the message names it."""
    INCONCLUSIVE = "Inconclusive"
    """GatesPassed=Unknown: the intervals are too wide to call (too few questions or rounds)."""
    BASELINE_UNAVAILABLE = "BaselineUnavailable"
    """GatesPassed=Unknown, retried: the baseline's results cannot be fetched (no champion yet, its
    run has no results)."""

    # Promoted
    PROMOTED = "Promoted"
    """Promoted=True: the registry alias now points at the evaluated version (idempotent by the
    EvalRun's uid); the ModelDeployment following the alias rolls on its own."""
    NOT_PASSED = "NotPassed"
    """Promoted=False: the gates did not pass (Failed or Inconclusive), so nothing is promoted."""
    DISABLED = "Disabled"
    """Promoted=False: `spec.promotion` is not set; the run only reports."""
    REGISTRY_UNAVAILABLE = "RegistryUnavailable"
    """GatesPassed=Unknown or Promoted=False, retried: the MLflow registry did not answer (fetching
    the baseline, creating the version or moving the alias)."""
