"""Evaluation results as the operator reads and annotates them: fetched from S3 or an MLflow run,
the baseline of a gate policy resolved, the gate decision recorded on the candidate's MLflow run.

Results are parsed only through `shinsa.evaluation.results` (the schema). Failures are typed so
the EvalRun controller can tell a baseline that does not exist or cannot be read (the gates are
Inconclusive, saying why) from a server that did not answer (retry later):

- `ResultsNotFound`: the run, object, alias or EvalRun does not exist, or holds no scores.json;
- `ResultsUnavailable` (`retryable`): MLflow or S3 did not answer, or refused the credentials;
- `ResultsUnreadable`: something was found, and it is not results this Shinsa reads;
- `BaselineNotUsable`: the baseline exists but is not a Succeeded evaluation (yet).

Checked against the client API of MLflow 3.17.2 (the version pyproject's `mlflow>=2.16,<4` resolves
to in the virtualenv): `MlflowClient.get_run`, `download_artifacts`, `get_model_version_by_alias`,
`search_experiments`, `search_runs` (filter on backquoted tag names, `order_by` with
`attributes.start_time DESC`), `log_batch`, `delete_tag` and `log_text`; and its UI's run route
`<host>/#/experiments/<id>/runs/<run>` (`tracking/_tracking_service/client.py`, which prints it).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, ValidationError

from shinsa.api import GateVerdict
from shinsa.api.eval_run import EvalRunPhase, EvalRunStatus, redact_userinfo
from shinsa.api.gates import BaselineRef
from shinsa.evaluation.mlflow_log import (
    TAG_KIND,
    TAG_MODEL_VERSION,
    TAG_REGISTERED_MODEL,
    TAG_STATUS,
)
from shinsa.evaluation.results import SCORES_FILE, ResultsError, RunResults, RunStatus
from shinsa.registry.gate_plot import gate_chart, gate_table

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

TAG_GATE_DECISION = "shinsa.gate.decision"
"""Passed, Failed or Inconclusive."""
TAG_GATE_RULES = "shinsa.gate.rules"
"""Every rule's verdict in one line: `0 minimum mt-bench/score=Passed; 1 maxErrorRate=Passed`."""
TAG_GATE_BASELINE_RUN_ID = "shinsa.gate.baseline_run_id"
"""The MLflow run of the baseline the comparative rules were decided against."""
TAG_GATE_BASELINE = "shinsa.gate.baseline"
"""What the policy named as baseline (`mlflowModel llm-jp-4-8b@champion`), found or not."""
GATE_TAGS = (TAG_GATE_DECISION, TAG_GATE_RULES, TAG_GATE_BASELINE_RUN_ID, TAG_GATE_BASELINE)
GATES_ARTIFACT = "gates.json"
"""The gate table as decided (`shinsa.gates.GateDecision`), with the baseline it compared against."""
GATE_TABLE_ARTIFACT = "gate_table.json"
"""The rules' numbers as an MLflow table (`shinsa.registry.gate_plot.gate_table`)."""
GATE_PLOT_ARTIFACT = "gate_plot.png"
"""Per rule the observed value with its interval and the rule's bound (`gate_plot.gate_chart`)."""
_LOGGED_ARTIFACTS_TAG = "mlflow.loggedArtifacts"
"""Where MLflow lists a run's tables for its UI (MLflow 3.17.2: tracking/client.py log_table)."""

EVALUATION_KIND = "evaluation"
"""The `shinsa.kind` of the parent run of an evaluation."""
_TAG_VALUE_LIMIT = 8000  # MLflow's MAX_TAG_VAL_LENGTH

# MLflow error codes that mean "no such run, model or alias". INVALID_PARAMETER_VALUE is what the
# registry answers for an alias that a model does not have, and the tracking store for a
# malformed run id: both name something that does not exist.
_NOT_FOUND_CODES = frozenset({"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"})
_S3_NOT_FOUND_CODES = frozenset({"NoSuchKey", "NoSuchBucket", "404", "NotFound"})


class ResultsFetchError(Exception):
    """Results that could not be had; the message names the run, object or EvalRun."""

    retryable: ClassVar[bool] = False
    """Whether asking again later may succeed without anyone changing anything."""

    def __init__(self, message: str, *, source: str) -> None:
        super().__init__(message)
        self.source = source
        """The run, URI, alias or EvalRun asked for, without credentials."""


class ResultsNotFound(ResultsFetchError):
    """The run, object, model alias or EvalRun does not exist, or holds no scores.json."""


class ResultsUnavailable(ResultsFetchError):
    """MLflow or S3 did not answer (down, timed out, throttled, a 5xx) or refused the credentials."""

    retryable = True


class ResultsUnreadable(ResultsFetchError):
    """Something was found and it is not results this Shinsa reads (not JSON, another schema)."""


class BaselineNotUsable(ResultsFetchError):
    """The baseline exists but is not a Succeeded evaluation: an EvalRun still running or failed."""


@dataclass(frozen=True)
class ResultsStore:
    """Where the operator reads results: its MLflow server and S3 endpoint (`OperatorSettings`'
    `mlflow_tracking_uri` and `s3_endpoint_url`). S3 credentials stay with boto3's chain."""

    tracking_uri: str | None = None
    s3_endpoint_url: str | None = None


EvalRunLookup = Callable[[str, str], EvalRunStatus | None]
"""(namespace, name) -> that EvalRun's status, or None when there is no such EvalRun. The
controller passes it, so that this module reads no Kubernetes object itself."""


# -- S3 ---------------------------------------------------------------------------------------------


def scores_key(uri: str) -> tuple[str, str]:
    """(bucket, key) of the scores.json under `s3://bucket/prefix` (or of that file itself)."""
    parts = urlsplit(uri)
    if parts.scheme != "s3" or not parts.netloc:
        raise ResultsNotFound(f"{uri!r} is not an s3://bucket/prefix URI", source=uri)
    prefix = parts.path.strip("/")
    if prefix.rsplit("/", 1)[-1] == SCORES_FILE:
        return parts.netloc, prefix
    return parts.netloc, f"{prefix}/{SCORES_FILE}" if prefix else SCORES_FILE


def fetch_s3_results(uri: str, *, endpoint_url: str | None = None) -> RunResults:
    """The results whose scores.json is under `uri` (`s3://bucket/prefix/`)."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, key = scores_key(uri)
    where = f"s3://{bucket}/{key}"
    # A few quick attempts: the controller retries an unavailable store itself, on its own schedule.
    config = Config(connect_timeout=5, read_timeout=30, retries={"max_attempts": 3, "mode": "standard"})
    try:
        s3 = boto3.client("s3", endpoint_url=endpoint_url, config=config)
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in _S3_NOT_FOUND_CODES:
            raise ResultsNotFound(f"{where}: no such object ({code})", source=where) from None
        raise ResultsUnavailable(f"{where}: S3 refused the read: {exc}", source=where) from None
    except BotoCoreError as exc:
        raise ResultsUnavailable(f"{where}: S3 did not answer: {exc}", source=where) from None
    try:
        return RunResults.from_json(body.decode("utf-8"), source=where)
    except UnicodeDecodeError:
        raise ResultsUnreadable(f"{where}: not UTF-8 text", source=where) from None
    except ResultsError as exc:
        raise ResultsUnreadable(str(exc), source=where) from None


# -- MLflow -----------------------------------------------------------------------------------------


def mlflow_client(tracking_uri: str) -> MlflowClient:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


@contextmanager
def mlflow_errors(
    what: str, tracking_uri: str, not_found: frozenset[str] = _NOT_FOUND_CODES
) -> Iterator[None]:
    """MLflow's failures as ours: `not_found` error codes as ResultsNotFound, the rest (connection
    errors arrive as INTERNAL_ERROR) as ResultsUnavailable. Its messages quote request URLs,
    credentials included."""
    from mlflow.exceptions import MlflowException

    server = redact_userinfo(tracking_uri)

    def clean(exc: BaseException) -> str:
        return str(exc).replace(tracking_uri.rstrip("/"), server.rstrip("/"))

    try:
        yield
    except MlflowException as exc:
        if exc.error_code in not_found:
            raise ResultsNotFound(
                f"{what}: not found in MLflow at {server}: {clean(exc)}", source=what
            ) from None
        raise ResultsUnavailable(
            f"{what}: MLflow at {server} did not answer: {clean(exc)}", source=what
        ) from None
    except OSError as exc:  # requests' connection errors, and the artifact store's own
        raise ResultsUnavailable(
            f"{what}: MLflow at {server} did not answer: {clean(exc)}", source=what
        ) from None


def fetch_mlflow_results(run_id: str, *, tracking_uri: str) -> RunResults:
    """The results of the evaluation logged as MLflow run `run_id` (its scores.json artifact), with
    `mlflow_run_id` and `mlflow_experiment_id` set to its (the engine logs scores.json before it
    knows its run's id)."""
    what = f"MLflow run {run_id}"
    client = mlflow_client(tracking_uri)
    with mlflow_errors(what, tracking_uri):
        run = client.get_run(run_id)
    if run.info.lifecycle_stage == "deleted":
        raise ResultsNotFound(f"{what} is deleted", source=what)
    if run.data.tags.get(TAG_KIND) != EVALUATION_KIND:
        raise ResultsUnreadable(
            f"{what} is not the parent run of a Shinsa evaluation (no tag {TAG_KIND}={EVALUATION_KIND})",
            source=what,
        )
    names = {artifact.path for artifact in _listed(client, run_id, what, tracking_uri)}
    if SCORES_FILE not in names:
        raise ResultsNotFound(f"{what} has no {SCORES_FILE} artifact", source=what)
    with tempfile.TemporaryDirectory(prefix="shinsa-results-") as tmp:
        # MLflow's download reports every failure, an unreachable server too, as
        # RESOURCE_DOES_NOT_EXIST; the file was just listed, so a failure here is the server's.
        with mlflow_errors(what, tracking_uri, not_found=frozenset()):
            path = Path(client.download_artifacts(run_id, SCORES_FILE, tmp))
        source = f"{what}: {SCORES_FILE}"
        try:
            results = RunResults.from_json(path.read_text(encoding="utf-8"), source=source)
        except (ResultsError, UnicodeDecodeError) as exc:
            raise ResultsUnreadable(str(exc), source=what) from None
    return results.model_copy(
        update={"mlflow_run_id": run_id, "mlflow_experiment_id": str(run.info.experiment_id)}
    )


def _listed(client: MlflowClient, run_id: str, what: str, tracking_uri: str) -> list[Any]:
    with mlflow_errors(what, tracking_uri):
        return list(client.list_artifacts(run_id))


def fetch_results(
    store: ResultsStore, *, results_uri: str | None = None, mlflow_run_id: str | None = None
) -> RunResults:
    """An evaluation's results from its S3 results prefix, else from its MLflow run.

    With both, S3 is read first and the MLflow run only when S3 has no scores.json there (a Job
    that ran without the results bucket); any other failure of S3 is raised as it is.
    """
    if results_uri is None and mlflow_run_id is None:
        raise ValueError("fetch_results needs results_uri or mlflow_run_id")
    if results_uri is not None:
        try:
            results = fetch_s3_results(results_uri, endpoint_url=store.s3_endpoint_url)
        except ResultsNotFound:
            if mlflow_run_id is None:
                raise
        else:
            if mlflow_run_id and not results.mlflow_run_id:
                results = results.model_copy(update={"mlflow_run_id": mlflow_run_id})
            return results
    assert mlflow_run_id is not None
    return fetch_mlflow_results(mlflow_run_id, tracking_uri=_tracking(store, f"MLflow run {mlflow_run_id}"))


def _tracking(store: ResultsStore, what: str) -> str:
    if not store.tracking_uri:
        raise ResultsNotFound(
            f"{what}: the operator has no MLflow tracking URI to look it up in", source=what
        )
    return store.tracking_uri


def search_literal(value: str, what: str) -> str:
    """A string literal of MLflow's search syntax, which has no escapes: quoted with whichever
    quote the value does not contain."""
    for quote in ("'", '"'):
        if quote not in value:
            return f"{quote}{value}{quote}"
    raise ResultsNotFound(
        f"{what}: {value!r} holds both quote characters and cannot be searched for", source=what
    )


def evaluation_filter(registered_name: str, version: str, what: str = "") -> str:
    """The MLflow search for Succeeded evaluations of a registered model's version, by the tags the
    engine writes (`engine.mlflowTags`, filled by the operator) and a run that ended normally."""
    return " AND ".join(
        [
            f"tags.`{TAG_KIND}` = '{EVALUATION_KIND}'",
            f"tags.`{TAG_STATUS}` = '{RunStatus.SUCCEEDED.value}'",
            f"tags.`{TAG_REGISTERED_MODEL}` = {search_literal(registered_name, what or registered_name)}",
            f"tags.`{TAG_MODEL_VERSION}` = {search_literal(version, what or registered_name)}",
            "attributes.status = 'FINISHED'",
        ]
    )


def _experiment_ids(client: MlflowClient) -> list[str]:
    ids: list[str] = []
    token: str | None = None
    while True:
        page = client.search_experiments(page_token=token)
        ids.extend(str(e.experiment_id) for e in page)
        token = page.token
        if not token:
            return ids


def latest_model_evaluation(model: str, *, tracking_uri: str) -> str:
    """The MLflow run id of the latest Succeeded evaluation of the version that `name@alias` points
    at, searched in every experiment, newest start time first."""
    name, _, alias = model.rpartition("@")
    what = f"mlflowModel {model}"
    if not name or not alias:
        raise ResultsNotFound(f"{what}: expected <registered model>@<alias>", source=what)
    client = mlflow_client(tracking_uri)
    with mlflow_errors(what, tracking_uri):
        version = str(client.get_model_version_by_alias(name, alias).version)
    search = evaluation_filter(name, version, what)
    with mlflow_errors(what, tracking_uri):
        runs = client.search_runs(
            _experiment_ids(client),
            filter_string=search,
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
    if not runs:
        raise ResultsNotFound(
            f"{what} is version {version} of {name}, and MLflow holds no Succeeded evaluation of it "
            f"(runs tagged {TAG_REGISTERED_MODEL}={name}, {TAG_MODEL_VERSION}={version}, "
            f"{TAG_STATUS}={RunStatus.SUCCEEDED.value})",
            source=what,
        )
    return str(runs[0].info.run_id)


def describe_baseline(ref: BaselineRef) -> str:
    """The baseline as the policy names it, for status, tags and messages."""
    if ref.eval_run_ref is not None:
        return f"EvalRun {ref.eval_run_ref.name}"
    if ref.mlflow_run_id is not None:
        return f"MLflow run {ref.mlflow_run_id}"
    return f"mlflowModel {ref.mlflow_model}"


def resolve_baseline(
    ref: BaselineRef, namespace: str, lookup: EvalRunLookup, store: ResultsStore
) -> RunResults:
    """The results `spec.gates.baseline` names, with `mlflow_run_id` set where the baseline has one
    (the run `record_decision` links to).

    - `evalRunRef`: that EvalRun of `namespace` (through `lookup`) must be Succeeded; its results are
      read from its `resultsUri`, else its `mlflowRunId`;
    - `mlflowRunId`: that run's scores.json;
    - `mlflowModel: name@alias`: the latest Succeeded evaluation of the version behind the alias.
    """
    if ref.eval_run_ref is not None:
        name = ref.eval_run_ref.name
        what = f"EvalRun {namespace}/{name}"
        status = lookup(namespace, name)
        if status is None:
            raise ResultsNotFound(f"{what} does not exist", source=what)
        if status.phase is not EvalRunPhase.SUCCEEDED:
            phase = status.phase.value if status.phase else "not started"
            raise BaselineNotUsable(f"{what} is {phase}, not Succeeded", source=what)
        if not status.results_uri and not status.mlflow_run_id:
            raise BaselineNotUsable(f"{what} records neither resultsUri nor mlflowRunId", source=what)
        return fetch_results(store, results_uri=status.results_uri, mlflow_run_id=status.mlflow_run_id)
    if ref.mlflow_run_id is not None:
        return fetch_mlflow_results(
            ref.mlflow_run_id, tracking_uri=_tracking(store, f"MLflow run {ref.mlflow_run_id}")
        )
    assert ref.mlflow_model is not None  # exactly one is set (a CEL rule of BaselineRef)
    tracking_uri = _tracking(store, f"mlflowModel {ref.mlflow_model}")
    run_id = latest_model_evaluation(ref.mlflow_model, tracking_uri=tracking_uri)
    return fetch_mlflow_results(run_id, tracking_uri=tracking_uri)


# -- the decision -----------------------------------------------------------------------------------


class _RuleView(BaseModel):
    # The fields of `shinsa.gates.RuleResult` the tags show; gates is a sibling layer, so its
    # decision arrives as its JSON (`GateDecision.model_dump(mode="json")`).
    model_config = ConfigDict(extra="ignore")

    rule: int
    type: str
    benchmark: str | None = None
    metric: str | None = None
    verdict: GateVerdict


class _DecisionView(BaseModel):
    model_config = ConfigDict(extra="ignore")

    decision: GateVerdict
    rules: list[_RuleView]


def _view(decision: Mapping[str, Any]) -> _DecisionView:
    try:
        return _DecisionView.model_validate(decision)
    except ValidationError as exc:
        raise ValueError(f"not a gate decision (GateDecision.model_dump(mode='json')): {exc}") from None


def rules_line(decision: Mapping[str, Any]) -> str:
    """Every rule's verdict in one tag value, cut to MLflow's limit (gates.json has them all)."""
    parts = []
    for rule in _view(decision).rules:
        checked = "/".join(p for p in (rule.benchmark, rule.metric) if p)
        parts.append(f"{rule.rule} {rule.type}{' ' + checked if checked else ''}={rule.verdict.value}")
    line = "; ".join(parts)
    return line if len(line) <= _TAG_VALUE_LIMIT else line[: _TAG_VALUE_LIMIT - 1] + "…"


def decision_tags(
    decision: Mapping[str, Any], baseline_run_id: str | None, baseline: str | None = None
) -> dict[str, str]:
    """The tags `record_decision` sets: the decision, the rules' verdicts, the baseline."""
    tags = {TAG_GATE_DECISION: _view(decision).decision.value, TAG_GATE_RULES: rules_line(decision)}
    if baseline_run_id:
        tags[TAG_GATE_BASELINE_RUN_ID] = baseline_run_id
    if baseline:
        tags[TAG_GATE_BASELINE] = baseline[:_TAG_VALUE_LIMIT]
    return tags


def gates_document(
    decision: Mapping[str, Any], baseline_run_id: str | None, baseline: str | None = None
) -> str:
    """gates.json: the decision as the gates made it, and the baseline it was made against.
    Deterministic (sorted keys), so a retried call uploads the same bytes."""
    _view(decision)
    document = {**decision, "baseline": baseline, "baseline_run_id": baseline_run_id}
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"


def record_decision(
    run_id: str,
    decision: Mapping[str, Any],
    baseline_run_id: str | None,
    *,
    tracking_uri: str,
    baseline: str | None = None,
) -> None:
    """Tag the candidate's MLflow run `run_id` with the gate decision (`GateDecision.model_dump(
    mode="json")`) and the baseline's run, and log the gate table as `gates.json`.

    Also the gate table as an MLflow table (`gate_table.json`) and a plot of it (`gate_plot.png`).

    Idempotent: the tags are set, not added, and the files are overwritten in place, so a retried
    call leaves the run as one call does. A gate tag of an earlier call that this one does not set
    (a baseline found then and not now) is removed.
    """
    what = f"MLflow run {run_id}"
    tags = decision_tags(decision, baseline_run_id, baseline)
    document = gates_document(decision, baseline_run_id, baseline)
    from mlflow.entities import RunTag

    table = json.dumps(gate_table(decision), ensure_ascii=False, allow_nan=False)
    chart = gate_chart(decision)
    client = mlflow_client(tracking_uri)
    with mlflow_errors(what, tracking_uri):
        existing = client.get_run(run_id).data.tags
        for stale in (t for t in GATE_TAGS if t in existing and t not in tags):
            client.delete_tag(run_id, stale)
        client.log_batch(run_id, tags=[RunTag(key, value) for key, value in tags.items()])
        client.log_text(run_id, document, GATES_ARTIFACT)
        # Not client.log_table, which appends to a table already there: a retried call would
        # double the rows. The same file and the tag log_table sets, written in place.
        client.log_text(run_id, table, GATE_TABLE_ARTIFACT)
        listed = _logged_tables(existing.get(_LOGGED_ARTIFACTS_TAG))
        entry = {"path": GATE_TABLE_ARTIFACT, "type": "table"}
        if entry not in listed:
            client.set_tag(run_id, _LOGGED_ARTIFACTS_TAG, json.dumps([*listed, entry]))
        if chart is not None:
            with tempfile.TemporaryDirectory(prefix="shinsa-gates-") as tmp:
                path = Path(tmp) / GATE_PLOT_ARTIFACT
                path.write_bytes(chart)
                client.log_artifact(run_id, str(path))


def _logged_tables(tag: str | None) -> list[Any]:
    try:
        listed = json.loads(tag or "[]")
    except json.JSONDecodeError:
        return []
    return listed if isinstance(listed, list) else []


def mlflow_run_url(tracking_uri: str, experiment_id: str, run_id: str) -> str | None:
    """The MLflow UI page of a run (`<server>/#/experiments/<id>/runs/<run>`, the route of MLflow
    3.17's UI), without any credentials of the URI; None for a tracking URI with no UI (a file
    store, a database, Databricks' workspace-relative routes)."""
    parts = urlsplit(tracking_uri)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    base = urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
    return f"{base}/#/experiments/{experiment_id}/runs/{run_id}"


__all__ = [
    "EVALUATION_KIND",
    "GATES_ARTIFACT",
    "GATE_PLOT_ARTIFACT",
    "GATE_TABLE_ARTIFACT",
    "GATE_TAGS",
    "TAG_GATE_BASELINE",
    "TAG_GATE_BASELINE_RUN_ID",
    "TAG_GATE_DECISION",
    "TAG_GATE_RULES",
    "BaselineNotUsable",
    "EvalRunLookup",
    "ResultsFetchError",
    "ResultsNotFound",
    "ResultsStore",
    "ResultsUnavailable",
    "ResultsUnreadable",
    "decision_tags",
    "describe_baseline",
    "evaluation_filter",
    "fetch_mlflow_results",
    "fetch_results",
    "fetch_s3_results",
    "gates_document",
    "latest_model_evaluation",
    "mlflow_run_url",
    "record_decision",
    "resolve_baseline",
    "rules_line",
    "scores_key",
    "search_literal",
]
