"""Where a model comes from: the MLflow registry for `models:/` URIs, then its architecture from
the built-in catalog for known models, otherwise the model's own `config.json` read from S3 or,
through a short Job that mounts the claim, from a PVC.
(The I/O half; the planner parses what is read here.)"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from kubernetes.client.rest import ApiException

from shinsa.api import ModelDeployment
from shinsa.api.lifecycle import ModelDeploymentReason as Reason
from shinsa.api.model_deployment import RegisteredVersion, S3Access
from shinsa.controllers import kube
from shinsa.controllers.desired import SpecProblem
from shinsa.controllers.settings import OperatorSettings
from shinsa.evaluation.config import redact_userinfo
from shinsa.planner import Architecture, PlannerError, lookup_model
from shinsa.registry import models as registry
from shinsa.render.config_reader import (
    JOB_UID_LABEL,
    SOURCE_ANNOTATION,
    ReaderOutcome,
    decode_config_message,
    reader_job_name,
    reader_outcome,
    render_config_reader,
)


class SourceUnavailable(SpecProblem):
    """A model source that may answer later (the registry or S3 unreachable, a config.json not
    uploaded yet or still being read): reported like a spec problem, then retried after
    `retry_after_s` (the controller's default when None), since nothing in the spec is wrong."""

    def __init__(self, reason: Reason, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(reason, message)
        self.retry_after_s = retry_after_s


# The config-reader Job of a pvc:// model: how often to look at it while it runs, and how long to
# wait before trying again after it failed.
READER_POLL_S = 5.0
READER_RETRY_S = 60.0


def _with_override(config: dict[str, Any], md: ModelDeployment) -> dict[str, Any]:
    if md.spec.model.architecture:
        return {**config, "architectures": [md.spec.model.architecture]}
    return config


def _from_config(config: dict[str, Any], md: ModelDeployment, where: str) -> Architecture:
    try:
        return Architecture.from_config(_with_override(config, md))
    except PlannerError as exc:
        raise SpecProblem(Reason.UNSUPPORTED_ARCHITECTURE, f"{where}: {exc}") from None


def _read_s3_config(uri: str, endpoint_url: str | None) -> dict[str, Any]:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    key = f"{prefix.rstrip('/')}/config.json" if prefix else "config.json"
    try:
        body = boto3.client("s3", endpoint_url=endpoint_url).get_object(Bucket=bucket, Key=key)["Body"].read()
    except (BotoCoreError, ClientError) as exc:
        raise SourceUnavailable(
            Reason.CONFIG_UNREADABLE, f"spec.model.uri: cannot read s3://{bucket}/{key}: {exc}"
        ) from None
    try:
        loaded: dict[str, Any] = json.loads(body)
    except json.JSONDecodeError as exc:
        raise SpecProblem(
            Reason.CONFIG_INVALID, f"spec.model.uri: s3://{bucket}/{key} is not JSON: {exc}"
        ) from None
    return loaded


# What a registered model version's source may be: the URI schemes render knows how to load.
SERVABLE_SCHEMES = ("hf://", "s3://", "pvc://")


@dataclass(frozen=True)
class ResolvedModel:
    uri: str
    """The concrete URI to serve."""
    described: str
    """How the status describes it (`status.model`)."""
    registered: RegisteredVersion | None = None
    """The registry's version behind a `models:/` URI."""


def served_spec(md: ModelDeployment, resolved: ResolvedModel, settings: OperatorSettings) -> ModelDeployment:
    """`md` as it is planned and rendered: what the spec leaves to the source filled in from it."""
    model = md.spec.model
    update: dict[str, Any] = {}
    registered = resolved.registered
    if registered is not None and registered.revision and not model.revision:
        # A promoted version carries the candidate's revision: serve what was evaluated.
        update["revision"] = registered.revision
    if resolved.uri.startswith("s3://") and settings.s3_endpoint_url:
        access = model.s3 or S3Access()
        if access.endpoint is None:
            # The pods read the weights where the operator read their config.json.
            update["s3"] = access.model_copy(update={"endpoint": settings.s3_endpoint_url})
    if not update:
        return md
    spec = md.spec.model_copy(update={"model": model.model_copy(update=update)})
    return md.model_copy(update={"spec": spec})


def resolve_model_uri(md: ModelDeployment, settings: OperatorSettings) -> ResolvedModel:
    """What to serve. `models:/` URIs are looked up in the MLflow registry of the operator's
    settings."""
    uri = md.spec.model.uri
    if not uri.startswith("models:/"):
        revision = md.spec.model.revision
        return ResolvedModel(uri, uri if not revision else f"{uri}@{revision}")
    tracking_uri = settings.mlflow_tracking_uri
    if not tracking_uri:
        raise SpecProblem(
            Reason.REGISTRY_NOT_CONFIGURED,
            "spec.model.uri: models:/ URIs are resolved in the MLflow registry, and the operator has no "
            "MLFLOW_TRACKING_URI (set it in the operator's environment, e.g. the chart's extraEnv)",
        )
    try:
        registered = registry.resolve(uri, tracking_uri, SERVABLE_SCHEMES)
    except registry.RegistryError as exc:
        raise SpecProblem(Reason.MODEL_NOT_REGISTERED, f"spec.model.uri: {exc}") from None
    except Exception as exc:  # MLflow's client raises MlflowException or requests' errors alike
        # Its messages quote the request URL, credentials included.
        redacted = redact_userinfo(tracking_uri)
        detail = str(exc).replace(tracking_uri.rstrip("/"), redacted.rstrip("/"))
        raise SourceUnavailable(
            Reason.REGISTRY_UNAVAILABLE,
            f"spec.model.uri: the MLflow registry at {redacted} did not answer: {detail}",
        ) from None
    return ResolvedModel(
        registered.source,
        registered.describe(),
        RegisteredVersion(
            name=registered.name,
            version=registered.version,
            source=registered.source,
            revision=registered.revision,
        ),
    )


def _read_pvc_config(md: ModelDeployment, uri: str, reader_image: str) -> dict[str, Any]:
    """config.json of a pvc:// model, through a Job that mounts the claim (the operator cannot):
    started on the first call, read back on a later one; SourceUnavailable until then."""
    namespace, name = md.metadata.namespace or "", reader_job_name(md)
    try:
        outcome = _reader_job_outcome(md, uri, namespace, name, reader_image)
        if outcome.state == "failed":
            kube.delete_job(namespace, name)  # so that the next try reads the file again
    except (ApiException, kube.MissingAPI, kube.Rejected) as exc:
        raise SourceUnavailable(
            Reason.CONFIG_UNREADABLE,
            f"spec.model.uri: Job {name} to read {uri}/config.json: {exc}",
            READER_RETRY_S,
        ) from None
    if outcome.state == "running":
        raise SourceUnavailable(
            Reason.CONFIG_PENDING, f"spec.model.uri: Job {name} is reading {uri}/config.json", READER_POLL_S
        )
    if outcome.state == "failed":
        raise SourceUnavailable(
            Reason.CONFIG_UNREADABLE,
            f"spec.model.uri: Job {name} could not read {uri}/config.json: {outcome.message}",
            READER_RETRY_S,
        )
    try:
        return decode_config_message(outcome.message, uri)
    except ValueError as exc:
        raise SpecProblem(Reason.CONFIG_INVALID, f"spec.model.uri: {exc}") from None


def _reader_job_outcome(
    md: ModelDeployment, uri: str, namespace: str, name: str, reader_image: str
) -> ReaderOutcome:
    job = kube.get_job(namespace, name)
    owners = [] if job is None else job["metadata"].get("ownerReferences", [])
    if job is not None and not any(o.get("uid") == md.metadata.uid for o in owners):
        predecessor = any(o.get("kind") == md.kind and o.get("name") == md.metadata.name for o in owners)
        if predecessor or job["metadata"].get("deletionTimestamp"):
            # A ModelDeployment of this name deleted and created again: the garbage collector is
            # about to remove its reader Job.
            return ReaderOutcome("running")
        raise SpecProblem(
            Reason.CONFIG_READER_CONFLICT,
            f"spec.model.uri: a Job named {name} exists and does not belong to this ModelDeployment; "
            "rename one of them",
        )
    if job is not None and job["metadata"].get("annotations", {}).get(SOURCE_ANNOTATION) != uri:
        kube.delete_job(namespace, name)  # it read another path; a later try starts a new one
        return ReaderOutcome("running")
    if job is None:
        kube.apply(render_config_reader(md, uri, reader_image))
        return ReaderOutcome("running")
    # Only this Job's pods: a pod of a replaced Job may outlive it and hold the old path's file.
    return reader_outcome(job, kube.list_pods(namespace, {JOB_UID_LABEL: job["metadata"]["uid"]}))


def resolve_architecture(md: ModelDeployment, uri: str, settings: OperatorSettings) -> Architecture:
    """`uri` is the concrete one (after the registry lookup)."""
    scheme, _, rest = uri.partition("://")
    if scheme == "s3":
        return _from_config(_read_s3_config(uri, settings.s3_endpoint_url), md, f"s3 config.json of {uri}")
    # hf://org/name is looked up by repository id, then by its name alone (the catalog's short
    # names); pvc://claim/path by its last path component.
    candidates = (
        [rest, rest.rstrip("/").rsplit("/", 1)[-1]]
        if scheme == "hf"
        else [rest.rstrip("/").rsplit("/", 1)[-1]]
    )
    preset = None
    for candidate in candidates:
        try:
            preset = lookup_model(candidate)
            break
        except PlannerError:
            continue
    if preset is None and scheme == "pvc":
        return _from_config(
            _read_pvc_config(md, uri, settings.config_reader_image), md, f"config.json of {uri}"
        )
    if preset is None:
        raise SpecProblem(
            Reason.ARCHITECTURE_UNKNOWN,
            f"spec.model.uri: {candidates[0]!r} is not in the built-in catalog and the Hugging Face Hub "
            "is not read from here; store the model in S3 (s3://...) or on a volume (pvc://...) so its "
            "config.json can be read",
        )
    # The catalog knows these models exactly; spec.model.architecture only corrects a config.json.
    return preset.architecture
