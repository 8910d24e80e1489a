"""Where a model's architecture comes from: the built-in catalog for known models, otherwise the
model's own `config.json` read from S3. (The I/O half; the planner parses what is read here.)"""

from __future__ import annotations

import json
from typing import Any

from shinsa.api import ModelDeployment
from shinsa.controllers.desired import SpecProblem
from shinsa.planner import Architecture, PlannerError, lookup_model


def _with_override(config: dict[str, Any], md: ModelDeployment) -> dict[str, Any]:
    if md.spec.model.architecture:
        return {**config, "architectures": [md.spec.model.architecture]}
    return config


def _from_config(config: dict[str, Any], md: ModelDeployment, where: str) -> Architecture:
    try:
        return Architecture.from_config(_with_override(config, md))
    except PlannerError as exc:
        raise SpecProblem("UnsupportedArchitecture", f"{where}: {exc}") from None


def _read_s3_config(uri: str) -> dict[str, Any]:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    key = f"{prefix.rstrip('/')}/config.json" if prefix else "config.json"
    try:
        body = boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
        loaded: dict[str, Any] = json.loads(body)
        return loaded
    except (BotoCoreError, ClientError, json.JSONDecodeError) as exc:
        raise SpecProblem(
            "ConfigUnreadable", f"spec.model.uri: cannot read s3://{bucket}/{key}: {exc}"
        ) from None


def resolve_architecture(md: ModelDeployment) -> Architecture:
    uri = md.spec.model.uri
    scheme, _, rest = uri.partition("://")
    if scheme == "s3":
        return _from_config(_read_s3_config(uri), md, f"s3 config.json of {uri}")
    if uri.startswith("models:/"):
        raise SpecProblem(
            "RegistryUnavailable",
            "spec.model.uri: models:/ URIs need the MLflow registry integration, which this operator "
            "version does not have yet; use hf://, s3:// or pvc://",
        )
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
    if preset is None:
        raise SpecProblem(
            "ArchitectureUnknown",
            f"spec.model.uri: {candidates[0]!r} is not in the built-in catalog and its config.json cannot be "
            "read from here; store the model in S3 (s3://...) so its config.json can be read",
        )
    # The catalog knows these models exactly; spec.model.architecture only corrects a config.json.
    return preset.architecture
