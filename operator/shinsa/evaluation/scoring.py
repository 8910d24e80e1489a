"""From scored items to the numbers a run reports (the body of scores.json).

The headline score of a judged benchmark is the first judge's ("primary judge"): scores from
different judges are not on the same footing, and gates compare like with like. Every other judge
gets its own full summary, and each pair of judges a rank agreement over questions.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from shinsa.evaluation import stats
from shinsa.evaluation.benchmarks import Benchmark
from shinsa.evaluation.records import Item


def _summary_dict(items: Sequence[Item], repeats: int, seed: int) -> dict[str, Any]:
    summary = stats.summarize(
        [i.question_id for i in items],
        [i.repeat for i in items],
        [math.nan if i.score is None else i.score for i in items],
        seed=seed,
    )
    return {
        "mean": summary.mean,
        "std": summary.std,
        "ci_low": summary.ci_low,
        "ci_high": summary.ci_high,
        "n_questions": summary.n_questions,
        "n_items": len(items),
        "n_scored": summary.n_items,
        "n_errors": sum(i.error is not None for i in items),
        # Indexed by repeat number; None for a repeat in which nothing was scored.
        "per_repeat": _per_repeat(items, repeats),
    }


def _per_repeat(items: Sequence[Item], repeats: int) -> list[float | None]:
    out: list[float | None] = []
    for repeat in range(repeats):
        scored = [i.score for i in items if i.repeat == repeat and i.score is not None]
        out.append(float(np.mean(scored)) if scored else None)
    return out


def question_table(items: Sequence[Item], repeats: int) -> dict[str, list[float | None]]:
    """Per question, its mean score in each repeat (over turns); None where nothing was scored."""
    cells: dict[str, list[list[float]]] = defaultdict(lambda: [[] for _ in range(repeats)])
    for item in items:
        row = cells[item.question_id]
        if item.score is not None and item.repeat < repeats:
            row[item.repeat].append(item.score)
    return {
        qid: [float(np.mean(cell)) if cell else None for cell in row] for qid, row in sorted(cells.items())
    }


def judge_agreement(items: Sequence[Item], judges: Sequence[str]) -> list[dict[str, Any]]:
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
            {
                "judges": [a, b],
                "n_questions": len(common),
                "kendall_tau": stats.kendall_tau(x, y),
                "spearman": stats.spearman_rho(x, y),
                "mean_difference": float(np.mean(np.subtract(x, y))) if common else math.nan,
            }
        )
    return pairs


def benchmark_scores(
    benchmark: Benchmark, items: Sequence[Item], judges: Sequence[str], repeats: int, seed: int = 0
) -> dict[str, Any]:
    judge_names = list(judges) if benchmark.needs_judge else [benchmark.rule_judge]
    primary = judge_names[0]
    primary_items = [i for i in items if i.judge == primary]
    headline = _summary_dict(primary_items, repeats, seed)

    def summary(group: list[Item]) -> dict[str, Any]:
        # Groups are order-preserving subsets of primary_items, so one as long as primary_items is
        # primary_items (the only category, the only turn, the primary judge): its summary is the
        # headline's, and a bootstrap per copy would only repeat the same draws.
        if len(group) == len(primary_items):
            return copy.deepcopy(headline)
        return _summary_dict(group, repeats, seed)

    result = copy.deepcopy(headline)
    result["n_errors_all_judges"] = sum(i.error is not None for i in items)
    result["error_rate"] = (result["n_errors_all_judges"] / len(items)) if items else 0.0
    result["primary_judge"] = primary

    by_category: dict[str, list[Item]] = defaultdict(list)
    by_turn: dict[int, list[Item]] = defaultdict(list)
    for item in primary_items:
        by_category[item.category].append(item)
        by_turn[item.turn].append(item)
    result["categories"] = {c: summary(v) for c, v in sorted(by_category.items())}
    result["turns"] = {str(t): summary(v) for t, v in sorted(by_turn.items())}
    result["judges"] = {
        j: summary(primary_items)
        if j == primary
        else _summary_dict([i for i in items if i.judge == j], repeats, seed)
        for j in judge_names
    }
    result["judge_agreement"] = judge_agreement(items, judge_names) if len(judge_names) > 1 else []
    result["metrics"] = benchmark.metrics(primary_items)
    result["dataset"] = (
        {"uri": benchmark.dataset.uri, "digest": benchmark.dataset.digest} if benchmark.dataset else None
    )
    result["question_scores"] = question_table(primary_items, repeats)
    return result


def json_safe(value: Any) -> Any:
    """NaN and infinities are not JSON: they become null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value
