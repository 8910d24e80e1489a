"""Profiles: whose defaults fill what an EvalRun spec leaves unset.

`shinsa` is the engine's own behaviour. `llm-jp-judge` is llm-jp-judge v2.0.0's (commit 4392b3b),
as its `config/benchmark/generate.yaml`, `config/benchmark/evaluate.yaml`, `config/client/openai.yaml`,
`client/remote.py` and `evaluator/*.py` set it: generation and judge sampling per benchmark,
reading the first regex match without a range check, 4 judge attempts in which refusals count,
safety's `api_error_score: 1`, and failed answers judged as the `None` it formats into its prompts.
A profile never sets prompt text: llm-jp-judge's system prompts and judge prompts are its own, and
come from the user's files and spec (`systemPrompt`, `prompts.system`, `promptFile`).

A rubric benchmark may stand for several llm-jp-judge benchmarks (culture_ja, safety_borderline_ja,
safety_boundary_ja, whose sampling and api_error_score differ), so the profile sets only their
common reading rules there; their sampling and `apiErrorScore` are the spec's to give.

Pure: specs in, specs out; the spec itself is never changed. An explicit field always wins.
"""

from __future__ import annotations

from collections.abc import Mapping

from shinsa.api.eval_run import (
    BenchmarkName,
    BenchmarkSpec,
    EvalProfile,
    EvalRunSpec,
    Judge,
    JudgingPolicy,
    Sampling,
)

LLM_JP_JUDGE_VERSION = "v2.0.0 (4392b3b)"
"""The llm-jp-judge release whose defaults the `llm-jp-judge` profile reproduces."""

_MT_BENCH = (BenchmarkName.MT_BENCH, BenchmarkName.MT_BENCH_JA)

# Shinsa's judging, for what neither the spec nor a profile sets (attempts: the judge's parseRetries).
SHINSA_JUDGING = JudgingPolicy(
    ratings="agree", range_check=True, retry_refused=False, failed_generation="error", formatting="shinsa"
)

# llm-jp-judge generate.yaml: mt_bench_{en,ja} sample at 0.7 with per-category temperatures and 1024
# tokens; quality_ja and safety_ja at 1.0, top_p 0.95, seed 1234, 1024 tokens.
_LJJ_MT_GENERATION = Sampling(temperature=0.7, max_tokens=1024)
_LJJ_MT_CATEGORY_TEMPERATURES: Mapping[str, float] = {
    "writing": 0.7,
    "roleplay": 0.7,
    "extraction": 0.0,
    "math": 0.0,
    "coding": 0.0,
    "reasoning": 0.0,
    "stem": 0.1,
    "humanities": 0.1,
}
_LJJ_SAMPLED = Sampling(temperature=1.0, top_p=0.95, seed=1234, max_tokens=1024)
_LJJ_GENERATION: Mapping[str, Sampling] = {
    BenchmarkName.MT_BENCH: _LJJ_MT_GENERATION,
    BenchmarkName.MT_BENCH_JA: _LJJ_MT_GENERATION,
    BenchmarkName.LLM_JP_INSTRUCTIONS: _LJJ_SAMPLED,
    BenchmarkName.ANSWER_CAREFULLY: _LJJ_SAMPLED,
}

# llm-jp-judge evaluate.yaml (judge sampling) and client max_retries 3 (4 attempts, refusals included).
_LJJ_JUDGING = JudgingPolicy(
    ratings="first",
    range_check=False,
    attempts=4,
    retry_refused=True,
    failed_generation="empty",
    formatting="python",
)
_LJJ_JUDGE_SAMPLING: Mapping[str, Sampling] = {
    BenchmarkName.MT_BENCH: Sampling(temperature=0.0, max_tokens=2048),
    BenchmarkName.MT_BENCH_JA: Sampling(temperature=0.0, max_tokens=2048),
    BenchmarkName.LLM_JP_INSTRUCTIONS: _LJJ_SAMPLED,
    BenchmarkName.ANSWER_CAREFULLY: _LJJ_SAMPLED,
}
_LJJ_API_ERROR_SCORE: Mapping[str, float] = {BenchmarkName.ANSWER_CAREFULLY: 1.0}


def _fill(explicit: Sampling | None, default: Sampling | None) -> Sampling | None:
    """`default` with the fields `explicit` sets replaced; None when neither sets anything."""
    if default is None:
        return explicit
    return default.merged(explicit)


def _unset_by(sampling: Sampling, *levels: Sampling) -> Sampling:
    """The fields of `sampling` that none of `levels` (explicit settings) sets."""
    taken = {k for level in levels for k in level.model_dump(exclude_none=True)}
    return Sampling(**{k: v for k, v in sampling.model_dump(exclude_none=True).items() if k not in taken})


def _judging(profile: EvalProfile, bench: BenchmarkSpec) -> JudgingPolicy:
    explicit = bench.judging.model_dump(exclude_none=True)
    if profile is EvalProfile.LLM_JP_JUDGE:
        base = _LJJ_JUDGING.model_copy(
            update={
                "sampling": _LJJ_JUDGE_SAMPLING.get(bench.name),
                "api_error_score": _LJJ_API_ERROR_SCORE.get(bench.name),
            }
        )
        own_templates = bench.prompt_file is not None or (
            bench.name == BenchmarkName.RUBRIC and bench.prompts.single is not None
        )
        if not own_templates:
            # Python's list rendering is what llm-jp-judge's own templates are written for; Shinsa's
            # templates expect strings.
            base = base.model_copy(update={"formatting": "shinsa"})
    else:
        base = SHINSA_JUDGING
    sampling = _fill(bench.judging.sampling, base.sampling)
    return base.model_copy(update={**{k: getattr(bench.judging, k) for k in explicit}, "sampling": sampling})


def effective_benchmark(spec: EvalRunSpec, bench: BenchmarkSpec) -> BenchmarkSpec:
    """`bench` as the engine runs it under `spec.profile`: its generation sampling, category
    sampling and judging filled with the profile's defaults where neither it nor the run sets them.

    Every `judging` field but `attempts` (the judge's `parseRetries` decides when unset),
    `apiErrorScore` and `sampling` is set on the result.
    """
    update: dict[str, object] = {"judging": _judging(spec.profile, bench)}
    if spec.profile is EvalProfile.LLM_JP_JUDGE and bench.name in _LJJ_GENERATION:
        defaults = _unset_by(_LJJ_GENERATION[bench.name], spec.sampling, bench.sampling)
        update["sampling"] = defaults.merged(bench.sampling)
        # llm-jp-judge's category temperatures override its benchmark temperature; a temperature the
        # user set for the run or the benchmark is explicit and is not overridden by them.
        if (
            bench.name in _MT_BENCH
            and spec.sampling.temperature is None
            and bench.sampling.temperature is None
        ):
            categories = {c: Sampling(temperature=t) for c, t in _LJJ_MT_CATEGORY_TEMPERATURES.items()}
            update["category_sampling"] = {
                c: categories.get(c, Sampling()).merged(bench.category_sampling.get(c))
                for c in sorted(categories.keys() | bench.category_sampling.keys())
            }
    return bench.model_copy(update=update)


def judge_request_sampling(judge: Judge, judging: JudgingPolicy) -> Sampling:
    """What is sent with a judge request of a benchmark: the judge's own settings, with the ones the
    benchmark's (effective) `judging.sampling` sets replaced."""
    own = Sampling(
        temperature=judge.temperature,
        top_p=judge.top_p,
        max_tokens=judge.max_tokens,
        seed=judge.seed,
        reasoning_effort=judge.reasoning_effort,
    )
    return own.merged(judging.sampling)


def judge_attempts(judge: Judge, judging: JudgingPolicy) -> int:
    """Judge requests per judgment in all: `judging.attempts`, else the judge's parseRetries + 1."""
    return judging.attempts if judging.attempts is not None else judge.parse_retries + 1


__all__ = [
    "LLM_JP_JUDGE_VERSION",
    "SHINSA_JUDGING",
    "effective_benchmark",
    "judge_attempts",
    "judge_request_sampling",
]
