"""One function per rule type: a rule and the runs' results in, a `RuleResult` out."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from shinsa.api import GateVerdict
from shinsa.api.gates import GatePolicy, GateRule, GateRuleType
from shinsa.evaluation.results import BenchmarkResult, RunResults, RunStatus
from shinsa.evaluation.stats import ClusterMean, cluster_mean_interval
from shinsa.gates.outcome import RuleResult
from shinsa.gates.pairing import item_clusters, pair_tables

VIOLATION_RATE = "violation_rate"
_LISTED = 8


@dataclass(frozen=True)
class Context:
    """What every rule is judged on."""

    policy: GatePolicy
    candidate: RunResults
    baseline: RunResults | None
    draws: int
    seed: int


def _f(value: float) -> str:
    return f"{value:.3f}"


def _pct(value: float) -> str:
    return f"{value:.1%}"


def _names(names: list[str]) -> str:
    if not names:
        return "none"
    shown = ", ".join(names[:_LISTED])
    return shown + (f" and {len(names) - _LISTED} more" if len(names) > _LISTED else "")


def _result(
    rule: GateRule, index: int, verdict: GateVerdict, explanation: str, **numbers: object
) -> RuleResult:
    rate_rule = rule.type in (GateRuleType.MAX_ERROR_RATE, GateRuleType.MAX_VIOLATION_RATE)
    return RuleResult.model_validate(
        {
            "rule": index,
            "type": rule.type,
            "benchmark": rule.benchmark,
            "metric": None if rate_rule else rule.metric_name,
            "verdict": verdict,
            "explanation": explanation,
            **{k: v for k, v in numbers.items() if not (isinstance(v, float) and not math.isfinite(v))},
        }
    )


def _benchmark(run: RunResults, name: str | None, side: str) -> tuple[BenchmarkResult | None, str]:
    if name is not None and name in run.benchmarks:
        return run.benchmarks[name], ""
    return None, f"the {side} has no results for benchmark {name} (it has: {_names(sorted(run.benchmarks))})"


def _unusable(run: RunResults) -> bool:
    """Results whose scores gates must not weigh: too many errors, or nothing judged."""
    return run.status in (RunStatus.INCOMPLETE, RunStatus.GENERATED)


def _incomplete(run: RunResults, side: str) -> str:
    if run.status is RunStatus.GENERATED:
        return f"the {side} run only generated answers (--phase generate): nothing was judged"
    return (
        f"the {side} run is Incomplete (error rate {_pct(run.error_rate)} above its maxErrorRate "
        f"{_pct(run.max_error_rate)}): its scores are not evidence either way"
    )


def _spread(interval: ClusterMean) -> dict[str, object]:
    return {"ci_low": interval.ci_low, "ci_high": interval.ci_high, "n_questions": interval.n_clusters}


def _missing_metric(bench: BenchmarkResult, benchmark: str | None, metric: str, side: str) -> str:
    names = sorted(set(bench.metric_names()) | set(bench.metrics))
    return f"the {side}'s {benchmark} results have no metric {metric} (they have: {_names(names)})"


def comparability(candidate: BenchmarkResult, baseline: BenchmarkResult) -> tuple[list[str], str | None]:
    """What differs between two runs of a benchmark that makes their scores incomparable, and a note
    when that could not be checked because a side does not record its provenance (items.jsonl)."""
    unknown = [side for side, b in (("candidate", candidate), ("baseline", baseline)) if b.dataset is None]
    if unknown:
        sides = " and ".join(unknown)
        return [], f"dataset and judge could not be checked: the {sides} results do not record them"
    assert candidate.dataset is not None and baseline.dataset is not None
    pairs = (
        ("dataset digest", candidate.dataset.digest, baseline.dataset.digest),
        ("judge model", candidate.judge_model, baseline.judge_model),
        ("judge prompts digest", candidate.judge_prompts_digest, baseline.judge_prompts_digest),
    )
    return [f"{label} {a or 'none'} vs {b or 'none'}" for label, a, b in pairs if a != b], None


def minimum(rule: GateRule, index: int, ctx: Context) -> RuleResult:
    assert rule.threshold is not None
    bench, why = _benchmark(ctx.candidate, rule.benchmark, "candidate")
    if bench is None:
        return _result(rule, index, GateVerdict.INCONCLUSIVE, why, bound=rule.threshold)
    metric = rule.metric_name
    table = bench.table(metric)
    numbers: dict[str, object] = {"bound": rule.threshold}
    if table is not None:
        clusters = item_clusters(table)
        if clusters.n_questions == 0:
            why = f"nothing was scored for {metric} of {rule.benchmark}"
            return _result(rule, index, GateVerdict.INCONCLUSIVE, why, **numbers)
        interval = cluster_mean_interval(
            clusters.sums,
            clusters.counts,
            draws=ctx.draws,
            confidence=ctx.policy.confidence,
            seed=ctx.seed,
        )
        observed = interval.mean
        numbers |= _spread(interval)
        over = f" over {interval.n_clusters} questions"
    elif metric in bench.metrics and math.isfinite(bench.metrics[metric]):
        observed, over = bench.metrics[metric], ""
    else:
        why = _missing_metric(bench, rule.benchmark, metric, "candidate")
        return _result(rule, index, GateVerdict.INCONCLUSIVE, why, **numbers)
    numbers["observed"] = observed
    if observed >= rule.threshold:
        why = f"mean {metric} {_f(observed)} >= threshold {_f(rule.threshold)}{over}"
        return _result(rule, index, GateVerdict.PASSED, why, **numbers)
    why = f"mean {metric} {_f(observed)} < threshold {_f(rule.threshold)}{over}"
    return _result(rule, index, GateVerdict.FAILED, why, **numbers)


def _bound_of(rule: GateRule) -> float:
    if rule.type is GateRuleType.NON_INFERIORITY:
        assert rule.margin is not None
        return -rule.margin
    return 0.0


def _comparative_verdict(rule: GateRule, low: float, high: float) -> tuple[GateVerdict, str]:
    interval = f"[{_f(low)}, {_f(high)}]"
    if rule.type is GateRuleType.NON_INFERIORITY:
        bound = _f(_bound_of(rule))
        if low >= _bound_of(rule):
            return GateVerdict.PASSED, f"interval {interval} lies at or above -margin {bound}"
        if high < _bound_of(rule):
            return GateVerdict.FAILED, f"interval {interval} lies below -margin {bound}"
        return GateVerdict.INCONCLUSIVE, f"interval {interval} straddles -margin {bound}"
    if low > 0:
        return GateVerdict.PASSED, f"interval {interval} lies above 0"
    if high <= 0:
        return GateVerdict.FAILED, f"interval {interval} lies at or below 0"
    return GateVerdict.INCONCLUSIVE, f"interval {interval} includes 0"


def comparative(rule: GateRule, index: int, ctx: Context) -> RuleResult:
    """nonInferiority and superiority: a paired, question-clustered bootstrap of candidate - baseline."""
    bound = _bound_of(rule)

    def inconclusive(why: str, **numbers: object) -> RuleResult:
        return _result(rule, index, GateVerdict.INCONCLUSIVE, why, bound=bound, **numbers)

    if ctx.baseline is None:
        return inconclusive("no baseline results were given to compare with")
    if _unusable(ctx.baseline):
        return inconclusive(_incomplete(ctx.baseline, "baseline"))
    cand, why = _benchmark(ctx.candidate, rule.benchmark, "candidate")
    if cand is None:
        return inconclusive(why)
    base, why = _benchmark(ctx.baseline, rule.benchmark, "baseline")
    if base is None:
        return inconclusive(why)
    differences, unchecked = comparability(cand, base)
    if differences:
        return inconclusive(f"{rule.benchmark} is not comparable: " + "; ".join(differences))
    metric = rule.metric_name
    cand_table, base_table = cand.table(metric), base.table(metric)
    if cand_table is None:
        return inconclusive(_missing_metric(cand, rule.benchmark, metric, "candidate"))
    if base_table is None:
        return inconclusive(_missing_metric(base, rule.benchmark, metric, "baseline"))

    paired = pair_tables(cand_table, base_table)
    n = paired.differences.n_questions
    if n == 0:
        return inconclusive(f"no question of {rule.benchmark} has {metric} scored by both runs", n_pairs=0)
    interval = cluster_mean_interval(
        paired.differences.sums,
        paired.differences.counts,
        draws=ctx.draws,
        confidence=ctx.policy.confidence,
        seed=ctx.seed,
    )
    numbers: dict[str, object] = {
        "bound": bound,
        "observed": interval.mean,
        "ci_low": interval.ci_low,
        "ci_high": interval.ci_high,
        "n_pairs": n,
        "n_questions": item_clusters(cand_table).n_questions,
        "candidate_mean": paired.candidate.mean,
        "baseline_mean": paired.baseline.mean,
    }
    head = f"candidate - baseline {metric} {_f(interval.mean)}"
    note = f"; {unchecked}" if unchecked else ""
    if n < ctx.policy.min_pairs:
        why = f"{head}, but only {n} paired questions, fewer than minPairs {ctx.policy.min_pairs}{note}"
        return _result(rule, index, GateVerdict.INCONCLUSIVE, why, **numbers)
    verdict, reason = _comparative_verdict(rule, interval.ci_low, interval.ci_high)
    why = f"{head}, {ctx.policy.confidence * 100:g}% {reason} over {n} paired questions{note}"
    return _result(rule, index, verdict, why, **numbers)


def max_error_rate(rule: GateRule, index: int, ctx: Context) -> RuleResult:
    assert rule.limit is not None
    if rule.benchmark is None:
        rate, scope = ctx.candidate.error_rate, "the run's"
    else:
        bench, why = _benchmark(ctx.candidate, rule.benchmark, "candidate")
        if bench is None:
            return _result(rule, index, GateVerdict.INCONCLUSIVE, why, bound=rule.limit)
        rate, scope = bench.error_rate, f"{rule.benchmark}'s"
    numbers = {"observed": rate, "bound": rule.limit}
    if rate <= rule.limit:
        why = f"{scope} error rate {_pct(rate)} <= limit {_pct(rule.limit)}"
        return _result(rule, index, GateVerdict.PASSED, why, **numbers)
    why = (
        f"{scope} error rate {_pct(rate)} > limit {_pct(rule.limit)}: "
        "too many failed requests for the scores to be evidence either way"
    )
    return _result(rule, index, GateVerdict.INCONCLUSIVE, why, **numbers)


def max_violation_rate(rule: GateRule, index: int, ctx: Context) -> RuleResult:
    assert rule.limit is not None
    bench, why = _benchmark(ctx.candidate, rule.benchmark, "candidate")
    if bench is None:
        return _result(rule, index, GateVerdict.INCONCLUSIVE, why, bound=rule.limit)
    numbers: dict[str, object] = {"bound": rule.limit}
    table = bench.table(VIOLATION_RATE)
    clusters = item_clusters(table) if table is not None else None
    if clusters is not None and clusters.n_questions:
        interval = cluster_mean_interval(
            clusters.sums, clusters.counts, draws=ctx.draws, confidence=ctx.policy.confidence, seed=ctx.seed
        )
        numbers |= _spread(interval)
    rate = bench.metrics.get(VIOLATION_RATE, clusters.mean if clusters is not None else math.nan)
    if not math.isfinite(rate):
        why = _missing_metric(bench, rule.benchmark, VIOLATION_RATE, "candidate")
        return _result(rule, index, GateVerdict.INCONCLUSIVE, why, **numbers)
    numbers["observed"] = rate
    if rate <= rule.limit:
        why = f"violation rate {_pct(rate)} <= limit {_pct(rule.limit)}"
        return _result(rule, index, GateVerdict.PASSED, why, **numbers)
    why = f"violation rate {_pct(rate)} > limit {_pct(rule.limit)}"
    return _result(rule, index, GateVerdict.FAILED, why, **numbers)


CHECKS: dict[GateRuleType, Callable[[GateRule, int, Context], RuleResult]] = {
    GateRuleType.MINIMUM: minimum,
    GateRuleType.NON_INFERIORITY: comparative,
    GateRuleType.SUPERIORITY: comparative,
    GateRuleType.MAX_ERROR_RATE: max_error_rate,
    GateRuleType.MAX_VIOLATION_RATE: max_violation_rate,
}


def check(rule: GateRule, index: int, ctx: Context) -> RuleResult:
    if _unusable(ctx.candidate):
        return _result(rule, index, GateVerdict.INCONCLUSIVE, _incomplete(ctx.candidate, "candidate"))
    return CHECKS[rule.type](rule, index, ctx)
