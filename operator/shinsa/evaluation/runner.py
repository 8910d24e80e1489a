"""Running an evaluation: datasets -> generations -> judgments -> scores, resumable at any point."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib
import json
import os
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx

from shinsa.api.eval_run import Judge
from shinsa.evaluation.answers import LLM_JP_JUDGE, Answers, BenchmarkAnswers, check_answers, load_answers
from shinsa.evaluation.benchmarks import Benchmark, check_config, known_benchmarks
from shinsa.evaluation.benchmarks.base import JudgmentParser, Messages
from shinsa.evaluation.checkpoint import Checkpoint
from shinsa.evaluation.client import ChatClient, EndpointUnreachable, RequestFailed
from shinsa.evaluation.config import ConfigError, EvalConfig, Phase, Sampling, check_phase
from shinsa.evaluation.datasets import Question
from shinsa.evaluation.masking import SecretMask, masked
from shinsa.evaluation.outputs import publish_results, write_outputs
from shinsa.evaluation.profiles import effective_benchmark, judge_attempts, judge_request_sampling
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


def _judge_sampling(judge: Judge) -> dict[str, Any]:
    fields = {"temperature", "top_p", "max_tokens", "seed", "reasoning_effort"}
    return judge.model_dump(mode="json", include=fields)


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
        answers: Mapping[str, BenchmarkAnswers] | None = None,
    ) -> None:
        self.config = config
        # Pre-generated answers by benchmark: looked up instead of asking the model.
        self.answers = answers
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

    async def count_tokens(self, messages: Messages) -> int | None:
        if self.answers is not None:
            return None  # the model is not called when its answers are given
        try:
            counted = await self.model.tokenize(messages)
        except RequestFailed as exc:
            raise StepFailed(self.mask.text(str(exc))) from None
        return counted.count if counted is not None else None

    async def server_metrics(self) -> str | None:
        return None if self.answers is not None else await self.model.metrics_text()

    def checkpointed_items(self, benchmark: Benchmark, repeats: int) -> int:
        """Items of `benchmark` whose last step (the judgment, or the generation when nothing is
        judged) is already in the checkpoint under the current settings: what a resumed run reuses."""
        if benchmark.needs_judge and self.judges:
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
        if self.answers is not None:
            return self._pregenerated(benchmark, question, turn, repeat, fp)
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
                message = self.mask.text(str(exc))
                # In generations.jsonl, not the checkpoint: judging these answers later (--phase
                # judge) sees the failure, and a resumed run asks again.
                self.generations.append(
                    {
                        **_record_key("generation", benchmark, question, turn, repeat, "", fp),
                        "prompt": self.mask.text(messages[-1]["content"][:_PROMPT_EXCERPT_CHARS]),
                        "answer": None,
                        "error": message,
                    }
                )
                raise StepFailed(message) from None
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

    def _pregenerated(
        self, benchmark: Benchmark, question: Question, turn: int, repeat: int, fp: str
    ) -> Generation:
        """A pre-generated answer as a generation; StepFailed when its generation had failed."""
        assert self.answers is not None
        answers = self.answers[benchmark.name]
        qid = question.question_id
        answer = answers.get(qid, turn, repeat)
        if answer is None:
            # check_answers lets a turn after a failed one go unanswered; a policy that judges on
            # past a failed turn still has nothing to judge here.
            raise StepFailed(f"no answer in {answers.source} for question {qid} turn {turn} repeat {repeat}")
        source = answer.record
        record = {
            **_record_key("generation", benchmark, question, turn, repeat, "", fp),
            "prompt": (answer.prompt or question.turns[turn - 1])[:_PROMPT_EXCERPT_CHARS],
            "answer": answer.answer,
            "reasoning": answer.reasoning,
            "usage": dict(source.get("usage") or {}),
            "latency_s": source.get("latency_s"),
            "ttft_s": source.get("ttft_s"),
            "finish_reason": source.get("finish_reason"),
            "answers": answers.source,
        }
        if answer.answer is None:
            record["error"] = answer.error
        record = self.mask.value(record)
        self.generations.append(record)
        if answer.answer is None:
            raise StepFailed(self.mask.text(answer.error or "generation failed"))
        return Generation(
            answer=record["answer"],
            reasoning=record["reasoning"],
            usage=record["usage"],
            latency_s=float(record["latency_s"] or 0.0),
            ttft_s=record["ttft_s"],
            finish_reason=record["finish_reason"],
            cached=True,
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
        *,
        template: str | None = None,
        reference: bool = False,
    ) -> Judgment:
        fp = self.judge_fps[(benchmark.name, judge)]
        qid = question.question_id
        record = self.checkpoint.get("judgment", benchmark.name, qid, turn, repeat, judge, fp)
        cached = record is not None
        if record is None:
            record = await self._ask_judge(benchmark, question, turn, repeat, judge, messages, parse, fp)
            record = self.mask.value(
                {**record, "template": template, "reference": reference, "prompt": messages}
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
        judging = benchmark.config.judging
        key = f"{benchmark.name}/{question.question_id}/{turn}/{repeat}/{judge}"
        problem = ""
        replied = False
        attempts = judge_attempts(judge_config, judging)
        sampling = judge_request_sampling(judge_config, judging)
        for attempt in range(1, attempts + 1):
            try:
                result = await client.chat(messages, sampling, item_key=key)
            except RequestFailed as exc:
                refused = _refused(exc)
                if not refused:
                    raise StepFailed(self.mask.text(str(exc))) from None
                problem = str(exc)
                if judging.retry_refused and attempt < attempts:
                    continue
                if judging.api_error_score is None or replied:
                    # As llm-jp-judge: a judgment with a reply, even an unreadable one, is not an API
                    # error, so it is not scored as one.
                    if replied:
                        shown = f"no readable rating in {attempt} attempts, the last refused: {problem}"
                    else:
                        shown = problem if attempt == 1 else f"refused at all {attempt} attempts: {problem}"
                    raise StepFailed(self.mask.text(shown)) from None
                return {
                    **_record_key("judgment", benchmark, question, turn, repeat, judge, fp),
                    "judge_model": judge_config.model,
                    "score": judging.api_error_score,
                    "criteria": {},
                    "judgment": "",
                    "api_error": problem,
                    "usage": {},
                    "latency_s": 0.0,
                    "attempts": attempt,
                }
            replied = True
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


def _refused(exc: RequestFailed) -> bool:
    """Whether the judge's API refused the request (HTTP 400, as a content filter answers) rather than
    failing: what `judging.apiErrorScore` scores and `judging.retryRefused` asks again. llm-jp-judge
    catches exactly that (openai.BadRequestError); other answers end its run."""
    return exc.reason.startswith("HTTP 400")


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
    config: EvalConfig, model: ChatClient | None, judges: dict[str, tuple[Judge, ChatClient]]
) -> None:
    """Fail before any evaluation request when an endpoint or the MLflow tracking server is down, or
    an endpoint does not serve the model. `model` None, `judges` empty: the run does not call them."""
    targets: list[tuple[str, ChatClient]] = [("model.servedName", model)] if model is not None else []
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
    # Without its judges (--phase generate) a judged benchmark makes no items: progress is in turns.
    generating = benchmark.needs_judge and not engine.judges
    reporter.benchmark_started(
        benchmark.name,
        sum(len(q.turns) for q in benchmark.questions) * repeats
        if generating
        else benchmark.item_count(repeats, len(engine.judges)),
        engine.checkpointed_items(benchmark, repeats),
    )

    async def unit(question: Question, repeat: int) -> list[Item]:
        items = await benchmark.evaluate(question, repeat, engine)
        if generating:
            answered = sum(
                1
                for g in engine.generations
                if g["benchmark"] == benchmark.name
                and g["question_id"] == question.question_id
                and g["repeat"] == repeat
                and g.get("error") is None
            )
            reporter.advance(benchmark.name, len(question.turns), len(question.turns) - answered)
        else:
            reporter.advance(benchmark.name, len(items), sum(i.error is not None for i in items))
        return items

    async with benchmark.session(engine, repeats):
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


def _reference_source(benchmark: Benchmark) -> str | None:
    """Where a benchmark's reference answers came from, for the log: the file, or the question file."""
    dataset = benchmark.dataset
    if dataset is not None and dataset.reference_file is not None:
        return str(dataset.reference_file)
    if any(q.references for q in benchmark.questions):
        return "the question file"
    return None


def _rope_label(config: EvalConfig) -> str | None:
    rope = config.spec.model.rope_scaling
    if rope is None:
        return None
    native = rope.original_max_position_embeddings
    return f"{rope.type} x{rope.factor:g}" + (f" of {native}" if native else "")


def build_benchmarks(config: EvalConfig) -> list[Benchmark]:
    check_config(config)
    registry = known_benchmarks()
    # The profile's defaults are resolved once here: benchmarks only see their effective spec.
    benchmarks = [
        registry[b.name](effective_benchmark(config.spec, b), config.spec.sampling)
        for b in config.spec.benchmarks
    ]
    for benchmark in benchmarks:
        benchmark.target = config.spec.model
    return benchmarks


def _answer_sets(
    answers: Answers, benchmarks: Sequence[Benchmark], repeats: int
) -> tuple[dict[str, BenchmarkAnswers], list[str]]:
    """Each benchmark's pre-generated answers, checked against its questions, and the warnings."""
    sets: dict[str, BenchmarkAnswers] = {}
    warnings: list[str] = []
    for benchmark in benchmarks:
        sets[benchmark.name] = answers.of(benchmark.name)
        found = check_answers(
            sets[benchmark.name],
            benchmark.questions,
            repeats,
            compare_prompts=answers.layout == LLM_JP_JUDGE,
        )
        warnings.extend(f"{benchmark.name}: {w}" for w in found)
    return sets, warnings


def _generated_turns(
    benchmark: Benchmark, generations: Sequence[dict[str, Any]], repeats: int
) -> tuple[int, int]:
    """(turns to generate, turns without an answer) of a benchmark whose answers were not judged."""
    wanted = sum(len(q.turns) for q in benchmark.questions) * repeats
    answered = sum(1 for g in generations if g["benchmark"] == benchmark.name and g.get("error") is None)
    return wanted, wanted - answered


def _prewarm_plotting() -> None:
    """Import matplotlib in the background while the requests run.

    Its import is the largest part of the work left after the last judgment (about as long as all
    the statistics and files), and the request phase leaves the CPU idle, waiting on the servers.
    The results wait for it only if the run is shorter than the import."""

    def load() -> None:
        with contextlib.suppress(Exception):  # outputs reports a missing matplotlib
            importlib.import_module("shinsa.evaluation.plots")

    threading.Thread(target=load, name="shinsa-prewarm-plots", daemon=True).start()


async def run_evaluation(
    config: EvalConfig,
    *,
    phase: Phase = Phase.ALL,
    output_dir: Path | None = None,
    resume: bool = True,
    reporter: Reporter | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> RunResult:
    """Run every benchmark `repeats` times and write results; see `ExitCode` for the outcomes.

    `phase` generate asks only the model (status Generated); judge and all with `spec.answers` judge
    those answers and never call the model.
    Raises ConfigError / DatasetError (bad settings or data, answers that do not match the
    questions, before any request) and EndpointUnreachable (an endpoint that does not answer at all).
    """
    check_phase(config.spec, phase)
    _prewarm_plotting()
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
                references=_reference_source(benchmark),
            )
        answers = load_answers(config.spec.answers, Path(cache)) if config.spec.answers else None
    run_warnings = [f"{b.name}: {w}" for b in benchmarks for w in b.warnings]
    for benchmark in benchmarks:
        for warning in benchmark.warnings:
            reporter.event("dataset warning", level="warning", benchmark=benchmark.name, warning=warning)
    answer_sets: dict[str, BenchmarkAnswers] | None = None
    if answers is not None:
        answer_sets, answer_warnings = _answer_sets(answers, benchmarks, config.spec.repeats)
        run_warnings += answer_warnings
        reporter.event(
            "answers loaded",
            uri=answers.uri,
            layout=answers.layout,
            model=answers.model,
            files={name: a.source for name, a in answer_sets.items()},
        )
        for warning in answer_warnings:
            reporter.event("answers warning", level="warning", warning=warning)

    model, judges = _make_clients(config, transport)
    flusher: asyncio.Task[None] | None = None
    checkpoint: Checkpoint | None = None
    # Generating needs no judge; judging given answers needs no model.
    run_judges = judges if phase is not Phase.GENERATE else {}
    try:
        await _preflight(config, model if answer_sets is None else None, run_judges)
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
            b.name: fingerprint(
                {
                    **model_settings,
                    **b.generation_settings(),
                    # Judgments of other answers are never reused for these.
                    **({"answers": answer_sets[b.name].digest} if answer_sets else {}),
                }
            )
            for b in benchmarks
        }
        judge_fps = {
            (b.name, j.name): fingerprint(
                {
                    "generation": generation_fps[b.name],
                    "judge": j.model,
                    "sampling": judge_request_sampling(j, b.config.judging).model_dump(),
                    "extra_body": j.extra_body,
                    **b.judge_settings(),
                }
            )
            for b in benchmarks
            for j in config.spec.judges
        }
        engine = Engine(
            config, model, run_judges, checkpoint, generation_fps, judge_fps, mask, answers=answer_sets
        )

        all_items: list[Item] = []
        bench_scores: dict[str, BenchmarkResult] = {}
        primary = config.spec.judges[0] if config.spec.judges else None
        unjudged = (0, 0)
        for benchmark in benchmarks:
            known = len(benchmark.warnings)
            items, wall = await _run_benchmark(benchmark, engine, config.spec.repeats, reporter)
            all_items.extend(items)
            # What a benchmark noticed while running (long-context: no /tokenize, no KV metrics).
            for warning in benchmark.warnings[known:]:
                run_warnings.append(f"{benchmark.name}: {warning}")
                reporter.event(
                    "benchmark warning", level="warning", benchmark=benchmark.name, warning=warning
                )
            if phase is Phase.GENERATE and benchmark.needs_judge:
                wanted, failed = _generated_turns(benchmark, engine.generations, config.spec.repeats)
                unjudged = (unjudged[0] + wanted, unjudged[1] + failed)
                reporter.benchmark_finished(benchmark.name, generated=wanted - failed, errors=failed)
                continue
            summary = score_benchmark(
                benchmark,
                items,
                engine.judges,
                config.spec.repeats,
                judge_model=primary.model if primary else None,
                judge_prompts_digest=fingerprint(benchmark.judge_settings()),
                wall_time_s=wall,
            )
            if answer_sets is None:
                # What `shinsa eval compare` checks models were asked alike by; given answers were
                # generated under settings this spec does not know.
                digest = fingerprint(benchmark.generation_settings())
                summary = summary.model_copy(update={"generation_digest": digest})
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

    # Generated-only turns count as items: what the error rate of a generate phase is over.
    n_items = len(all_items) + unjudged[0]
    errors = sum(i.error is not None for i in all_items) + unjudged[1]
    error_rate = errors / n_items if n_items else 0.0
    incomplete = error_rate > config.spec.max_error_rate
    requests = {
        "model": model.stats.requests,
        **{f"judge/{n}": c.stats.requests for n, (_, c) in judges.items()},
    }
    if incomplete:
        status = RunStatus.INCOMPLETE
    else:
        status = RunStatus.GENERATED if phase is Phase.GENERATE else RunStatus.SUCCEEDED
    results = RunResults(
        status=status,
        model=ModelInfo(
            served_name=config.served_name,
            endpoint=config.endpoint if answers is None else None,
            revision=config.spec.model.revision,
            answers=answers.uri if answers else None,
            answers_model=answers.model if answers else None,
            rope_scaling=_rope_label(config),
        ),
        judges=[
            JudgeInfo(name=j.name, model=j.model, endpoint=j.endpoint, sampling=_judge_sampling(j))
            for j in config.spec.judges
        ]
        if phase is not Phase.GENERATE
        else [],
        repeats=config.spec.repeats,
        items=n_items,
        errors=errors,
        error_rate=error_rate,
        max_error_rate=config.spec.max_error_rate,
        reused_from_checkpoint=engine.reused,
        requests=requests,
        tokens=_token_totals(engine.generations, engine.judgments),
        wall_time_s=time.monotonic() - started,
        started_at=started_at,
        benchmarks=bench_scores,
        warnings=run_warnings,
    )
    results = write_outputs(out, results, all_items, engine.generations, engine.judgments, config, reporter)
    tracking_uri = config.spec.mlflow.tracking_uri
    if tracking_uri and phase is Phase.GENERATE:
        # An MLflow evaluation run is its scores; the judge phase logs the run.
        reporter.event("not logged to MLflow: --phase generate scores nothing", tracking_uri=tracking_uri)
    elif tracking_uri:
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
