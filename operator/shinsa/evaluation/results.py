"""The typed results of one evaluation: the engine writes them, every reader parses them.

`scores.json` is the serialization of `RunResults`. Outputs, MLflow logging, plots, `shinsa eval`, the
gates and the operator read results only through this module, so a field is named, typed and
documented once (inspect_ai's `log/_log.py` is the model). Pure: pydantic and the standard library;
the file I/O is two small functions at the end.

Per-question tables hold, for every metric a gate may name, each question's value per turn and
repeat. Gates pair candidate and baseline on them by (question, turn) and resample whole questions.
"""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from shinsa.evaluation import stats

SCHEMA_VERSION = 1
"""Bumped when a field changes meaning or a required one is added; readers refuse other versions."""

SCORES_FILE = "scores.json"
ITEMS_FILE = "items.jsonl"

HEADLINE = "score"
"""The headline metric: the primary judge's score of each item."""
CATEGORY_PREFIX = "category/"
TURN_PREFIX = "turn/"
JUDGE_PREFIX = "judge/"
CRITERION_PREFIX = "criterion/"


class ResultsError(Exception):
    """Results that cannot be read: missing, not JSON, another schema version, or a bad field."""


class RunStatus(enum.StrEnum):
    """How a run that wrote results ended."""

    SUCCEEDED = "Succeeded"
    """Every benchmark ran and the error rate stayed within maxErrorRate."""
    INCOMPLETE = "Incomplete"
    """Too many requests failed (after retries) for the scores to be trusted; gates are not applied."""
    GENERATED = "Generated"
    """Answers only (`shinsa eval run --phase generate`), within maxErrorRate: nothing was judged, so
    `benchmarks` holds only those scored by rule, `judges` is empty; `items` and `errors` count
    generated turns. Gates are not applied; judge the run's generations.jsonl with `--phase judge
    --answers`."""


class ExitCode(enum.IntEnum):
    """The exit status of `shinsa eval run`, which the EvalRun controller reads from the Job's pod."""

    OK = 0
    """Succeeded."""
    CRASH = 1
    """A bug, or an endpoint that does not answer at all."""
    CONFIG = 2
    """The configuration or a dataset is invalid; nothing was requested."""
    INCOMPLETE = 3
    """The error rate exceeded maxErrorRate; results are written, with status Incomplete."""
    TERMINATED = 143
    """Stopped by SIGTERM (128 + 15); the checkpoint was flushed, a rerun resumes."""


def exit_code_of(status: RunStatus) -> ExitCode:
    """The exit status of a run that wrote results."""
    return ExitCode.INCOMPLETE if status is RunStatus.INCOMPLETE else ExitCode.OK


def _none_if_nan(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


class _Schema(BaseModel):
    # Unknown fields are tolerated so that a newer minor writer does not break an older reader.
    model_config = ConfigDict(extra="ignore", frozen=True)


Number = float | None
"""A value that may be undefined (NaN in memory, `null` in JSON): a std of one repeat, an empty set."""


class ScoreSummary(_Schema):
    """Mean, spread and a question-level bootstrap interval of a set of items' scores."""

    mean: Number
    std: Number
    """Standard deviation of the per-repeat means (ddof=1); undefined with one repeat."""
    ci_low: Number
    ci_high: Number
    n_questions: int
    n_items: int
    """Items in the set, errors included."""
    n_scored: int
    n_errors: int
    per_repeat: list[Number]
    """The mean of each repeat, by repeat number; null for a repeat in which nothing was scored."""

    _nan = field_validator("mean", "std", "ci_low", "ci_high", mode="before")(_none_if_nan)

    @field_validator("per_repeat", mode="before")
    @classmethod
    def _repeat_nans(cls, values: Any) -> Any:
        return [_none_if_nan(v) for v in values] if isinstance(values, list | tuple) else values

    @classmethod
    def of(cls, summary: stats.Summary, *, n_items: int, n_errors: int, per_repeat: list[Number]) -> Self:
        return cls(
            mean=summary.mean,
            std=summary.std,
            ci_low=summary.ci_low,
            ci_high=summary.ci_high,
            n_questions=summary.n_questions,
            n_items=n_items,
            n_scored=summary.n_items,
            n_errors=n_errors,
            per_repeat=per_repeat,
        )


class JudgeAgreement(_Schema):
    """Rank agreement of two judges over the questions both scored."""

    judges: tuple[str, str]
    n_questions: int
    kendall_tau: Number
    spearman: Number
    mean_difference: Number

    _nan = field_validator("kendall_tau", "spearman", "mean_difference", mode="before")(_none_if_nan)


class DatasetInfo(_Schema):
    uri: str
    digest: str
    """A digest of the files read: runs on different data are not comparable."""


QuestionTable = dict[str, dict[str, list[Number]]]
"""question id -> turn (as a string, JSON keys are strings) -> the value in each repeat (null: none)."""


class BenchmarkResult(ScoreSummary):
    """One benchmark's results: the headline summary (primary judge) and everything gates may name."""

    primary_judge: str
    """The judge whose scores are the headline (`rule` for benchmarks scored without a judge)."""
    judge_model: str | None = None
    """The primary judge's model; with the judge prompts, what makes two runs' scores comparable."""
    judge_prompts_digest: str | None = None
    """A digest of the judge prompt templates and settings the benchmark used."""
    generation_digest: str | None = None
    """A digest of what shaped the model's answers besides the model (sampling, per-category sampling,
    system prompt, dataset): `shinsa eval compare` compares models only under the same settings. None
    when the answers were given (`spec.answers`) or in results written before it was recorded."""
    n_errors_all_judges: int
    error_rate: float
    """Failed items over all items of every judge."""
    wall_time_s: float = 0.0
    dataset: DatasetInfo | None = None
    categories: dict[str, ScoreSummary] = Field(default_factory=dict)
    turns: dict[str, ScoreSummary] = Field(default_factory=dict)
    judges: dict[str, ScoreSummary] = Field(default_factory=dict)
    judge_agreement: list[JudgeAgreement] = Field(default_factory=list)
    metrics: dict[str, float] = Field(default_factory=dict)
    """Benchmark-specific aggregates (violation_rate, criterion/<name>, <length>/accuracy, ...)."""
    question_categories: dict[str, str] = Field(default_factory=dict)
    """Each question's category, which `category/<name>` tables are cut by."""
    question_metrics: dict[str, QuestionTable] = Field(default_factory=dict)
    """Per-question values of the headline `score`, `judge/<name>` and each per-item metric."""

    def metric_names(self) -> list[str]:
        """Every metric `table` can give."""
        names = set(self.question_metrics)
        if HEADLINE in self.question_metrics:
            names |= {CATEGORY_PREFIX + c for c in set(self.question_categories.values())}
            names |= {TURN_PREFIX + t for row in self.question_metrics[HEADLINE].values() for t in row}
        return sorted(names)

    def table(self, metric: str) -> QuestionTable | None:
        """The per-question table of `metric`, or None when this benchmark has no such metric.

        `category/<name>` and `turn/<n>` are the headline score restricted to those questions or turns.
        """
        if metric in self.question_metrics:
            return self.question_metrics[metric]
        headline = self.question_metrics.get(HEADLINE)
        if headline is None:
            return None
        if metric.startswith(CATEGORY_PREFIX):
            category = metric.removeprefix(CATEGORY_PREFIX)
            cut = {q: row for q, row in headline.items() if self.question_categories.get(q) == category}
            return cut or None
        if metric.startswith(TURN_PREFIX):
            turn = metric.removeprefix(TURN_PREFIX)
            by_turn = {q: {turn: row[turn]} for q, row in headline.items() if turn in row}
            return by_turn or None
        return None


class ModelInfo(_Schema):
    served_name: str
    endpoint: str | None = None
    """None when the model was not called (its answers were given)."""
    revision: str | None = None
    answers: str | None = None
    """The URI of the pre-generated answers judged instead of the model's (`spec.answers`)."""
    answers_model: str | None = None
    """The model that generated them, as their source names it (llm-jp-judge's metadata.json
    `model_name`); None when it does not."""
    rope_scaling: str | None = None
    """How the model's context was extended (`spec.model.ropeScaling`), as `yarn x4`; None when it
    was served at its native context. YaRN on/off is a condition to compare per length."""


class JudgeInfo(_Schema):
    name: str
    model: str
    endpoint: str
    sampling: dict[str, Any] = Field(default_factory=dict)
    """The judge's own request settings (temperature, top_p, max_tokens, seed, reasoning_effort),
    which a benchmark's `judging.sampling` overrides (that is in `judge_prompts_digest`). Empty in
    results written before they were recorded."""


class TokenTotals(_Schema):
    prompt: int = 0
    completion: int = 0
    reasoning: int = 0
    judge_prompt: int = 0
    judge_completion: int = 0


class RunResults(_Schema):
    """Everything one evaluation run reports: the body of scores.json."""

    schema_version: int = SCHEMA_VERSION
    status: RunStatus
    model: ModelInfo
    judges: list[JudgeInfo] = Field(default_factory=list)
    repeats: int
    items: int
    errors: int
    error_rate: float
    max_error_rate: float
    reused_from_checkpoint: int = 0
    """Steps taken from the checkpoint of an earlier attempt instead of being requested again."""
    requests: dict[str, int] = Field(default_factory=dict)
    tokens: TokenTotals = Field(default_factory=TokenTotals)
    wall_time_s: float = 0.0
    started_at: float | None = None
    """When the evaluation started, in seconds since the epoch; with `wall_time_s`, the span of the MLflow
    run. None in results written before it was recorded."""
    benchmarks: dict[str, BenchmarkResult]
    warnings: list[str] = Field(default_factory=list)
    """What the user should know about how the run read its data, each prefixed with its benchmark
    (`mt-bench-ja: 3 question(s) of the reference categories have no reference answer ...`): printed
    with the summary and logged to MLflow. Empty in results written before they were recorded."""
    plots: list[str] = Field(default_factory=list)
    """Plot files, relative to the results directory."""
    mlflow_run_id: str | None = None
    mlflow_experiment_id: str | None = None
    """The experiment of `mlflow_run_id`: MLflow's UI routes a run page through its experiment."""

    def to_json(self) -> str:
        return self.model_dump_json(indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, *, source: str = SCORES_FILE) -> RunResults:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ResultsError(f"{source}: not JSON: {exc}") from None
        return cls.from_data(data, source=source)

    @classmethod
    def from_data(cls, data: Any, *, source: str = SCORES_FILE) -> RunResults:
        if not isinstance(data, Mapping):
            raise ResultsError(f"{source}: expected a JSON object")
        version = data.get("schema_version")
        if version is None:
            raise ResultsError(
                f"{source}: no schema_version: written by a Shinsa before results had a schema; "
                "re-run `shinsa eval run` with --resume on its checkpoint to rewrite it (nothing is "
                "requested again)"
            )
        if version != SCHEMA_VERSION:
            raise ResultsError(
                f"{source}: schema_version {version} is not the {SCHEMA_VERSION} this Shinsa reads"
            )
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()[:5]
            )
            raise ResultsError(f"{source}: {problems}") from None


def question_table(rows: Iterable[tuple[str, int, int, float | None]], repeats: int) -> QuestionTable:
    """Build a table from (question id, turn, repeat, value) rows; value None where nothing was scored."""
    table: QuestionTable = {}
    for qid, turn, repeat, value in rows:
        cells = table.setdefault(qid, {}).setdefault(str(turn), [None] * repeats)
        if 0 <= repeat < repeats and value is not None and math.isfinite(value):
            cells[repeat] = value
    return {q: dict(sorted(table[q].items(), key=lambda kv: int(kv[0]))) for q in sorted(table)}


def read_results(path: str | Path) -> RunResults:
    """Results from a results directory or its scores.json."""
    file = Path(path)
    if file.is_dir():
        file = file / SCORES_FILE
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ResultsError(f"{file}: cannot read: {exc.strerror}") from None
    return RunResults.from_json(text, source=str(file))


def write_results(results: RunResults, directory: Path) -> Path:
    """Write scores.json atomically (a reader never sees half a file)."""
    file = directory / SCORES_FILE
    tmp = file.with_suffix(".json.tmp")
    tmp.write_text(results.to_json(), encoding="utf-8")
    tmp.replace(file)
    return file
