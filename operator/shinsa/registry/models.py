"""The MLflow model registry as a source of what to serve: `models:/name@alias` (or
`models:/name/version`) resolves to the registered version's source URI."""

from __future__ import annotations

import re
from dataclasses import dataclass

from shinsa.evaluation.mlflow_log import TAG_REVISION

_MODELS_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[\w-]+)|/(?P<version>\d+))$")


TAG_MODEL_REVISION = TAG_REVISION
"""A version tag: the revision of the source to serve (a promotion records the candidate's)."""


class RegistryError(Exception):
    """The registry answered, and the answer cannot be served (unknown model, alias or source)."""


@dataclass(frozen=True)
class RegisteredModel:
    name: str
    version: str
    source: str
    revision: str | None = None

    def describe(self) -> str:
        return f"{self.source} (registered model {self.name} version {self.version})"


def resolve(uri: str, tracking_uri: str, servable_schemes: tuple[str, ...]) -> RegisteredModel:
    """Look `uri` up in the registry at `tracking_uri`. Connection problems raise MLflow's own
    exceptions (worth retrying); a missing model or an unservable source raises RegistryError."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    match = _MODELS_URI.match(uri)
    if not match:
        raise RegistryError(f"{uri!r} is not models:/<name>@<alias> or models:/<name>/<version>")
    name, alias, version = match["name"], match["alias"], match["version"]
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    try:
        found = (
            client.get_model_version_by_alias(name, alias)
            if alias
            else client.get_model_version(name, version)
        )
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            raise RegistryError(f"{uri}: {exc.message}") from None
        raise
    source = str(found.source)
    if not source.startswith(servable_schemes):
        raise RegistryError(
            f"{uri} is version {found.version} of {name}, whose source {source!r} is not one vLLM can load; "
            f"register versions with a source starting with {', '.join(servable_schemes)}"
        )
    revision = (found.tags or {}).get(TAG_MODEL_REVISION) or None
    return RegisteredModel(name=name, version=str(found.version), source=source, revision=revision)
