"""Pure: an EvalRun, the endpoint of its target and the operator's settings -> the engine's config.

`engine_config` is the only translation between the resource and what the evaluation Job runs:
the spec passes through unchanged (it is the engine's own schema) except for the fields the
operator acts on itself (`OPERATOR_ONLY`), and the operator fills in what only it knows: where the
model is served, the default MLflow server, where results and the checkpoint go. No kopf, no
kubernetes client, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shinsa.api import EvalRun, ModelDeployment, SecretKeyRef
from shinsa.api.model_deployment import RopeScaling
from shinsa.evaluation.config import MODEL_KEY_ENV, OPERATOR_ONLY, EvalConfig, judge_key_env
from shinsa.evaluation.mlflow_log import (
    TAG_EVALRUN_NAME,
    TAG_EVALRUN_NAMESPACE,
    TAG_EVALRUN_UID,
    TAG_MODEL_VERSION,
    TAG_REGISTERED_MODEL,
)

DEFAULT_OUTPUT_DIR = "/var/run/shinsa/results"


# Spec fields only the operator reads, besides the engine's OPERATOR_ONLY: how the Job runs and
# where its files go are the Job's and the engine options' business, not the engine spec's.
JOB_ONLY = ("job", "storage")


@dataclass(frozen=True)
class EvalSettings:
    """The operator settings an evaluation's engine config depends on."""

    tracking_uri: str | None = None
    """The MLflow tracking server of runs whose spec names none; None: such runs log nothing."""
    results_bucket: str | None = None
    """The bucket of runs whose `spec.storage` names none; with neither, checkpoint and results stay
    in the output directory, lost with the pod (and the operator cannot read the results)."""
    output_dir: str = DEFAULT_OUTPUT_DIR
    """The results directory inside the evaluation Job."""


@dataclass(frozen=True)
class ModelVersion:
    """The registered model version a ModelDeployment serves."""

    name: str
    version: str


def served_version(md: ModelDeployment) -> ModelVersion | None:
    """The registered model and version `md` serves, as its controller resolved the `models:/`
    URI when it last reconciled (an alias may have moved since; what is served is what is
    evaluated). None for other sources, or before the URI is resolved."""
    registered = md.status.registered_model
    if registered is None:
        return None
    return ModelVersion(registered.name, registered.version)


def served_revision(md: ModelDeployment) -> str | None:
    """The revision `md` serves: its spec's, or the one its registered version was promoted with."""
    registered = md.status.registered_model
    return md.spec.model.revision or (registered.revision if registered is not None else None)


def mlflow_tags(run: EvalRun, version: ModelVersion | None) -> dict[str, str]:
    """The MLflow parent run's tags that name the EvalRun and the model version it evaluated: a
    later baseline `mlflowModel: name@alias` finds this evaluation by the last two
    (`shinsa.registry.evaluations.evaluation_filter`)."""
    meta = run.metadata
    known = {TAG_EVALRUN_NAMESPACE: meta.namespace, TAG_EVALRUN_NAME: meta.name, TAG_EVALRUN_UID: meta.uid}
    tags = {key: value for key, value in known.items() if value}
    if version is not None:
        tags[TAG_REGISTERED_MODEL] = version.name
        tags[TAG_MODEL_VERSION] = version.version
    return tags


def _drop(wire: dict[str, Any], path: str) -> None:
    *parents, leaf = path.split(".")
    node: Any = wire
    for part in parents:
        node = node.get(part) if isinstance(node, dict) else None
    if isinstance(node, dict):
        node.pop(leaf, None)


def run_storage(run: EvalRun, default_bucket: str | None) -> str | None:
    """`s3://<bucket>/<prefix>/<namespace>/<name>/<uid>`: the run's own place for checkpoint and
    results. A retried pod of the same run finds its checkpoint there; a recreated EvalRun of the same
    name (a new uid) starts afresh instead of reusing its predecessor's answers. None without a bucket."""
    bucket = run.spec.storage.bucket or default_bucket
    if bucket is None:
        return None
    parts = [
        run.spec.storage.prefix.strip("/"),
        run.metadata.namespace or "default",
        run.metadata.name or "unnamed",
    ]
    if run.metadata.uid:
        parts.append(run.metadata.uid)
    return f"s3://{bucket}/" + "/".join(parts)


def checkpoint_uri(storage: str) -> str:
    """Where the engine keeps its checkpoint under the run's storage."""
    return f"{storage}/checkpoint"


def results_uri(storage: str) -> str:
    """Where the engine uploads its results files under the run's storage."""
    return f"{storage}/results"


def engine_config(
    run: EvalRun,
    endpoint: str,
    settings: EvalSettings,
    *,
    served_name: str | None = None,
    version: ModelVersion | None = None,
    revision: str | None = None,
    rope_scaling: RopeScaling | None = None,
) -> EvalConfig:
    """The engine config the evaluation Job of `run` runs.

    `endpoint` is the base URL the model is reached at (a deploymentRef's Service, or the spec's own
    endpoint); `served_name` the deployment's served name, used when the spec names none;
    `version` the registered model version the deployment serves (`served_version`), tagged on the
    MLflow run; `revision` the revision it serves (`served_revision`), used when the spec names none;
    `rope_scaling` the deployment's `spec.serving.ropeScaling`, used when the spec states none (the
    long-context results carry the YaRN caveat).
    Raises ValueError when the served name is unknown, and pydantic's ValidationError when the
    result is not runnable.
    """
    wire = run.spec.to_k8s()
    for path in (*OPERATOR_ONLY, *JOB_ONLY):
        _drop(wire, path)
    name = run.spec.model.served_name or served_name
    if name is None:
        raise ValueError("spec.model.servedName: unset, and no served name of the deployment was given")
    wire["model"] = {**wire["model"], "endpoint": endpoint, "servedName": name}
    if revision and "revision" not in wire["model"]:
        wire["model"]["revision"] = revision
    if rope_scaling is not None and "ropeScaling" not in wire["model"]:
        wire["model"]["ropeScaling"] = rope_scaling.to_k8s()
    if run.spec.mlflow.tracking_uri is None and settings.tracking_uri is not None:
        wire["mlflow"] = {**wire["mlflow"], "trackingUri": settings.tracking_uri}
    engine: dict[str, Any] = {"outputDir": settings.output_dir}
    storage = run_storage(run, settings.results_bucket)
    if storage is not None:
        engine["checkpointUri"] = checkpoint_uri(storage)
        engine["resultsUri"] = results_uri(storage)
    if run.metadata.name:
        engine["mlflowRunName"] = run.metadata.name
    engine["mlflowTags"] = mlflow_tags(run, version)
    # API keys: the engine's defaults (MODEL_KEY_ENV, judge_key_env) are the variables the Job sets
    # from the Secret refs (`secret_env`), so no key variable is named here.
    return EvalConfig.model_validate({**wire, "engine": engine})


def secret_env(run: EvalRun) -> dict[str, SecretKeyRef]:
    """The environment variables the evaluation Job sets from Secret keys: the API keys of the model
    endpoint and of the judges, under the names the engine reads them from."""
    env: dict[str, SecretKeyRef] = {}
    if run.spec.model.api_key_secret_ref is not None:
        env[MODEL_KEY_ENV] = run.spec.model.api_key_secret_ref
    for judge in run.spec.judges:
        if judge.api_key_secret_ref is not None:
            env[judge_key_env(judge.name)] = judge.api_key_secret_ref
    return env
