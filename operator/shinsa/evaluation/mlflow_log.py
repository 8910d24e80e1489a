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
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from shinsa.api.eval_run import Judge, redact_userinfo
from shinsa.evaluation import outputs
from shinsa.evaluation.config import EvalConfig
from shinsa.evaluation.masking import SecretMask
from shinsa.evaluation.records import Item
from shinsa.evaluation.results import RunResults, exit_code_of

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

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
TAG_REVISION = "shinsa.model.revision"
"""The revision of the weights evaluated, when known (the spec's or the deployment's); a promoted
registry version carries the same tag."""
TAG_EVALRUN_NAMESPACE = "shinsa.evalrun.namespace"
TAG_EVALRUN_NAME = "shinsa.evalrun.name"
TAG_EVALRUN_UID = "shinsa.evalrun.uid"
"""The EvalRun that ran the evaluation; set by the operator through `engine.mlflowTags`."""
TAG_REGISTERED_MODEL = "shinsa.model.registered_name"
TAG_MODEL_VERSION = "shinsa.model.version"
"""The registered model and version evaluated, when the operator knows them (`engine.mlflowTags`)."""
TAG_WARNINGS = "shinsa.warnings"
"""The run's warnings (`RunResults.warnings`), one a line; absent when there were none."""
_TAG_LIMIT = 5000  # the longest tag value every MLflow version the engine supports accepts
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
        "profile": str(config.spec.profile),
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
        if benchmark.needs_judge:
            # The effective policy (profile defaults resolved): what decides how replies were read.
            params[f"{prefix}.judging"] = json.dumps(
                benchmark.config.judging.model_dump(mode="json", exclude_none=True), sort_keys=True
            )
        if benchmark.config.prompt_file:
            params[f"{prefix}.prompt_file"] = benchmark.config.prompt_file
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
        **({TAG_REVISION: config.spec.model.revision} if config.spec.model.revision else {}),
        **({TAG_WARNINGS: "\n".join(results.warnings)[:_TAG_LIMIT]} if results.warnings else {}),
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
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(tracking_uri)
    experiment_id = str(mlflow.set_experiment(config.spec.mlflow.experiment).experiment_id)
    client = MlflowClient(tracking_uri=tracking_uri)
    run_name = config.engine.mlflow_run_name or f"{config.served_name}-eval"
    start_ms, end_ms = run_span_ms(results)
    # The client rather than mlflow.start_run: only create_run takes a start time, so the run spans
    # the evaluation instead of the seconds spent logging it (MLflow 3.17.2, tracking/client.py
    # create_run(start_time=...) and set_terminated(end_time=...)).
    parent = client.create_run(experiment_id, start_time=start_ms, run_name=run_name)
    run_id = str(parent.info.run_id)
    try:
        _log_parent(client, run_id, out, results, items, config, benchmarks)
        for repeat in range(config.spec.repeats):
            child = client.create_run(
                experiment_id,
                start_time=start_ms,
                run_name=f"{run_name}-repeat-{repeat}",
                tags={"mlflow.parentRunId": run_id},
            )
            child_id = str(child.info.run_id)
            client.log_batch(
                child_id,
                params=_params({"repeat": repeat}),
                metrics=_metrics(repeat_metrics(results, items, repeat)),
            )
            client.set_terminated(child_id, end_time=end_ms)
        _log_traces(client, out, items, config, experiment_id, run_id)
    except BaseException:
        client.set_terminated(run_id, status="FAILED", end_time=end_ms)
        raise
    client.set_terminated(run_id, end_time=end_ms)
    return run_id, experiment_id


def run_span_ms(results: RunResults, now: float | None = None) -> tuple[int, int]:
    """The parent run's start and end (epoch milliseconds): the evaluation's. Results without a
    start time (written before it was recorded) end now and last `wall_time_s`."""
    wall = max(0.0, results.wall_time_s)
    start = results.started_at if results.started_at is not None else (now or time.time()) - wall
    return int(start * 1000), int((start + wall) * 1000)


def repeat_metrics(results: RunResults, items: Sequence[Item], repeat: int) -> dict[str, float]:
    """The metrics of the child run of `repeat`: per benchmark its mean and error rate."""
    metrics: dict[str, float] = {}
    for bench, summary in results.benchmarks.items():
        per_repeat = summary.per_repeat
        if repeat < len(per_repeat) and _finite(per_repeat[repeat]):
            metrics[metric_name(bench, "mean")] = float(per_repeat[repeat] or 0.0)
        repeat_items = [i for i in items if i.benchmark == bench and i.repeat == repeat]
        if repeat_items:
            errors = sum(i.error is not None for i in repeat_items)
            metrics[metric_name(bench, "error_rate")] = errors / len(repeat_items)
    return metrics


def _params(params: dict[str, Any]) -> list[Any]:
    from mlflow.entities import Param

    return [Param(key, str(value)) for key, value in params.items()]


def _metrics(metrics: dict[str, float]) -> list[Any]:
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    return [Metric(key, value, now, 0) for key, value in metrics.items()]


def _log_parent(
    client: MlflowClient,
    run_id: str,
    out: Path,
    results: RunResults,
    items: Sequence[Item],
    config: EvalConfig,
    benchmarks: Sequence[Benchmark],
) -> None:
    from mlflow.entities import RunTag

    # log_batch splits what exceeds MLflow's per-request limits (1000 metrics, 100 params).
    client.log_batch(
        run_id,
        metrics=_metrics(run_metrics(results)),
        params=_params(run_params(config, benchmarks)),
        tags=[RunTag(key, value) for key, value in run_tags(config, results).items()],
    )
    if inputs := dataset_inputs(results):
        client.log_inputs(run_id, datasets=inputs)
    if items:
        client.log_table(run_id, data=_items_table(items), artifact_file="items_table.json")
    for name in (outputs.SCORES, outputs.ITEMS, outputs.GENERATIONS, outputs.JUDGMENTS, outputs.CONFIG):
        if (out / name).exists():
            client.log_artifact(run_id, str(out / name))
    if (out / outputs.PLOTS).is_dir():
        client.log_artifacts(run_id, str(out / outputs.PLOTS), artifact_path=outputs.PLOTS)


# -- datasets ---------------------------------------------------------------------------------------

DATASET_CONTEXT = "evaluation"
"""The `mlflow.data.context` of each benchmark's dataset input."""
_DIGEST_LIMIT = 36  # MLflow 3.17.2's MAX_DATASET_DIGEST_SIZE (utils/validation.py)


def _source_type(uri: str) -> str:
    scheme = urlsplit(uri).scheme
    return "local" if scheme in ("", "file") else scheme


def dataset_inputs(results: RunResults) -> list[Any]:
    """Each benchmark's dataset as an MLflow dataset input (context `evaluation`): named after the
    benchmark, with the dataset's digest and URI. MLflow keeps 36 characters of a digest, so the
    digest field holds the start of the hex digest and the profile the whole one."""
    from mlflow.entities import Dataset, DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    inputs = []
    for name, bench in results.benchmarks.items():
        if bench.dataset is None:
            continue
        uri = redact_userinfo(bench.dataset.uri)
        digest = bench.dataset.digest.split(":", 1)[-1][:_DIGEST_LIMIT]
        profile = {"digest": bench.dataset.digest, "questions": bench.n_questions, "items": bench.n_items}
        dataset = Dataset(
            name=name,
            digest=digest,
            source_type=_source_type(uri),
            source=json.dumps({"uri": uri}),
            profile=json.dumps(profile),
        )
        inputs.append(DatasetInput(dataset, tags=[InputTag(MLFLOW_DATASET_CONTEXT, DATASET_CONTEXT)]))
    return inputs


# -- traces -----------------------------------------------------------------------------------------

_TRACE_TEXT_CHARS = 20000
"""Texts in a trace (prompt, answer, judgment) are cut here: the full ones are in the artifacts."""
_TRACE_FLUSH_EVERY = 100
"""Traces exported between flushes. MLflow's export queue drops what exceeds its 1000 tasks
(MLFLOW_ASYNC_TRACE_LOGGING_MAX_QUEUE_SIZE), and a trace is one task per span plus one."""


@dataclass(frozen=True)
class TraceUnit:
    """One generation and what judged it: a trace."""

    benchmark: str
    question_id: str
    turn: int
    repeat: int
    items: tuple[Item, ...]
    generation: dict[str, Any] | None
    judgments: dict[str, dict[str, Any]]
    """Judge name -> its judgment record."""

    @property
    def name(self) -> str:
        return f"{self.benchmark}/{self.question_id}/turn-{self.turn}/repeat-{self.repeat}"


def _key(record: dict[str, Any] | Item) -> tuple[str, str, int, int]:
    row: dict[str, Any] = record if isinstance(record, dict) else record.as_dict()
    return (str(row["benchmark"]), str(row["question_id"]), int(row["turn"]), int(row["repeat"]))


def trace_units(
    items: Sequence[Item],
    generations: Sequence[dict[str, Any]],
    judgments: Sequence[dict[str, Any]],
    limit: int | None,
) -> list[TraceUnit]:
    """The (benchmark, question, turn, repeat) units to trace, in the items' order; with a `limit`,
    that many spread evenly over them, so that every benchmark is sampled."""
    by_unit: dict[tuple[str, str, int, int], list[Item]] = {}
    for item in items:
        by_unit.setdefault(_key(item), []).append(item)
    keys = list(by_unit)
    if limit is not None and limit < len(keys):
        keys = [keys[i * len(keys) // limit] for i in range(limit)]
    wanted = set(keys)
    gens = {_key(r): r for r in generations if _key(r) in wanted}
    judged: dict[tuple[str, str, int, int], dict[str, dict[str, Any]]] = {}
    for record in judgments:
        if _key(record) in wanted:
            judged.setdefault(_key(record), {})[str(record.get("judge"))] = record
    return [
        TraceUnit(*key, items=tuple(by_unit[key]), generation=gens.get(key), judgments=judged.get(key, {}))
        for key in keys
    ]


def _cut(value: Any) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= _TRACE_TEXT_CHARS else text[:_TRACE_TEXT_CHARS] + "…"


def _usage(usage: dict[str, Any] | None) -> dict[str, int]:
    usage = usage or {}
    prompt, completion = int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0))
    return {"input_tokens": prompt, "output_tokens": completion, "total_tokens": prompt + completion}


def _read_records(path: Path) -> list[dict[str, Any]]:
    return outputs.read_items(path) if path.is_file() else []


def _log_traces(
    client: MlflowClient,
    out: Path,
    items: Sequence[Item],
    config: EvalConfig,
    experiment_id: str,
    run_id: str,
) -> int:
    """Log the sampled judged items as traces of the run; returns how many."""
    limit = config.engine.trace_limit
    if limit == 0 or not items:
        return 0
    import mlflow

    units = trace_units(
        items, _read_records(out / outputs.GENERATIONS), _read_records(out / outputs.JUDGMENTS), limit
    )
    # The records are masked when made; a trace is masked again, as everything else that leaves.
    mask = SecretMask.of_config(config)
    trace_ids: list[str] = []
    try:
        for n, unit in enumerate(units, start=1):
            trace_ids.append(_log_trace(unit, mask, config, experiment_id, run_id))
            if n % _TRACE_FLUSH_EVERY == 0:
                mlflow.flush_trace_async_logging()
    finally:
        # Terminated, so that no export thread is left to log "Flushing the async trace logging
        # queue before program exit" to stderr past the reporter; reset, so that a later run in
        # this process gets a fresh exporter (MLflow 3.17.2: tracking/fluent.py
        # flush_trace_async_logging, tracing/provider.py reset).
        mlflow.flush_trace_async_logging(terminate=True)
        mlflow.tracing.reset()  # type: ignore[no-untyped-call]
    # The run's traces are found by their mlflow.sourceRun metadata; the link is what
    # mlflow.genai.evaluate also makes (genai/evaluation/harness.py), for the evaluation views.
    for start in range(0, len(trace_ids), 100):  # MAX_TRACE_LINKS_PER_REQUEST
        client.link_traces_to_run(trace_ids[start : start + 100], run_id)
    return len(trace_ids)


def _log_trace(unit: TraceUnit, mask: SecretMask, config: EvalConfig, experiment_id: str, run_id: str) -> str:
    # Public API of MLflow 3.17.2: mlflow.start_span_no_context (tracing/fluent.py) takes start
    # times and parents, and log_feedback on the active trace adds the assessment to the trace
    # before it is exported (tracing/client.py log_assessment), one request fewer per assessment.
    import mlflow
    from mlflow.entities import AssessmentError, AssessmentSource, SpanType
    from mlflow.tracing.constant import AssessmentMetadataKey, SpanAttributeKey, TraceMetadataKey
    from mlflow.tracing.provider import safe_set_span_in_context

    first = unit.items[0]
    generation = unit.generation or {}
    tags = {
        "shinsa.benchmark": unit.benchmark,
        "shinsa.question_id": unit.question_id,
        "shinsa.category": first.category,
        "shinsa.turn": str(unit.turn),
        "shinsa.repeat": str(unit.repeat),
    }
    start = time.time_ns()
    root = mlflow.start_span_no_context(
        unit.name,
        span_type=SpanType.CHAIN,
        inputs=mask.value({"question": _cut(generation.get("prompt")), **tags}),
        tags=mask.value(tags),
        metadata={TraceMetadataKey.SOURCE_RUN: run_id},
        experiment_id=experiment_id,
        start_time_ns=start,
    )
    gen_end = start + int(float(generation.get("latency_s") or 0.0) * 1e9)
    gen = mlflow.start_span_no_context(
        "generation",
        span_type=SpanType.LLM,
        parent_span=root,
        inputs=mask.value({"prompt": _cut(generation.get("prompt")), "sampling": generation.get("sampling")}),
        attributes=mask.value(
            {
                "model": config.served_name,
                "latency_s": generation.get("latency_s"),
                "ttft_s": generation.get("ttft_s"),
                "attempts": generation.get("attempts"),
                "reasoning_tokens": (generation.get("usage") or {}).get("reasoning_tokens", 0),
            }
        ),
        start_time_ns=start,
    )
    gen.set_attribute(SpanAttributeKey.CHAT_USAGE, _usage(generation.get("usage")))
    gen.set_outputs(
        mask.value(
            {"answer": _cut(generation.get("answer")), "finish_reason": generation.get("finish_reason")}
        )
    )
    if not unit.generation:
        gen.set_status("ERROR")
    gen.end(end_time_ns=gen_end)
    end = gen_end
    for judge, record in unit.judgments.items():
        judge_end = gen_end + int(float(record.get("latency_s") or 0.0) * 1e9)
        span = mlflow.start_span_no_context(
            f"judgment/{judge}",
            span_type=SpanType.LLM,
            parent_span=root,
            inputs=mask.value(
                {"judge": judge, "model": record.get("judge_model"), "answer": _cut(generation.get("answer"))}
            ),
            attributes=mask.value({"latency_s": record.get("latency_s"), "attempts": record.get("attempts")}),
            start_time_ns=gen_end,
        )
        span.set_attribute(SpanAttributeKey.CHAT_USAGE, _usage(record.get("usage")))
        span.set_outputs(
            mask.value(
                {
                    "score": record.get("score"),
                    "criteria": record.get("criteria"),
                    "judgment": _cut(record.get("judgment")),
                }
            )
        )
        span.end(end_time_ns=judge_end)
        end = max(end, judge_end)
    with safe_set_span_in_context(root):
        for item in unit.items:
            record = unit.judgments.get(item.judge, {})
            source = AssessmentSource(
                source_type="LLM_JUDGE" if record else "CODE",
                source_id=str(record.get("judge_model") or item.judge),
            )
            common: dict[str, Any] = {
                "trace_id": root.trace_id,
                "name": item.judge,
                "source": source,
                "span_id": root.span_id,
                "metadata": {AssessmentMetadataKey.SOURCE_RUN_ID: run_id},
            }
            if item.error is not None or item.score is None:
                error = AssessmentError(
                    error_code="SHINSA_ITEM_ERROR", error_message=mask.text(str(item.error))[:1000]
                )
                mlflow.log_feedback(**common, error=error)
            else:
                rationale = mask.text(_cut(record.get("judgment"))) if record else None
                mlflow.log_feedback(**common, value=float(item.score), rationale=rationale)
    scores = {item.judge: item.score for item in unit.items}
    root.set_outputs(mask.value({"answer": _cut(generation.get("answer")), "scores": scores}))
    if any(item.error is not None for item in unit.items):
        root.set_status("ERROR")
    root.end(end_time_ns=end)
    return str(root.trace_id)
