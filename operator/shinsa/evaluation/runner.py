"""Running an evaluation: datasets -> generations -> judgments -> scores, resumable at any point."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx

from shinsa.api.eval_run import Judge
from shinsa.evaluation.benchmarks import Benchmark, check_config, known_benchmarks
from shinsa.evaluation.benchmarks.base import JudgmentParser, Messages
from shinsa.evaluation.checkpoint import Checkpoint
from shinsa.evaluation.client import ChatClient, EndpointUnreachable, RequestFailed
from shinsa.evaluation.config import ConfigError, EvalConfig, Sampling, judge_sampling
from shinsa.evaluation.datasets import Question
from shinsa.evaluation.masking import SecretMask, masked
from shinsa.evaluation.outputs import publish_results, write_outputs
from shinsa.evaluation.progress import JsonLinesReporter, Reporter
from shinsa.evaluation.ratelimit import RateLimiter
from shinsa.evaluation.ratings import RatingError
from shinsa.evaluation.records import Generation, Item, Judgment, StepFailed
from shinsa.evaluation.results import (
    BenchmarkResult,
    ExitCode,
    JudgeInfo,
    ModelInfo,
    RunResults,
    RunStatus,
    TokenTotals,
    exit_code_of,
    write_results,
)
from shinsa.evaluation.scoring import json_safe, score_benchmark

_PROMPT_EXCERPT_CHARS = 2000
_REMOTE_FLUSH_S = 2.0
_TRACKING_CHECK_TIMEOUT_S = 15.0


@dataclass
class RunResult:
    """A finished run: its typed results (scores.json) and the records behind them."""

    exit_code: ExitCode
    results: RunResults
    items: list[Item]
    generations: list[dict[str, Any]]
    judgments: list[dict[str, Any]]
    output_dir: Path

    @property
    def status(self) -> RunStatus:
        return self.results.status

    @property
    def mlflow_run_id(self) -> str | None:
        return self.results.mlflow_run_id


def fingerprint(settings: Any) -> str:
    blob = json.dumps(settings, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _api_key(env_name: str | None) -> str | None:
    return os.environ.get(env_name) if env_name else None


class Engine:
    """The benchmarks' `Context`: generation and judging that consult the checkpoint first."""

    def __init__(
        self,
        config: EvalConfig,
        model: ChatClient,
        judges: dict[str, tuple[Judge, ChatClient]],
        checkpoint: Checkpoint,
        generation_fps: dict[str, str],
        judge_fps: dict[tuple[str, str], str],
        mask: SecretMask | None = None,
    ) -> None:
        self.config = config
        self.mask = mask or SecretMask()
        self.model = model
        self._judges = judges
        self.checkpoint = checkpoint
        self.generation_fps = generation_fps
        self.judge_fps = judge_fps
        self.generations: list[dict[str, Any]] = []
        self.judgments: list[dict[str, Any]] = []
        self.reused = 0

    @property
    def judges(self) -> Sequence[str]:
        return list(self._judges)

    def checkpointed_items(self, benchmark: Benchmark, repeats: int) -> int:
        """Items of `benchmark` whose last step (the judgment, or the generation when nothing is
        judged) is already in the checkpoint under the current settings: what a resumed run reuses."""
        if benchmark.needs_judge:
            steps = [("judgment", j, self.judge_fps[(benchmark.name, j)]) for j in self.judges]
        else:
            steps = [("generation", "", self.generation_fps[benchmark.name])]
        return sum(
            self.checkpoint.get(kind, benchmark.name, question.question_id, turn, repeat, judge, fp)
            is not None
            for question in benchmark.questions
            for turn in range(1, len(question.turns) + 1)
            for repeat in range(repeats)
            for kind, judge, fp in steps
        )

    async def generate(
        self,
        benchmark: Benchmark,
        question: Question,
        turn: int,
        repeat: int,
        messages: Messages,
        sampling: Sampling,
        *,
        stream: bool = False,
    ) -> Generation:
        fp = self.generation_fps[benchmark.name]
        qid = question.question_id
        record = self.checkpoint.get("generation", benchmark.name, qid, turn, repeat, "", fp)
        cached = record is not None
        if record is None:
            if sampling.seed is not None:
                # Repeats are meant to be independent draws; the same seed would make them identical.
                sampling = sampling.model_copy(update={"seed": sampling.seed + repeat})
            key = f"{benchmark.name}/{qid}/{turn}/{repeat}/generation"
            try:
                result = await self.model.chat(messages, sampling, stream=stream, item_key=key)
            except RequestFailed as exc:
                raise StepFailed(self.mask.text(str(exc))) from None
            record = {
                **_record_key("generation", benchmark, question, turn, repeat, "", fp),
                "prompt": messages[-1]["content"][:_PROMPT_EXCERPT_CHARS],
                "answer": result.answer,
                "reasoning": result.reasoning,
                "usage": result.usage.as_dict(),
                "latency_s": result.latency_s,
                "ttft_s": result.ttft_s,
                "finish_reason": result.finish_reason,
                "attempts": result.attempts,
                "sampling": sampling.model_dump(exclude_none=True),
            }
            # A model may repeat what it was sent; the checkpoint can live on shared storage.
            record = self.mask.value(record)
            self.checkpoint.put(record)
        else:
            self.reused += 1
        self.generations.append(record)
        return Generation(
            answer=record["answer"],
            reasoning=record.get("reasoning", ""),
            usage=dict(record.get("usage") or {}),
            latency_s=float(record.get("latency_s") or 0.0),
            ttft_s=record.get("ttft_s"),
            finish_reason=record.get("finish_reason"),
            cached=cached,
        )

    async def judge(
        self,
        benchmark: Benchmark,
        question: Question,
        turn: int,
        repeat: int,
        judge: str,
        messages: Messages,
        parse: JudgmentParser,
    ) -> Judgment:
        fp = self.judge_fps[(benchmark.name, judge)]
        qid = question.question_id
        record = self.checkpoint.get("judgment", benchmark.name, qid, turn, repeat, judge, fp)
        cached = record is not None
        if record is None:
            record = self.mask.value(
                await self._ask_judge(benchmark, question, turn, repeat, judge, messages, parse, fp)
            )
            self.checkpoint.put(record)
        else:
            self.reused += 1
        self.judgments.append(record)
        return Judgment(
            score=float(record["score"]),
            criteria=dict(record.get("criteria") or {}),
            text=record.get("judgment", ""),
            usage=dict(record.get("usage") or {}),
            latency_s=float(record.get("latency_s") or 0.0),
            attempts=int(record.get("attempts") or 1),
            cached=cached,
        )

    async def _ask_judge(
        self,
        benchmark: Benchmark,
        question: Question,
        turn: int,
        repeat: int,
        judge: str,
        messages: Messages,
        parse: JudgmentParser,
        fp: str,
    ) -> dict[str, Any]:
        judge_config, client = self._judges[judge]
        key = f"{benchmark.name}/{question.question_id}/{turn}/{repeat}/{judge}"
        problem = ""
        attempts = judge_config.parse_retries + 1
        for attempt in range(1, attempts + 1):
            try:
                result = await client.chat(messages, judge_sampling(judge_config), item_key=key)
            except RequestFailed as exc:
                raise StepFailed(self.mask.text(str(exc))) from None
            try:
                score, criteria = parse(result.answer)
            except RatingError as exc:
                problem = f"{exc}; judge said: {result.answer[-200:]!r}"
                continue
            return {
                **_record_key("judgment", benchmark, question, turn, repeat, judge, fp),
                "judge_model": judge_config.model,
                "score": score,
                "criteria": criteria,
                "judgment": result.answer,
                "reasoning": result.reasoning,
                "usage": result.usage.as_dict(),
                "latency_s": result.latency_s,
                "attempts": attempt,
            }
        raise StepFailed(self.mask.text(f"unparsable judgment after {attempts} attempts: {problem}"))


def _record_key(
    kind: str, benchmark: Benchmark, question: Question, turn: int, repeat: int, judge: str, fp: str
) -> dict[str, Any]:
    """What identifies a checkpoint record (the checkpoint's key, plus the category for scoring)."""
    return {
        "kind": kind,
        "benchmark": benchmark.name,
        "question_id": question.question_id,
        "category": question.category,
        "turn": turn,
        "repeat": repeat,
        "judge": judge,
        "fingerprint": fp,
    }


def _make_clients(
    config: EvalConfig, transport: httpx.AsyncBaseTransport | None
) -> tuple[ChatClient, dict[str, tuple[Judge, ChatClient]]]:
    def limiter(rate: Any) -> RateLimiter | None:
        return RateLimiter(rate.requests_per_second, rate.tokens_per_minute) if rate else None

    common = {
        "concurrency": config.spec.concurrency,
        "timeout_s": config.spec.timeout_seconds,
        "retries": config.spec.retries,
        "backoff_s": config.spec.backoff_seconds,
        "max_response_bytes": config.spec.max_response_bytes,
        "transport": transport,
    }
    assert config.endpoint is not None  # parse_config guarantees it
    model = ChatClient(
        config.endpoint,
        config.served_name,
        api_key=_api_key(config.model_key_env),
        rate_limiter=limiter(config.spec.rate_limit),
        max_tokens_param=config.spec.model.max_tokens_param,
        extra_body=config.spec.model.extra_body,
        **common,  # type: ignore[arg-type]
    )
    judges = {
        j.name: (
            j,
            ChatClient(
                j.endpoint,
                j.model,
                api_key=_api_key(config.judge_key_env(j)),
                rate_limiter=limiter(j.rate_limit or config.spec.rate_limit),
                max_tokens_param=j.max_tokens_param,
                extra_body=j.extra_body,
                **common,  # type: ignore[arg-type]
            ),
        )
        for j in config.spec.judges
    }
    return model, judges


async def _check_tracking_server(tracking_uri: str | None) -> None:
    """Raise EndpointUnreachable when an http(s) MLflow tracking server does not answer, so that a
    wrong URI fails before hours of requests instead of when the results are logged."""
    if not tracking_uri or urlparse(tracking_uri).scheme not in ("http", "https"):
        return  # file:, sqlite:, databricks ...: nothing to reach over HTTP
    url = tracking_uri.rstrip("/") + "/health"
    async with httpx.AsyncClient(timeout=_TRACKING_CHECK_TIMEOUT_S) as http:
        try:
            resp = await http.get(url)
        except httpx.HTTPError as exc:
            raise EndpointUnreachable(
                f"mlflow.trackingUri: {url}: {type(exc).__name__}: {exc or 'no answer'}"
            ) from None
    # Any other answer shows a server is there; a gateway error means the one behind it is down.
    if resp.status_code >= 500:
        raise EndpointUnreachable(f"mlflow.trackingUri: {url}: HTTP {resp.status_code}")


async def _preflight(
    config: EvalConfig, model: ChatClient, judges: dict[str, tuple[Judge, ChatClient]]
) -> None:
    """Fail before any evaluation request when an endpoint or the MLflow tracking server is down, or
    an endpoint does not serve the model."""
    targets: list[tuple[str, ChatClient]] = [("model.servedName", model)]
    targets += [(f"judges[{i}].model", client) for i, (_, client) in enumerate(judges.values())]
    answers, _ = await asyncio.gather(
        asyncio.gather(*(client.list_models() for _, client in targets)),
        _check_tracking_server(config.spec.mlflow.tracking_uri),
    )
    for (field_name, client), served in zip(targets, answers, strict=True):
        if served is not None and served and client.model not in served:
            raise ConfigError(
                f"{field_name}: {client.base_url} does not serve {client.model!r}; it serves {sorted(served)}"
            )


async def _flush_periodically(checkpoint: Checkpoint) -> None:
    while True:
        await asyncio.sleep(_REMOTE_FLUSH_S)
        await asyncio.to_thread(checkpoint.flush)


async def _run_benchmark(
    benchmark: Benchmark, engine: Engine, repeats: int, reporter: Reporter
) -> tuple[list[Item], float]:
    started = time.monotonic()
    reporter.benchmark_started(
        benchmark.name,
        benchmark.item_count(repeats, len(engine.judges)),
        engine.checkpointed_items(benchmark, repeats),
    )

    async def unit(question: Question, repeat: int) -> list[Item]:
        items = await benchmark.evaluate(question, repeat, engine)
        reporter.advance(benchmark.name, len(items), sum(i.error is not None for i in items))
        return items

    results = await asyncio.gather(*(unit(q, r) for r in range(repeats) for q in benchmark.questions))
    return [item for unit_items in results for item in unit_items], time.monotonic() - started


def _token_totals(generations: Sequence[dict[str, Any]], judgments: Sequence[dict[str, Any]]) -> TokenTotals:
    def total(records: Sequence[dict[str, Any]], key: str) -> int:
        return sum(int((r.get("usage") or {}).get(key, 0)) for r in records)

    return TokenTotals(
        prompt=total(generations, "prompt_tokens"),
        completion=total(generations, "completion_tokens"),
        reasoning=total(generations, "reasoning_tokens"),
        judge_prompt=total(judgments, "prompt_tokens"),
        judge_completion=total(judgments, "completion_tokens"),
    )


def build_benchmarks(config: EvalConfig) -> list[Benchmark]:
    check_config(config)
    registry = known_benchmarks()
    return [registry[b.name](b, config.spec.sampling) for b in config.spec.benchmarks]


async def run_evaluation(
    config: EvalConfig,
    *,
    output_dir: Path | None = None,
    resume: bool = True,
    reporter: Reporter | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> RunResult:
    """Run every benchmark `repeats` times and write results; see `ExitCode` for the outcomes.

    Raises ConfigError / DatasetError (bad settings or data, before any request) and
    EndpointUnreachable (an endpoint that does not answer at all).
    """
    mask = SecretMask.of_config(config)
    reporter = masked(reporter or JsonLinesReporter(), mask)
    started = time.monotonic()
    # The wall clock too, for the MLflow run's start: the monotonic clock has no epoch.
    started_at = time.time()
    out = Path(output_dir or config.engine.output_dir)
    out.mkdir(parents=True, exist_ok=True)

    benchmarks = build_benchmarks(config)
    with tempfile.TemporaryDirectory(prefix="shinsa-datasets-") as cache:
        for benchmark in benchmarks:
            benchmark.load(Path(cache))
            reporter.event(
                "dataset loaded",
                benchmark=benchmark.name,
                questions=len(benchmark.questions),
                digest=benchmark.dataset.digest if benchmark.dataset else None,
            )

    model, judges = _make_clients(config, transport)
    flusher: asyncio.Task[None] | None = None
    checkpoint: Checkpoint | None = None
    try:
        await _preflight(config, model, judges)
        checkpoint = Checkpoint.open(config.engine.checkpoint_uri or str(out / "checkpoint"), resume=resume)
        if len(checkpoint):
            reporter.event("checkpoint loaded", records=len(checkpoint), torn_lines=checkpoint.skipped_lines)
        if checkpoint.is_remote:
            flusher = asyncio.create_task(_flush_periodically(checkpoint))

        model_settings = {
            "model": config.served_name,
            "revision": config.spec.model.revision,
            "extra_body": config.spec.model.extra_body,
        }
        generation_fps = {
            b.name: fingerprint({**model_settings, **b.generation_settings()}) for b in benchmarks
        }
        judge_fps = {
            (b.name, j.name): fingerprint(
                {
                    "generation": generation_fps[b.name],
                    "judge": j.model,
                    "sampling": judge_sampling(j).model_dump(),
                    "extra_body": j.extra_body,
                    **b.judge_settings(),
                }
            )
            for b in benchmarks
            for j in config.spec.judges
        }
        engine = Engine(config, model, judges, checkpoint, generation_fps, judge_fps, mask)

        all_items: list[Item] = []
        bench_scores: dict[str, BenchmarkResult] = {}
        primary = config.spec.judges[0] if config.spec.judges else None
        for benchmark in benchmarks:
            items, wall = await _run_benchmark(benchmark, engine, config.spec.repeats, reporter)
            all_items.extend(items)
            summary = score_benchmark(
                benchmark,
                items,
                engine.judges,
                config.spec.repeats,
                judge_model=primary.model if primary else None,
                judge_prompts_digest=fingerprint(benchmark.judge_settings()),
                wall_time_s=wall,
            )
            bench_scores[benchmark.name] = summary
            reporter.benchmark_finished(
                benchmark.name,
                **json_safe(
                    {
                        "mean": summary.mean,
                        "std": summary.std,
                        "ci": [summary.ci_low, summary.ci_high],
                        "errors": summary.n_errors_all_judges,
                    }
                ),
            )
    finally:
        if flusher is not None:
            flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flusher
        if checkpoint is not None:
            checkpoint.close()
        await model.aclose()
        for _, client in judges.values():
            await client.aclose()

    errors = sum(i.error is not None for i in all_items)
    error_rate = errors / len(all_items) if all_items else 0.0
    incomplete = error_rate > config.spec.max_error_rate
    requests = {
        "model": model.stats.requests,
        **{f"judge/{n}": c.stats.requests for n, (_, c) in judges.items()},
    }
    results = RunResults(
        status=RunStatus.INCOMPLETE if incomplete else RunStatus.SUCCEEDED,
        model=ModelInfo(
            served_name=config.served_name,
            endpoint=config.endpoint,
            revision=config.spec.model.revision,
        ),
        judges=[JudgeInfo(name=j.name, model=j.model, endpoint=j.endpoint) for j in config.spec.judges],
        repeats=config.spec.repeats,
        items=len(all_items),
        errors=errors,
        error_rate=error_rate,
        max_error_rate=config.spec.max_error_rate,
        reused_from_checkpoint=engine.reused,
        requests=requests,
        tokens=_token_totals(engine.generations, engine.judgments),
        wall_time_s=time.monotonic() - started,
        started_at=started_at,
        benchmarks=bench_scores,
    )
    results = write_outputs(out, results, all_items, engine.generations, engine.judgments, config, reporter)
    tracking_uri = config.spec.mlflow.tracking_uri
    if tracking_uri:
        from shinsa.evaluation.mlflow_log import log_run

        run_id, experiment_id = await asyncio.to_thread(
            log_run, out, results, all_items, config, benchmarks, tracking_uri, reporter
        )
        results = results.model_copy(update={"mlflow_run_id": run_id, "mlflow_experiment_id": experiment_id})
        write_results(results, out)
        reporter.event("logged to MLflow", tracking_uri=tracking_uri, run_id=run_id)
    if config.engine.results_uri:
        keys = await asyncio.to_thread(publish_results, out, config.engine.results_uri)
        reporter.event("results uploaded", uri=config.engine.results_uri, files=len(keys))
    if incomplete:
        reporter.event(
            "run incomplete: error rate above maxErrorRate",
            error_rate=error_rate,
            limit=config.spec.max_error_rate,
        )
    return RunResult(
        exit_code=exit_code_of(results.status),
        results=results,
        items=all_items,
        generations=engine.generations,
        judgments=engine.judgments,
        output_dir=out,
    )


__all__ = ["EndpointUnreachable", "Engine", "RunResult", "fingerprint", "run_evaluation"]
