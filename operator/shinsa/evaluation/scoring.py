"""From scored items to the typed results of each benchmark (`results.BenchmarkResult`).

The headline score of a judged benchmark is the first judge's ("primary judge"): scores from
different judges are not on the same footing, and gates compare like with like. Every other judge
gets its own full summary, and each pair of judges a rank agreement over questions.

Pure: items in, results out. `summarize_benchmark` needs no Benchmark object, so results can be
rebuilt from an items.jsonl alone (`results_from_items`).
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from shinsa.evaluation import stats
from shinsa.evaluation.records import Item
from shinsa.evaluation.results import (
    CRITERION_PREFIX,
    HEADLINE,
    JUDGE_PREFIX,
    BenchmarkResult,
    DatasetInfo,
    JudgeAgreement,
    ModelInfo,
    QuestionTable,
    RunResults,
    RunStatus,
    ScoreSummary,
    question_table,
)

if TYPE_CHECKING:
    from shinsa.evaluation.benchmarks import Benchmark


def _summary(items: Sequence[Item], repeats: int, seed: int) -> ScoreSummary:
    summary = stats.summarize(
        [i.question_id for i in items],
        [i.repeat for i in items],
        [math.nan if i.score is None else i.score for i in items],
        seed=seed,
    )
    return ScoreSummary.of(
        summary,
        n_items=len(items),
        n_errors=sum(i.error is not None for i in items),
        per_repeat=_per_repeat(items, repeats),
    )


def _per_repeat(items: Sequence[Item], repeats: int) -> list[float | None]:
    out: list[float | None] = []
    for repeat in range(repeats):
        scored = [i.score for i in items if i.repeat == repeat and i.score is not None]
        out.append(float(np.mean(scored)) if scored else None)
    return out


def judge_agreement(items: Sequence[Item], judges: Sequence[str]) -> list[JudgeAgreement]:
    """Rank agreement between each pair of judges across questions (per-question mean scores)."""
    means: dict[str, dict[str, float]] = {}
    for judge in judges:
        per_question: dict[str, list[float]] = defaultdict(list)
        for item in items:
            if item.judge == judge and item.score is not None:
                per_question[item.question_id].append(item.score)
        means[judge] = {q: float(np.mean(v)) for q, v in per_question.items()}
    pairs = []
    for a, b in itertools.combinations(judges, 2):
        common = sorted(means[a].keys() & means[b].keys())
        x = [means[a][q] for q in common]
        y = [means[b][q] for q in common]
        pairs.append(
            JudgeAgreement(
                judges=(a, b),
                n_questions=len(common),
                kendall_tau=stats.kendall_tau(x, y),
                spearman=stats.spearman_rho(x, y),
                mean_difference=float(np.mean(np.subtract(x, y))) if common else math.nan,
            )
        )
    return pairs


def question_metrics(
    primary_items: Sequence[Item], other_judges: Mapping[str, Sequence[Item]], repeats: int
) -> dict[str, QuestionTable]:
    """Per-question tables of the headline score, every other judge's score, each criterion and each
    benchmark-specific per-item metric (`Item.metrics`)."""
    rows: dict[str, list[tuple[str, int, int, float | None]]] = defaultdict(list)
    for item in primary_items:
        key = (item.question_id, item.turn, item.repeat)
        rows[HEADLINE].append((*key, item.score))
        for name, value in item.criteria.items():
            rows[CRITERION_PREFIX + name].append((*key, value))
        for name, value in item.metrics.items():
            rows[name].append((*key, value))
    for judge, items in other_judges.items():
        rows[JUDGE_PREFIX + judge] = [(i.question_id, i.turn, i.repeat, i.score) for i in items]
    return {name: question_table(table_rows, repeats) for name, table_rows in sorted(rows.items())}


def summarize_benchmark(
    items: Sequence[Item],
    judges: Sequence[str],
    repeats: int,
    *,
    metrics: Callable[[Sequence[Item]], dict[str, float]] | None = None,
    dataset: DatasetInfo | None = None,
    judge_model: str | None = None,
    judge_prompts_digest: str | None = None,
    wall_time_s: float = 0.0,
    seed: int = 0,
) -> BenchmarkResult:
    """One benchmark's results from its items; `judges[0]` is the primary judge."""
    primary = judges[0]
    primary_items = [i for i in items if i.judge == primary]
    headline = _summary(primary_items, repeats, seed)

    def summary(group: list[Item]) -> ScoreSummary:
        # Groups are order-preserving subsets of primary_items, so one as long as primary_items is
        # primary_items (the only category, the only turn): its summary is the headline's, and a
        # bootstrap per copy would only repeat the same draws.
        return headline if len(group) == len(primary_items) else _summary(group, repeats, seed)

    by_category: dict[str, list[Item]] = defaultdict(list)
    by_turn: dict[int, list[Item]] = defaultdict(list)
    for item in primary_items:
        by_category[item.category].append(item)
        by_turn[item.turn].append(item)
    others = {j: [i for i in items if i.judge == j] for j in judges[1:]}
    errors_all = sum(i.error is not None for i in items)
    return BenchmarkResult(
        **headline.model_dump(),
        primary_judge=primary,
        judge_model=judge_model,
        judge_prompts_digest=judge_prompts_digest,
        n_errors_all_judges=errors_all,
        error_rate=errors_all / len(items) if items else 0.0,
        wall_time_s=wall_time_s,
        dataset=dataset,
        categories={c: summary(v) for c, v in sorted(by_category.items())},
        turns={str(t): summary(v) for t, v in sorted(by_turn.items())},
        judges={primary: headline} | {j: _summary(v, repeats, seed) for j, v in others.items()},
        judge_agreement=judge_agreement(items, judges) if len(judges) > 1 else [],
        metrics=metrics(primary_items) if metrics else {},
        question_categories={i.question_id: i.category for i in primary_items},
        question_metrics=question_metrics(primary_items, others, repeats),
    )


def score_benchmark(
    benchmark: Benchmark,
    items: Sequence[Item],
    judges: Sequence[str],
    repeats: int,
    *,
    judge_model: str | None = None,
    judge_prompts_digest: str | None = None,
    wall_time_s: float = 0.0,
) -> BenchmarkResult:
    """`summarize_benchmark` for a benchmark the engine ran: its per-item metrics are set on the
    primary judge's items first (so items.jsonl carries them), and its dataset is recorded."""
    judge_names = list(judges) if benchmark.needs_judge else [benchmark.rule_judge]
    for item in items:
        if item.judge == judge_names[0]:
            item.metrics = benchmark.item_metrics(item)
    dataset = benchmark.dataset
    return summarize_benchmark(
        items,
        judge_names,
        repeats,
        metrics=benchmark.metrics,
        dataset=DatasetInfo(uri=dataset.uri, digest=dataset.digest) if dataset else None,
        judge_model=judge_model if benchmark.needs_judge else None,
        judge_prompts_digest=judge_prompts_digest if benchmark.needs_judge else None,
        wall_time_s=wall_time_s,
    )


def results_from_items(rows: Iterable[Mapping[str, Any]], *, source: str = "items.jsonl") -> RunResults:
    """Results rebuilt from items.jsonl rows alone, for `shinsa gate` on a file without its scores.json.

    What items do not record stays unknown: the dataset digest, the judge's model and prompts (gates
    say they could not check comparability), and the primary judge, taken as the first judge that
    appears for each benchmark (the engine writes the primary judge's items first).
    """
    fields = set(Item.__dataclass_fields__)
    by_benchmark: dict[str, list[Item]] = defaultdict(list)
    for row in rows:
        by_benchmark[str(row["benchmark"])].append(Item(**{k: v for k, v in row.items() if k in fields}))
    all_items = [i for items in by_benchmark.values() for i in items]
    repeats = 1 + max((i.repeat for i in all_items), default=0)
    benchmarks = {
        name: summarize_benchmark(items, list(dict.fromkeys(i.judge for i in items)), repeats)
        for name, items in by_benchmark.items()
    }
    errors = sum(i.error is not None for i in all_items)
    return RunResults(
        status=RunStatus.SUCCEEDED,
        model=ModelInfo(served_name=source),
        repeats=repeats,
        items=len(all_items),
        errors=errors,
        error_rate=errors / len(all_items) if all_items else 0.0,
        max_error_rate=1.0,
        benchmarks=benchmarks,
    )


def json_safe(value: Any) -> Any:
    """NaN and infinities are not JSON: they become null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value
