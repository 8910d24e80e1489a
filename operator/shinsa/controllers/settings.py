"""How the operator runs: its own settings (`OperatorSettings`, read from the environment once, at
start-up) and kopf's, applied when kopf starts.

Handlers find the settings in kopf's memo (`from_memo`); nothing else in the operator reads the
environment, so a test builds an `OperatorSettings` and passes it in.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import os
import re
from collections.abc import Mapping
from typing import Any

import kopf
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from shinsa.api import Toleration
from shinsa.render.config_reader import DEFAULT_READER_IMAGE

ANNOTATION_PREFIX = "shinsa.dev"

# The operator's own image: it carries `shinsa eval run`. Kept equal to the chart's appVersion
# (a unit test checks), so an install runs the evaluator of the operator it installed.
DEFAULT_EVALUATOR_IMAGE = "shinsa-operator:0.1.0"

# Reconciles and pod-driven refreshes run the blocking kubernetes client in threads; the default
# pool (CPUs + 4) queues refreshes behind reconciles on small machines, delaying Ready.
WORKER_THREADS = 16

# S3's bucket naming rules (the common subset of every S3-compatible server).
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_ONE_WORD = re.compile(r"^\S+$")
# What MLflow's client takes as a tracking URI: a URL of any scheme it has a store for (http(s),
# file, a database) or a Databricks workspace.
_TRACKING_URI = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://\S+|databricks(://\S+)?)$")

_MEMO_KEY = "operator_settings"


class SettingsError(ValueError):
    """The operator's environment holds a value it cannot use; the message names the variable."""


class OperatorSettings(BaseModel):
    """Everything the operator takes from its environment. Each field's alias is the variable it is
    read from (docs/install.md lists them); tests construct it by field name."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    mlflow_tracking_uri: str | None = Field(default=None, alias="MLFLOW_TRACKING_URI")
    """The MLflow tracking server that `models:/` URIs resolve in and EvalRuns log to; None: no
    registry (a `models:/` URI is then RegistryNotConfigured)."""
    s3_endpoint_url: str | None = Field(default=None, alias="AWS_ENDPOINT_URL")
    """The S3-compatible endpoint for `s3://` models and evaluation outputs; None: AWS's own.
    Credentials stay with the AWS SDK's chain (environment or a mounted Secret), never here."""
    results_bucket: str | None = Field(default=None, alias="SHINSA_RESULTS_BUCKET")
    """The bucket evaluation Jobs write their outputs (scores.json, answers, judgments) under."""
    evaluator_image: str = Field(default=DEFAULT_EVALUATOR_IMAGE, alias="SHINSA_EVALUATOR_IMAGE")
    """The image of evaluation Jobs (`shinsa eval run`)."""
    evaluator_service_account: str = Field(default="default", alias="SHINSA_EVALUATOR_SERVICE_ACCOUNT")
    """The ServiceAccount of evaluation Jobs whose EvalRun names none; they need no API access."""
    evaluator_node_selector: dict[str, str] = Field(
        default_factory=dict, alias="SHINSA_EVALUATOR_NODE_SELECTOR"
    )
    """The nodeSelector of evaluation Jobs whose EvalRun sets none (JSON object), for example the
    labels of a CPU pool for batch work."""
    evaluator_tolerations: tuple[Toleration, ...] = Field(default=(), alias="SHINSA_EVALUATOR_TOLERATIONS")
    """The tolerations of evaluation Jobs whose EvalRun sets none (JSON list of tolerations)."""
    evaluator_env_secret: str | None = Field(default=None, alias="SHINSA_EVALUATOR_ENV_SECRET")
    """A Secret in each EvalRun's namespace whose keys become its evaluator's environment, optional
    (for example AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY for the results bucket and MLflow's
    artifacts); unset where workload identity gives the Job its credentials."""
    config_reader_image: str = Field(default=DEFAULT_READER_IMAGE, alias="SHINSA_CONFIG_READER_IMAGE")
    """The image of the Job that reads a `pvc://` model's config.json (sh, gzip and base64)."""
    registry_resync_s: float = Field(default=60.0, gt=0, alias="SHINSA_REGISTRY_RESYNC_SECONDS")
    """How often `models:/` URIs are looked up again: the registry cannot say that an alias moved."""
    evalrun_resync_s: float = Field(default=30.0, gt=0, alias="SHINSA_EVALRUN_RESYNC_SECONDS")
    """How often a waiting or running EvalRun is looked at again besides the events that wake it."""
    operator_namespace: str | None = Field(default=None, alias="POD_NAMESPACE")
    """The operator's own namespace (the chart sets it from the downward API): without a
    PromotionPolicy for a registered model, only EvalRuns here may promote it."""
    mlflow_http_request_max_retries: int = Field(default=1, ge=0, alias="MLFLOW_HTTP_REQUEST_MAX_RETRIES")
    """MLflow's client retries an unreachable server for minutes by default, holding a worker
    thread; one retry makes an outage a retried condition instead."""
    mlflow_http_request_timeout_s: int = Field(default=10, gt=0, alias="MLFLOW_HTTP_REQUEST_TIMEOUT")
    """Whole seconds before an MLflow request is given up (MLflow parses the variable as an int)."""

    @field_validator("mlflow_tracking_uri")
    @classmethod
    def _tracking_uri(cls, value: str | None) -> str | None:
        if value is not None and not _TRACKING_URI.match(value):
            raise ValueError("must be a URI such as http://mlflow.example:5000")
        return value

    @field_validator("s3_endpoint_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @field_validator("results_bucket")
    @classmethod
    def _bucket_name(cls, value: str | None) -> str | None:
        if value is not None and not _BUCKET.match(value):
            raise ValueError("must be an S3 bucket name (3-63 lowercase letters, digits, dots, hyphens)")
        return value

    @field_validator("evaluator_node_selector", "evaluator_tolerations", mode="before")
    @classmethod
    def _json(cls, value: Any) -> Any:
        # From the environment these are JSON text; built in Python, they are already objects.
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                raise ValueError("must be JSON") from None
        return value

    @field_validator("evaluator_image", "config_reader_image", "evaluator_service_account")
    @classmethod
    def _no_blanks(cls, value: str) -> str:
        if not _ONE_WORD.match(value):
            raise ValueError("must be one word, without spaces")
        return value

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> OperatorSettings:
        """The settings in `environ` (an empty variable counts as unset). SettingsError names
        every variable that does not parse, without echoing values (URIs may hold credentials)."""
        names = {field.alias for field in cls.model_fields.values() if field.alias}
        given = {name: environ[name] for name in names if environ.get(name, "").strip()}
        try:
            return cls.model_validate(given)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise SettingsError(f"the operator's environment is not usable: {problems}") from None

    def mlflow_client_environment(self) -> dict[str, str]:
        """What MLflow's client reads its request policy from (it takes no arguments for it)."""
        return {
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(self.mlflow_http_request_max_retries),
            "MLFLOW_HTTP_REQUEST_TIMEOUT": str(self.mlflow_http_request_timeout_s),
        }


# Loggers that write whole requests and responses at DEBUG: the kubernetes client's REST layer
# ("response body: ..."; 6.6 MB in 5 minutes of a busy operator) and urllib3 under it.
BODY_LOGGERS = ("kubernetes", "urllib3")


def configure_logging(*, verbose: bool = False, debug: bool = False) -> None:
    """The operator's log levels. By default and with `verbose`: INFO (each handler run, every
    warning and error). With `debug`: DEBUG, with kopf's API requests and watch events and the
    kubernetes client's bodies. kopf's own `verbose` means DEBUG, so it is never passed on."""
    del verbose  # INFO either way: the documented level of --verbose is also the default
    kopf.configure(debug=debug, verbose=False, quiet=False)
    for name in BODY_LOGGERS:
        # Pinned rather than inherited: bodies stay out of the log even where something else
        # lowers the root level.
        logging.getLogger(name).setLevel(logging.NOTSET if debug else logging.WARNING)


def from_memo(memo: Mapping[str, Any]) -> OperatorSettings:
    """The settings `shinsa operator run` (or a test) put into kopf's memo."""
    found = memo.get(_MEMO_KEY)
    if not isinstance(found, OperatorSettings):
        raise LookupError("no OperatorSettings in kopf's memo: start the operator with operator_memo()")
    return found


def operator_memo(settings: OperatorSettings, namespaces: tuple[str, ...] = ()) -> kopf.Memo:
    """kopf's memo for a run: the settings and the namespaces that handlers listing objects
    themselves (the registry follower) may read (all when empty)."""
    return kopf.Memo({_MEMO_KEY: settings, "namespaces": namespaces})


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    # `kopf run -m shinsa.controllers.handlers` has no memo of ours: read the environment here.
    if _MEMO_KEY not in memo:
        try:
            memo[_MEMO_KEY] = OperatorSettings.from_env(os.environ)
        except SettingsError as exc:
            raise kopf.PermanentError(str(exc)) from None
    operator_settings = from_memo(memo)
    asyncio.get_running_loop().set_default_executor(
        concurrent.futures.ThreadPoolExecutor(max_workers=WORKER_THREADS, thread_name_prefix="shinsa")
    )
    # MLflow's client reads these from the process environment only.
    os.environ.update(operator_settings.mlflow_client_environment())
    # Our status schema is structural and has no place for kopf's bookkeeping, so handler
    # progress and the last-handled spec live in annotations instead.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=ANNOTATION_PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=ANNOTATION_PREFIX, key="last-handled-configuration"
    )
    settings.persistence.finalizer = f"{ANNOTATION_PREFIX}/finalizer"
    # Events are for transitions the controllers post themselves, not for every handler's log line.
    settings.posting.level = logging.WARNING
    # Reconnect watches before common load-balancer idle timeouts would cut them silently.
    settings.watching.server_timeout = 270
    settings.watching.client_timeout = 300


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    # In a pod: the service account. Elsewhere: $KUBECONFIG read now, not when a library was
    # imported (the kubernetes client fixes its default path at import time).
    return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)
