"""Logging a finished run to MLflow: one parent run, and a nested run per repeat.

Only names of API-key environment variables are in the config; keys themselves never reach this
module. `extraBody` is not logged either, since it is free-form and may carry credentials.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import math
import os
import re
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shinsa.api.eval_run import Judge
from shinsa.evaluation import outputs
from shinsa.evaluation.config import EvalConfig
from shinsa.evaluation.records import Item
from shinsa.evaluation.results import RunResults, exit_code_of

if TYPE_CHECKING:
    from shinsa.evaluation.benchmarks import Benchmark
    from shinsa.evaluation.progress import Reporter

_PARAM_LIMIT = 6000

# Tags of the parent run of an evaluation. The operator finds evaluations by them
# (shinsa.registry.evaluations): the latest Succeeded one of a registered model's version is the
# baseline `mlflowModel: name@alias` names.
TAG_KIND = "shinsa.kind"
"""`evaluation` on the parent run (its per-repeat children have no shinsa tags)."""
TAG_STATUS = "shinsa.status"
"""Succeeded or Incomplete (`results.RunStatus`)."""
TAG_EXIT_CODE = "shinsa.exit_code"
"""The exit status of `shinsa eval run` for these results: 0 or 3."""
TAG_MODEL = "shinsa.model"
"""The served model name evaluated."""
TAG_EVALRUN_NAMESPACE = "shinsa.evalrun.namespace"
TAG_EVALRUN_NAME = "shinsa.evalrun.name"
TAG_EVALRUN_UID = "shinsa.evalrun.uid"
"""The EvalRun that ran the evaluation; set by the operator through `engine.mlflowTags`."""
TAG_REGISTERED_MODEL = "shinsa.model.registered_name"
TAG_MODEL_VERSION = "shinsa.model.version"
"""The registered model and version evaluated, when the operator knows them (`engine.mlflowTags`)."""
ENGINE_TAGS = (TAG_KIND, TAG_STATUS, TAG_EXIT_CODE, TAG_MODEL)
"""The tags the engine itself sets; `engine.mlflowTags` cannot override them."""


def metric_name(*parts: str) -> str:
    """MLflow accepts letters, digits and `_-. :/` in metric names; other characters (for example a
    Japanese category name) are replaced, with a short hash to keep distinct names distinct."""
    raw = "/".join(parts)
    safe = re.sub(r"[^A-Za-z0-9_\-. :/]", "_", raw)
    if safe != raw:
        safe += "_" + hashlib.sha256(raw.encode()).hexdigest()[:6]
    return safe


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def judge_params(judge: Judge) -> dict[str, Any]:
    """`judge/<name>/<setting>` for the settings that shape a judge's ratings. Not the key's variable
    name nor `extraBody`, which is free-form and may carry credentials."""
    settings = {
        "model": judge.model,
        "endpoint": judge.endpoint,
        "temperature": judge.temperature,
        "max_tokens": judge.max_tokens,
        "max_tokens_param": judge.max_tokens_param,
        "reasoning_effort": judge.reasoning_effort,
        "parse_retries": judge.parse_retries,
    }
    # Unset (not sent to the judge) is logged as an empty value, as for model.revision.
    return {
        metric_name("judge", judge.name, key): "" if value is None else value
        for key, value in settings.items()
    }


def run_params(config: EvalConfig, benchmarks: Sequence[Benchmark]) -> dict[str, str]:
    params: dict[str, Any] = {
        "model": config.served_name,
        "model.revision": config.spec.model.revision or "",
        "model.endpoint": config.endpoint or "",
        "repeats": config.spec.repeats,
        "concurrency": config.spec.concurrency,
        "max_error_rate": config.spec.max_error_rate,
        "sampling": json.dumps(config.spec.sampling.model_dump(exclude_none=True), sort_keys=True),
        "judges": ",".join(f"{j.name}={j.model}@{j.endpoint}" for j in config.spec.judges),
        "primary_judge": config.spec.judges[0].name if config.spec.judges else "",
    }
    for judge in config.spec.judges:
        params.update(judge_params(judge))
    for benchmark in benchmarks:
        prefix = benchmark.name
        params[f"{prefix}.dataset.uri"] = benchmark.config.dataset.uri
        params[f"{prefix}.dataset.digest"] = benchmark.dataset.digest if benchmark.dataset else ""
        params[f"{prefix}.questions"] = len(benchmark.questions)
        sampling = config.spec.sampling.merged(benchmark.config.sampling)
        params[f"{prefix}.sampling"] = json.dumps(sampling.model_dump(exclude_none=True), sort_keys=True)
        if benchmark.config.category_sampling:
            params[f"{prefix}.category_sampling"] = json.dumps(
                {k: v.model_dump(exclude_none=True) for k, v in benchmark.config.category_sampling.items()},
                sort_keys=True,
            )
    return {k: str(v)[:_PARAM_LIMIT] for k, v in params.items()}


def run_metrics(results: RunResults) -> dict[str, float]:
    metrics: dict[str, float] = {}

    def put(name: str, value: Any) -> None:
        if _finite(value):
            metrics[name] = float(value)

    put("error_rate", results.error_rate)
    put("wall_time_s", results.wall_time_s)
    put("items", results.items)
    for kind, count in results.tokens.model_dump().items():
        put(metric_name("tokens", kind), count)
    for bench, summary in results.benchmarks.items():
        for key in (
            "mean",
            "std",
            "ci_low",
            "ci_high",
            "error_rate",
            "n_items",
            "n_questions",
            "wall_time_s",
        ):
            put(metric_name(bench, key), getattr(summary, key))
        # Gate rules name their metric without the benchmark prefix and default to "score".
        put(metric_name(bench, "score"), summary.mean)
        for label, group in (
            ("category", summary.categories),
            ("turn", summary.turns),
            ("judge", summary.judges),
        ):
            for name, sub in group.items():
                for key in ("mean", "ci_low", "ci_high", "std"):
                    put(metric_name(bench, label, name, key), getattr(sub, key))
        for name, value in summary.metrics.items():
            put(metric_name(bench, name), value)
        for pair in summary.judge_agreement:
            a, b = pair.judges
            put(metric_name(bench, "agreement", f"{a}~{b}", "kendall_tau"), pair.kendall_tau)
            put(metric_name(bench, "agreement", f"{a}~{b}", "spearman"), pair.spearman)
    return metrics


def run_tags(config: EvalConfig, results: RunResults) -> dict[str, str]:
    """The parent run's tags: `engine.mlflowTags` and the engine's own (ENGINE_TAGS)."""
    return {
        **config.engine.mlflow_tags,
        TAG_KIND: "evaluation",
        TAG_STATUS: results.status.value,
        TAG_EXIT_CODE: str(int(exit_code_of(results.status))),
        TAG_MODEL: config.served_name,
    }


def _items_table(items: Sequence[Item]) -> dict[str, list[Any]]:
    rows = [item.as_dict() for item in items]
    columns: dict[str, list[Any]] = {key: [] for key in (rows[0] if rows else {})}
    for row in rows:
        for key, value in row.items():
            # Nested values become JSON text so every column has a single scalar type.
            columns[key].append(json.dumps(value, ensure_ascii=False) if isinstance(value, dict) else value)
    return columns


@contextlib.contextmanager
def _tracking_uri_kept() -> Iterator[None]:
    # MLflow exports the tracking URI to the environment; restore it so that logging one run does not
    # redirect whatever else this process logs later.
    previous = os.environ.get("MLFLOW_TRACKING_URI")
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = previous


class _ToReporter(logging.Handler):
    def __init__(self, reporter: Reporter) -> None:
        super().__init__()
        self._reporter = reporter

    def emit(self, record: logging.LogRecord) -> None:
        self._reporter.event(record.getMessage(), level=record.levelname.lower(), logger=record.name)


# MLflow's own loggers, each with a stream handler of its own (mlflow.utils.logging_utils), and the
# HTTP client's, which warns on retries through logging's last-resort stderr handler.
_LOGGERS = ("mlflow", "alembic", "sqlalchemy.engine", "urllib3")


@contextlib.contextmanager
def _output_through(reporter: Reporter) -> Iterator[None]:
    """Everything MLflow says goes through `reporter`: with `--json-logs` the output is one JSON
    object a line, and what it says is masked like every other line. It writes `🏃 View run ...`
    to stdout, logs through handlers of its own to stderr, and issues warnings."""
    import mlflow  # noqa: F401  # importing it installs the handlers replaced here

    loggers = [logging.getLogger(name) for name in _LOGGERS]
    saved = [(logger.handlers, logger.propagate) for logger in loggers]
    handler = _ToReporter(reporter)
    stdout = io.StringIO()
    try:
        for logger in loggers:
            logger.handlers, logger.propagate = [handler], False
        with contextlib.redirect_stdout(stdout), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("default")
            yield
    finally:
        for logger, (handlers, propagate) in zip(loggers, saved, strict=True):
            logger.handlers, logger.propagate = handlers, propagate
        for line in stdout.getvalue().splitlines():
            if line.strip():
                reporter.event(line.strip(), logger="mlflow")
        for warning in caught:
            reporter.event(str(warning.message), level="warning", logger=warning.category.__name__)


@_tracking_uri_kept()
def log_run(
    out: Path,
    results: RunResults,
    items: Sequence[Item],
    config: EvalConfig,
    benchmarks: Sequence[Benchmark],
    tracking_uri: str,
    reporter: Reporter | None = None,
) -> tuple[str, str]:
    """Log the results in `out` and return the parent run's id and its experiment's; what MLflow
    prints or logs meanwhile goes to `reporter` when one is given."""
    with _output_through(reporter) if reporter else contextlib.nullcontext():
        return _log_run(out, results, items, config, benchmarks, tracking_uri)


def _log_run(
    out: Path,
    results: RunResults,
    items: Sequence[Item],
    config: EvalConfig,
    benchmarks: Sequence[Benchmark],
    tracking_uri: str,
) -> tuple[str, str]:
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment(config.spec.mlflow.experiment)
    run_name = config.engine.mlflow_run_name or f"{config.served_name}-eval"
    with mlflow.start_run(run_name=run_name) as parent:
        mlflow.set_tags(run_tags(config, results))
        mlflow.log_params(run_params(config, benchmarks))
        mlflow.log_metrics(run_metrics(results))
        if items:
            mlflow.log_table(data=_items_table(items), artifact_file="items_table.json")
        for name in (outputs.SCORES, outputs.ITEMS, outputs.GENERATIONS, outputs.JUDGMENTS, outputs.CONFIG):
            if (out / name).exists():
                mlflow.log_artifact(str(out / name))
        if (out / outputs.PLOTS).is_dir():
            mlflow.log_artifacts(str(out / outputs.PLOTS), artifact_path=outputs.PLOTS)

        for repeat in range(config.spec.repeats):
            with mlflow.start_run(run_name=f"{run_name}-repeat-{repeat}", nested=True):
                mlflow.log_param("repeat", repeat)
                repeat_metrics: dict[str, float] = {}
                for bench, summary in results.benchmarks.items():
                    per_repeat = summary.per_repeat
                    if repeat < len(per_repeat) and _finite(per_repeat[repeat]):
                        repeat_metrics[metric_name(bench, "mean")] = float(per_repeat[repeat] or 0.0)
                    repeat_items = [i for i in items if i.benchmark == bench and i.repeat == repeat]
                    if repeat_items:
                        errors = sum(i.error is not None for i in repeat_items)
                        repeat_metrics[metric_name(bench, "error_rate")] = errors / len(repeat_items)
                mlflow.log_metrics(repeat_metrics)
        return str(parent.info.run_id), str(parent.info.experiment_id)
