"""The EvalRun resource: judge-scored benchmarks against a model, regression gates, and promotion."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import Field, JsonValue, field_validator

from shinsa.api.base import CelRule, K8sModel, K8sStatusModel, defaulted, require_unique
from shinsa.api.conditions import Condition
from shinsa.api.resource import AGE_COLUMN, K8sResource, PrinterColumn

DATASET_URI_PATTERN = (
    r"^(/\S*"
    r"|s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/\S*)?"
    r"|pvc://[a-z0-9]([-a-z0-9.]*[a-z0-9])?(/\S*)?)$"
)
_HTTP_URL_PATTERN = r"^https?://\S+$"
_DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_OBJECT_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
# CEL cost estimates treat a string without maxLength as megabytes long, which makes the rules that
# compare benchmark names too expensive for the API server to accept.
_SHORT_ENUM: dict[str, JsonValue] = {"maxLength": 64}


class BenchmarkName(enum.StrEnum):
    """A benchmark Shinsa knows how to run and score."""

    MT_BENCH = "mt-bench"
    MT_BENCH_JA = "mt-bench-ja"
    LLM_JP_INSTRUCTIONS = "llm-jp-instructions"
    ANSWER_CAREFULLY = "answer-carefully"
    LONG_CONTEXT = "long-context"


class LocalObjectRef(K8sModel):
    """A reference to an object in the same namespace."""

    name: str = Field(pattern=_OBJECT_NAME_PATTERN, max_length=253)
    """The object's name."""


class EvalTarget(K8sModel):
    """The model under evaluation: a ModelDeployment, or any OpenAI-compatible endpoint."""

    cel_rules: ClassVar[tuple[CelRule, ...]] = (
        CelRule(
            rule="has(self.deploymentRef) != has(self.endpoint)",
            message="spec.model must set exactly one of deploymentRef or endpoint",
            holds=lambda m: (m.deployment_ref is None) != (m.endpoint is None),
        ),
        CelRule(
            rule="!has(self.endpoint) || has(self.servedName)",
            message="spec.model.servedName is required with spec.model.endpoint",
            holds=lambda m: m.endpoint is None or m.served_name is not None,
            field_path=".servedName",
            reason="FieldValueRequired",
        ),
    )

    deployment_ref: LocalObjectRef | None = None
    """A ModelDeployment in this namespace; the run waits until it is Ready and uses its endpoint."""
    endpoint: str | None = Field(default=None, pattern=_HTTP_URL_PATTERN, max_length=2048)
    """The base URL of an OpenAI-compatible API (for example `http://host:8000/v1`)."""
    served_name: str | None = Field(default=None, min_length=1, max_length=253)
    """The model name to request. Required with `endpoint`; with `deploymentRef` it defaults to the
    deployment's served name."""


class DatasetSource(K8sModel):
    """Where a benchmark's questions (and references) are read from. Datasets are licensed separately
    and never shipped with Shinsa."""

    uri: str = Field(pattern=DATASET_URI_PATTERN, max_length=2048)
    """An absolute path inside the evaluation Job, `s3://bucket/prefix` or `pvc://claim/path`."""


class Sampling(K8sModel):
    """Generation settings for the model under evaluation; unset fields keep the benchmark's defaults."""

    temperature: float | None = Field(default=None, ge=0, le=2)
    """Sampling temperature."""
    top_p: float | None = Field(default=None, gt=0, le=1)
    """Nucleus sampling probability mass."""
    max_tokens: int | None = Field(default=None, ge=1)
    """The most tokens to generate per answer."""
    seed: int | None = None
    """A sampling seed; each repeat offsets it so repeats stay independent."""
    reasoning_effort: Literal["low", "medium", "high"] | None = None
    """For thinking models: the `Reasoning:` level of the system prompt."""


class BenchmarkSpec(K8sModel):
    """One benchmark to run."""

    cel_rules: ClassVar[tuple[CelRule, ...]] = (
        CelRule(
            rule="!has(self.contextLengths) || self.name == 'long-context'",
            message="spec.benchmarks[].contextLengths applies only to the long-context benchmark",
            holds=lambda m: m.context_lengths is None or m.name == BenchmarkName.LONG_CONTEXT,
            field_path=".contextLengths",
            reason="FieldValueForbidden",
        ),
    )

    name: BenchmarkName = Field(json_schema_extra=_SHORT_ENUM)
    """The benchmark: mt-bench, mt-bench-ja, llm-jp-instructions, answer-carefully or long-context."""
    dataset: DatasetSource
    """Where its data is."""
    sampling: Sampling | None = None
    """Overrides of the generation settings."""
    limit: int | None = Field(default=None, ge=1)
    """Use only the first N questions (for smoke tests)."""
    context_lengths: list[int] | None = Field(default=None, min_length=1, max_length=16)
    """long-context only: the prompt lengths (tokens) to test, for example [8192, 32768, 65536]."""


class SecretKeyRef(K8sModel):
    """A key of a Secret in the same namespace."""

    name: str = Field(pattern=_OBJECT_NAME_PATTERN, max_length=253)
    """The Secret's name."""
    key: str = Field(min_length=1, max_length=253)
    """The key holding the value."""


class Judge(K8sModel):
    """An LLM that scores answers through an OpenAI-compatible API."""

    name: str = Field(pattern=_DNS_LABEL_PATTERN, max_length=63)
    """A short name, used in metric names when several judges score the same answers."""
    endpoint: str = Field(pattern=_HTTP_URL_PATTERN, max_length=2048)
    """The base URL of the judge's OpenAI-compatible API."""
    model: str = Field(min_length=1, max_length=253)
    """The judge model to request, for example `gpt-5.4-2026-03-05`."""
    api_key_secret_ref: SecretKeyRef | None = None
    """The Secret key holding the API key; omit for endpoints without authentication."""


class MLflowSpec(K8sModel):
    """Where results are logged."""

    tracking_uri: str | None = Field(default=None, min_length=1, max_length=2048)
    """The MLflow tracking server. Defaults to the one the operator is configured with."""
    experiment: str = Field(default="shinsa", min_length=1, max_length=500)
    """The MLflow experiment to log the run under."""


class BaselineRef(K8sModel):
    """The scores a candidate is compared against."""

    cel_rules: ClassVar[tuple[CelRule, ...]] = (
        CelRule(
            rule="has(self.evalRunRef) != has(self.mlflowRunId)",
            message="spec.gates.baseline must set exactly one of evalRunRef or mlflowRunId",
            holds=lambda m: (m.eval_run_ref is None) != (m.mlflow_run_id is None),
        ),
    )

    eval_run_ref: LocalObjectRef | None = None
    """A Succeeded EvalRun in this namespace that ran the same benchmarks."""
    mlflow_run_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]+$", max_length=64)
    """An MLflow run logged by an earlier evaluation."""


class GateRule(K8sModel):
    """A bound on how much worse than the baseline one metric may be."""

    benchmark: BenchmarkName = Field(json_schema_extra=_SHORT_ENUM)
    """The benchmark the metric belongs to; it must be listed in spec.benchmarks."""
    metric: str = Field(default="score", pattern=r"^[A-Za-z0-9_.:/-]+$", max_length=250)
    """The metric as logged to MLflow, without the benchmark prefix."""
    max_regression: float = Field(ge=0)
    """The largest drop (baseline minus candidate, in the metric's units) that still passes."""
    min_score: float | None = None
    """An absolute floor the candidate's mean must reach regardless of the baseline."""


class Gates(K8sModel):
    """Regression gates: the candidate passes when no rule finds a regression beyond its bound.

    Differences are judged on question-level paired bootstrap intervals: a rule fails when the whole
    interval lies beyond `maxRegression`, passes when the whole interval lies within it, and is
    inconclusive otherwise.
    """

    baseline: BaselineRef
    """What to compare against."""
    rules: list[GateRule] = Field(min_length=1, max_length=64)
    """The bounds to check."""
    confidence: float = Field(default=0.95, ge=0.5, lt=1)
    """The confidence level of the bootstrap intervals."""


class Promotion(K8sModel):
    """What to do with a candidate that passes its gates."""

    registered_model: str = Field(min_length=1, max_length=500)
    """The MLflow registered model to add the candidate to."""
    alias: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]*$", max_length=255)
    """The registry alias to point at the new version (for example `production`)."""
    target_deployment: str | None = Field(default=None, pattern=_OBJECT_NAME_PATTERN, max_length=253)
    """A ModelDeployment in this namespace to roll out to the promoted version."""


class EvalRunSpec(K8sModel):
    """The desired evaluation."""

    cel_rules: ClassVar[tuple[CelRule, ...]] = (
        CelRule(
            rule="!has(self.promote) || has(self.gates)",
            message="spec.promote requires spec.gates: a candidate is promoted only after passing gates",
            holds=lambda m: m.promote is None or m.gates is not None,
            field_path=".promote",
            reason="FieldValueForbidden",
        ),
        CelRule(
            rule=(
                "!has(self.gates) || "
                "self.gates.rules.all(r, self.benchmarks.exists(b, b.name == r.benchmark))"
            ),
            message="every spec.gates.rules[].benchmark must be listed in spec.benchmarks",
            holds=lambda m: (
                m.gates is None
                or all(any(b.name == r.benchmark for b in m.benchmarks) for r in m.gates.rules)
            ),
            field_path=".gates",
            reason="FieldValueInvalid",
        ),
    )

    model: EvalTarget
    """The model to evaluate."""
    benchmarks: list[BenchmarkSpec] = Field(
        min_length=1,
        max_length=16,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    """The benchmarks to run, each at most once."""
    judges: list[Judge] = Field(
        min_length=1,
        max_length=8,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    """The judges that score the answers. With several, every answer is scored by each (a judge-swap
    sensitivity check)."""
    repeats: int = Field(default=3, ge=1, le=10)
    """Independent generate-and-judge rounds; scores report their mean and standard deviation."""
    concurrency: int = Field(default=16, ge=1, le=1024)
    """Requests in flight at once, to the model and to each judge."""
    max_error_rate: float = Field(default=0.05, ge=0, le=1)
    """The largest fraction of failed requests (after retries) a complete run may have; above it the
    run ends Incomplete and gates are not applied."""
    mlflow: MLflowSpec = defaulted(MLflowSpec)
    """Where results are logged."""
    gates: Gates | None = None
    """Regression gates against a baseline."""
    promote: Promotion | None = None
    """Promote the candidate when the gates pass. Requires gates."""

    @field_validator("benchmarks")
    @classmethod
    def _unique_benchmarks(cls, benchmarks: list[BenchmarkSpec]) -> list[BenchmarkSpec]:
        require_unique(benchmarks, "name", "spec.benchmarks")
        return benchmarks

    @field_validator("judges")
    @classmethod
    def _unique_judges(cls, judges: list[Judge]) -> list[Judge]:
        require_unique(judges, "name", "spec.judges")
        return judges


class EvalRunPhase(enum.StrEnum):
    """Where an EvalRun is in its life."""

    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    INCOMPLETE = "Incomplete"


class GateVerdict(enum.StrEnum):
    """The outcome of the regression gates."""

    PASSED = "Passed"
    FAILED = "Failed"
    INCONCLUSIVE = "Inconclusive"


class EvalRunStatus(K8sStatusModel):
    """The observed state of an EvalRun, written by the operator."""

    observed_generation: int | None = Field(default=None, ge=0)
    """The `metadata.generation` this status describes."""
    phase: EvalRunPhase | None = None
    """Pending, Running, Succeeded, Failed or Incomplete (too many failed requests to trust the scores)."""
    conditions: list[Condition] = Field(
        default_factory=list,
        max_length=32,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    """The latest observations, one per type."""
    model: str | None = None
    """The model evaluated (deployment or served name), for display."""
    job_name: str | None = None
    """The evaluation Job."""
    mlflow_run_id: str | None = None
    """The MLflow run holding every metric and artifact of this evaluation."""
    scores: dict[str, Any] | None = None
    """Summary scores per benchmark (mean, standard deviation, interval); MLflow has the detail."""
    gate: GateVerdict | None = None
    """The gates' verdict: Passed, Failed or Inconclusive."""
    start_time: datetime | None = None
    """When the evaluation Job started."""
    completion_time: datetime | None = None
    """When the evaluation finished."""


class EvalRun(K8sResource):
    """An evaluation of a model: benchmarks answered by the model and scored by LLM judges over repeated
    rounds, logged to MLflow, optionally gated against a baseline and promoted when the gates pass."""

    plural: ClassVar[str] = "evalruns"
    singular: ClassVar[str] = "evalrun"
    short_names: ClassVar[tuple[str, ...]] = ("er",)
    printer_columns: ClassVar[tuple[PrinterColumn, ...]] = (
        PrinterColumn("Model", "string", ".status.model", "The model evaluated."),
        PrinterColumn("Phase", "string", ".status.phase", "Where the run is in its life."),
        PrinterColumn("Gate", "string", ".status.gate", "The regression gates' verdict."),
        PrinterColumn("MLflow Run", "string", ".status.mlflowRunId", "The MLflow run with the results."),
        AGE_COLUMN,
    )

    api_version: Literal["shinsa.dev/v1alpha1"] = "shinsa.dev/v1alpha1"
    kind: Literal["EvalRun"] = "EvalRun"
    spec: EvalRunSpec
    status: EvalRunStatus = Field(default_factory=EvalRunStatus)
