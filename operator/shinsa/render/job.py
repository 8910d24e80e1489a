"""Pure: an EvalRun, the engine config made for it and the operator's defaults -> the ConfigMap and the
Job that run `shinsa eval run`.

The ConfigMap holds the engine config and nothing secret: API keys reach the evaluator only as
environment variables from the Secret keys the spec names. Paths are passed on the command line
(`--config`, `--output`), which is also what lets the dev cluster's local runner map them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from shinsa.api import API_VERSION, EvalRun, SecretKeyRef, Toleration
from shinsa.render.labels import (
    INSTANCE_LABEL,
    KUEUE_QUEUE_LABEL,
    MANAGED_BY_LABEL,
    MANAGER,
    NAME_LABEL,
    RenderError,
    bounded_name,
)

EVALUATOR_APP = "shinsa-evaluator"
EVAL_RUN_LABEL = "shinsa.dev/eval-run"
CONFIG_DIR = "/etc/shinsa"
CONFIG_FILE = "evalrun.yaml"
CONTAINER = "evaluator"
TERMINATION_LOG = "/dev/termination-log"
"""The kubelet's default terminationMessagePath, named explicitly because the evaluator writes it."""
# Enough for an async HTTP client and the bootstrap; the evaluator holds no model.
DEFAULT_REQUESTS = {"cpu": "250m", "memory": "512Mi"}


@dataclass(frozen=True)
class JobDefaults:
    """The operator's settings for evaluation Jobs whose EvalRun leaves them unset."""

    image: str
    service_account: str = "default"
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: tuple[Toleration, ...] = ()
    s3_endpoint_url: str | None = None
    env_secret: str | None = None
    """A Secret in the run's namespace whose keys become the evaluator's environment (S3 and MLflow
    artifact credentials), optional: a platform with workload identity needs none."""


@dataclass(frozen=True)
class ExitPolicy:
    """What the evaluator's exit codes mean to the Job controller (`podFailurePolicy`). The codes
    are the engine's (`shinsa.evaluation.results.ExitCode`), passed in by the controller because
    render, a sibling of the engine, does not import it."""

    final: tuple[int, ...]
    """Exits a retry cannot change (a refused config, too many failed requests): the Job fails at
    once instead of running the evaluator again up to backoffLimit."""
    stopped: int
    """The exit of an evaluator stopped by SIGTERM after flushing its checkpoint: its pod was
    deleted or evicted. The replacement resumes, and the stop does not count against backoffLimit."""


def _identity(run: EvalRun) -> tuple[str, str, str]:
    name, namespace, uid = run.metadata.name, run.metadata.namespace, run.metadata.uid
    if not name or not namespace or not uid:
        raise RenderError(
            "metadata.name, metadata.namespace and metadata.uid must be set to render an EvalRun"
        )
    return name, namespace, uid


def job_name(run: EvalRun) -> str:
    """The Job's (and ConfigMap's) name: fixed by the run's name, so that applying again after an
    operator restart finds the same Job instead of starting a second evaluation."""
    name, _, _ = _identity(run)
    return bounded_name(name, "eval", 63)


def labels(run: EvalRun) -> dict[str, str]:
    name, _, _ = _identity(run)
    return {NAME_LABEL: EVALUATOR_APP, INSTANCE_LABEL: name, MANAGED_BY_LABEL: MANAGER, EVAL_RUN_LABEL: name}


def _meta(run: EvalRun, extra_labels: dict[str, str] | None = None) -> dict[str, Any]:
    name, namespace, uid = _identity(run)
    return {
        "name": job_name(run),
        "namespace": namespace,
        "labels": {**labels(run), **(extra_labels or {})},
        "ownerReferences": [
            {
                "apiVersion": API_VERSION,
                "kind": run.kind,
                "name": name,
                "uid": uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
    }


def render_config_map(run: EvalRun, config: dict[str, Any]) -> dict[str, Any]:
    """The engine config (`EvalConfig.to_k8s()`) as the file `shinsa eval run --config` reads."""
    text = yaml.safe_dump(config, sort_keys=True, allow_unicode=True)
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(run), "data": {CONFIG_FILE: text}}


def _secret_env(name: str, ref: SecretKeyRef) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}}}


def pod_failure_policy(exits: ExitPolicy) -> dict[str, Any]:
    """The Job's `podFailurePolicy` (batch/v1 of the pinned Kubernetes 1.34, GA there): rules are
    matched in order and the first match decides, so only crashes (exit 1, OOM kills) count
    against backoffLimit. A pod that is deleted, evicted or preempted is retried for free; with a
    podFailurePolicy the Job controller creates its replacement only once it is terminal
    (podReplacementPolicy Failed), so two evaluators never write one checkpoint at once. Requires
    `restartPolicy: Never`."""

    def on_exit(action: str, codes: tuple[int, ...]) -> dict[str, Any]:
        # The API server requires the values ascending and unique.
        values = sorted({int(code) for code in codes})
        return {"action": action,
                "onExitCodes": {"containerName": CONTAINER, "operator": "In", "values": values}}  # fmt: skip

    return {
        "rules": [
            on_exit("FailJob", exits.final),
            on_exit("Ignore", (exits.stopped,)),
            # Evicted, preempted or its node gone: killed whatever its exit code.
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
        ]
    }


def render_job(
    run: EvalRun,
    output_dir: str,
    secret_env: dict[str, SecretKeyRef],
    defaults: JobDefaults,
    *,
    exits: ExitPolicy,
) -> dict[str, Any]:
    """The evaluation Job. `output_dir`: the engine config's results directory, an emptyDir here;
    `secret_env`: variable -> Secret key (`eval_desired.secret_env`); `exits`: which exit codes
    are final and which a stop (`pod_failure_policy`)."""
    spec = run.spec.job
    env: list[dict[str, Any]] = []
    if defaults.s3_endpoint_url:
        env.append({"name": "AWS_ENDPOINT_URL", "value": defaults.s3_endpoint_url})
    env.extend(_secret_env(name, ref) for name, ref in sorted(secret_env.items()))
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": spec.image or defaults.image,
        "command": ["shinsa"],
        "args": [
            "eval",
            "run",
            "--config",
            f"{CONFIG_DIR}/{CONFIG_FILE}",
            "--output",
            output_dir,
            "--json-logs",
            "--termination-log",
            TERMINATION_LOG,
        ],
        "env": env,
        "resources": {
            "requests": dict(spec.resources.requests or DEFAULT_REQUESTS),
            **({"limits": dict(spec.resources.limits)} if spec.resources.limits else {}),
        },
        # The evaluator writes one line saying how it ended; its last log lines stand in when it
        # could not (killed, OOM).
        "terminationMessagePath": TERMINATION_LOG,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": [
            {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
            {"name": "results", "mountPath": output_dir},
        ],
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
    }
    if defaults.env_secret:
        container["envFrom"] = [{"secretRef": {"name": defaults.env_secret, "optional": True}}]
    node_selector = spec.node_selector if spec.node_selector is not None else defaults.node_selector
    tolerations = spec.tolerations if spec.tolerations is not None else list(defaults.tolerations)
    pod: dict[str, Any] = {
        # A retry is a new pod, which the Job counts; podFailurePolicy also requires Never.
        "restartPolicy": "Never",
        "serviceAccountName": spec.service_account_name or defaults.service_account,
        "containers": [container],
        "volumes": [
            {"name": "config", "configMap": {"name": job_name(run)}},
            {"name": "results", "emptyDir": {}},
        ],
    }
    if node_selector:
        pod["nodeSelector"] = dict(node_selector)
    if tolerations:
        pod["tolerations"] = [t.to_k8s() for t in tolerations]
    job_spec: dict[str, Any] = {
        "backoffLimit": spec.backoff_limit,
        "podFailurePolicy": pod_failure_policy(exits),
        "template": {"metadata": {"labels": labels(run)}, "spec": pod},
    }
    if spec.active_deadline_seconds is not None:
        job_spec["activeDeadlineSeconds"] = spec.active_deadline_seconds
    # Kueue reads the queue from the Job; it suspends the Job itself until the workload is admitted.
    queue = {KUEUE_QUEUE_LABEL: spec.queue_name} if spec.queue_name else None
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": _meta(run, queue), "spec": job_spec}
