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
    """Scheduled=True and Ready=False (phase ScaledToZero): `spec.replicas` is 0."""
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
    the EvalRun controller (`shinsa.controllers.eval_run`)."""

    TARGET_READY = "TargetReady"
    """True once the model to evaluate answers: its ModelDeployment is Ready (or `spec.model` gives
    an endpoint); False while the run waits for it. No Job is created before it is True."""
    JOB_COMPLETE = "JobComplete"
    """Unknown while the evaluation Job waits (for its pod, for Kueue quota) or runs; True when it
    succeeded and its results were read; False when it failed, ended Incomplete or was stopped
    (the reason says which, the message carries the evaluator's last words)."""
    GATES_EVALUATED = "GatesEvaluated"
    """Written after JobComplete=True when `spec.gates` is set: True once the decision is made, its
    reason being the decision (Passed, Failed, Inconclusive); False (reason NotEvaluated) when the
    run ended without results to gate."""
    PROMOTED = "Promoted"
    """Written after GatesEvaluated=True when `spec.promote` is set: True once the candidate is a
    version of the registered model and the alias points at it; False with the reason nothing
    moved; Unknown while the registry does not answer (retried)."""


class EvalRunReason(enum.StrEnum):
    """Every reason an EvalRun's conditions carry, grouped by the condition that carries it."""

    # TargetReady
    WAITING_FOR_DEPLOYMENT = "WaitingForDeployment"
    """TargetReady=False, by the reconcile: the `deploymentRef` ModelDeployment does not exist or is
    not Ready; re-checked on every resync. The message names it and its own Ready reason."""
    DEPLOYMENT_READY = "DeploymentReady"
    """TargetReady=True, by the reconcile: the ModelDeployment is Ready; the message is its endpoint."""
    ENDPOINT_GIVEN = "EndpointGiven"
    """TargetReady=True, by the reconcile: `spec.model.endpoint` names the endpoint directly."""

    # JobComplete
    CONFIG_INVALID = "ConfigInvalid"
    """JobComplete=False, by the reconcile (phase Failed): the spec cannot become an engine
    configuration, or the stored object does not validate; not retried."""
    JOB_REJECTED = "JobRejected"
    """JobComplete=Unknown, by the reconcile, retried: the API server refused the ConfigMap or Job
    (quota, admission); the message is the server's."""
    JOB_PENDING = "JobPending"
    """JobComplete=Unknown, by the reconcile: the Job exists and its pod has not started yet."""
    QUOTA_PENDING = "QuotaPending"
    """JobComplete=Unknown, by the reconcile: Kueue holds the Job suspended until its LocalQueue's
    ClusterQueue has quota; the message is Kueue's."""
    JOB_RUNNING = "JobRunning"
    """JobComplete=Unknown, by the reconcile: the evaluator generates and judges."""
    SUCCEEDED = "Succeeded"
    """JobComplete=True, by the reconcile: the Job succeeded and its results are in the status."""
    RESULTS_UNAVAILABLE = "ResultsUnavailable"
    """JobComplete=Unknown, by the reconcile, retried: the Job succeeded but its results cannot be
    read yet (S3 unreachable). GatesEvaluated=Unknown, by the reconcile, retried: the baseline's
    MLflow or S3 does not answer; the run stays Gating until it does."""
    JOB_FAILED = "JobFailed"
    """JobComplete=False, by the reconcile (phase Failed): the evaluator crashed, the backoff limit
    or the deadline was reached; the message carries its exit code and termination message."""
    CONFIG_REFUSED = "ConfigRefused"
    """JobComplete=False, by the reconcile (phase Failed): the evaluator exited 2, refusing its
    configuration (a dataset it cannot read, a key variable missing)."""
    INCOMPLETE = "Incomplete"
    """JobComplete=False, by the reconcile (phase Incomplete): the evaluator exited 3, too many
    requests failed (a judge that is down) for the scores to be trusted. Never gated to Passed."""
    STOPPED = "Stopped"
    """JobComplete=False, by the reconcile (phase Failed): the evaluator was stopped (exit 143,
    SIGTERM) or the Job was deleted before it finished."""

    # GatesEvaluated: the reason is the decision of `shinsa.gates`
    PASSED = "Passed"
    """GatesEvaluated=True: every rule held."""
    FAILED = "Failed"
    """GatesEvaluated=True: at least one rule failed; the message names it."""
    INCONCLUSIVE = "Inconclusive"
    """GatesEvaluated=True: a rule could not decide (intervals too wide, too few pairs), or the
    baseline could not be found or read (the message says why)."""
    NOT_EVALUATED = "NotEvaluated"
    """GatesEvaluated=False: the run ended Failed or Incomplete, so there is nothing to gate."""

    # Promoted
    PROMOTION_DONE = "Promoted"
    """Promoted=True: the version exists and the alias points at it; `status.promotion` says which."""
    NOT_PASSED = "NotPassed"
    """Promoted=False: the decision was Failed or Inconclusive (or the run did not succeed)."""
    DISABLED = "Disabled"
    """Promoted=False: `spec.promote.enabled` is false; the decision is recorded, nothing moves."""
    FORBIDDEN = "Forbidden"
    """Promoted=False: no PromotionPolicy lets this namespace promote this model with these gates;
    the message names the policy and what it requires."""
    NOT_PROMOTABLE = "NotPromotable"
    """Promoted=False: the candidate has no model source to register (`spec.model.endpoint`, or a
    deployment whose source is not one a ModelDeployment can serve)."""
    SUPERSEDED = "Superseded"
    """Promoted=False: the alias already points at a newer version promoted since; moving it back
    would undo that promotion (`shinsa promote rollback` does it on purpose)."""
    REGISTRY_UNAVAILABLE = "RegistryUnavailable"
    """Promoted=Unknown, retried: MLflow's registry did not answer; the run stays Promoting."""
