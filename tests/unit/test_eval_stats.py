"""Statistics are checked against cases whose answer is known in closed form."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from shinsa.evaluation.stats import (
    cluster_mean_interval,
    kendall_tau,
    spearman_rho,
    summarize,
)

pytestmark = pytest.mark.unit


def _table(scores: np.ndarray) -> tuple[list[int], list[int], list[float]]:
    """Flatten a questions x repeats matrix into parallel item arrays."""
    questions, repeats = np.indices(scores.shape)
    return list(questions.ravel()), list(repeats.ravel()), list(scores.ravel())


def test_constant_scores_have_a_zero_width_interval() -> None:
    summary = summarize(*_table(np.full((40, 3), 7.0)))
    assert summary.mean == 7.0
    assert summary.ci_low == summary.ci_high == 7.0
    assert summary.std == 0.0


def test_large_sample_interval_matches_the_normal_approximation() -> None:
    rng = np.random.default_rng(1)
    sigma, n = 2.0, 4000
    values = rng.normal(5.0, sigma, size=n)
    summary = summarize(np.arange(n), np.zeros(n, dtype=int), values)
    half_width = (summary.ci_high - summary.ci_low) / 2
    analytic = 1.96 * values.std(ddof=1) / math.sqrt(n)
    assert half_width == pytest.approx(analytic, rel=0.08)
    assert summary.ci_low < values.mean() < summary.ci_high


def _exact_cluster_bootstrap(sums: list[float], counts: list[int]) -> list[tuple[float, float]]:
    """(value, probability) of the cluster-bootstrap statistic, by enumerating every resample."""
    n = len(sums)
    outcomes: dict[float, float] = {}
    for draw in itertools.product(range(n), repeat=n):
        value = sum(sums[q] for q in draw) / sum(counts[q] for q in draw)
        outcomes[round(value, 12)] = outcomes.get(round(value, 12), 0.0) + n**-n
    return sorted(outcomes.items())


def _exact_quantile(distribution: list[tuple[float, float]], level: float) -> float:
    cumulative = 0.0
    for value, probability in distribution:
        cumulative += probability
        # Near a jump of the CDF the sampled answer would be a coin toss; 0.015 is > 4 standard errors
        # of a 20,000-draw empirical CDF.
        assert abs(cumulative - level) > 0.015
        if cumulative > level:
            return value
    return distribution[-1][0]


def test_interval_matches_the_exactly_enumerated_cluster_bootstrap() -> None:
    # Four questions with different numbers of judged items (errors left some out): the statistic
    # is the item mean of the drawn questions (a ratio), not the mean of per-question means.
    items = {"a": [2.0], "b": [4.0, 6.0, 8.0], "c": [9.0, 9.0], "d": [1.0, 3.0, 2.0, 6.0]}
    qids = [q for q, scores in items.items() for _ in scores]
    scores = [s for values in items.values() for s in values]
    distribution = _exact_cluster_bootstrap(
        [sum(v) for v in items.values()], [len(v) for v in items.values()]
    )
    # Levels chosen to fall between jumps of this distribution's CDF.
    for confidence in (0.22, 0.31, 0.54):
        summary = summarize(qids, [0] * len(scores), scores, confidence=confidence, draws=20000)
        alpha = (1 - confidence) / 2
        assert summary.ci_low == pytest.approx(_exact_quantile(distribution, alpha))
        assert summary.ci_high == pytest.approx(_exact_quantile(distribution, 1 - alpha))
    assert summary.mean == pytest.approx(sum(scores) / len(scores))


def test_two_questions_give_the_textbook_answer() -> None:
    # Resampling two questions: both "a" (1/4), one of each (1/2), both "b" (1/4). Item means 0, 3/4, 1,
    # so the central 40% interval is exactly [3/4, 3/4]; a mean of question means would say 1/2.
    summary = summarize(["a", "b", "b", "b"], [0, 0, 0, 0], [0.0, 1.0, 1.0, 1.0], confidence=0.4)
    assert (summary.ci_low, summary.ci_high) == (0.75, 0.75)
    wide = summarize(["a", "b", "b", "b"], [0, 0, 0, 0], [0.0, 1.0, 1.0, 1.0])
    assert (wide.ci_low, wide.ci_high) == (0.0, 1.0)


def test_clustered_items_widen_the_interval_versus_treating_items_as_independent() -> None:
    rng = np.random.default_rng(2)
    difficulty = rng.normal(0.0, 2.0, size=200)
    # Five repeats of each question share its difficulty: they are far from independent.
    scores = difficulty[:, None] + rng.normal(0.0, 0.1, size=(200, 5))
    clustered = summarize(*_table(scores))
    _, r, s = _table(scores)
    independent = summarize(np.arange(len(s)), r, s)
    assert (clustered.ci_high - clustered.ci_low) > 1.8 * (independent.ci_high - independent.ci_low)


def test_std_is_the_spread_of_per_repeat_means() -> None:
    scores = np.array([[6.0, 7.0, 8.0], [6.0, 7.0, 8.0]])
    summary = summarize(*_table(scores))
    assert summary.per_repeat == (6.0, 7.0, 8.0)
    assert summary.std == pytest.approx(1.0)


def test_single_repeat_has_no_std_and_errors_are_left_out() -> None:
    summary = summarize(["a", "b", "c"], [0, 0, 0], [4.0, math.nan, 6.0])
    assert math.isnan(summary.std)
    assert summary.mean == 5.0
    assert (summary.n_items, summary.n_questions) == (2, 2)


def test_nothing_scored_gives_nan_not_zero() -> None:
    summary = summarize(["a"], [0], [math.nan])
    assert math.isnan(summary.mean) and summary.n_items == 0


def test_bootstrap_is_reproducible_for_a_seed() -> None:
    rng = np.random.default_rng(3)
    table = _table(rng.integers(1, 11, size=(30, 3)).astype(float))
    assert summarize(*table, seed=7) == summarize(*table, seed=7)


def test_rank_agreement_on_known_orderings() -> None:
    x = [1, 2, 3, 4, 5]
    assert kendall_tau(x, [10, 20, 30, 40, 50]) == pytest.approx(1.0)
    assert kendall_tau(x, [5, 4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman_rho(x, [2, 4, 6, 8, 100]) == pytest.approx(1.0)
    assert spearman_rho(x, [5, 4, 3, 2, 1]) == pytest.approx(-1.0)


def test_rank_agreement_handles_ties() -> None:
    # Pairs: 5 concordant, 0 discordant, 1 tied in x only -> tau-b = 5 / sqrt(5 * 6)
    assert kendall_tau([1, 1, 2, 3], [1, 2, 3, 4]) == pytest.approx(5 / math.sqrt(30))
    # Average ranks of x: 1.5, 1.5, 3, 4 against 1, 2, 3, 4.
    ranks = np.array([1.5, 1.5, 3, 4])
    expected = np.corrcoef(ranks, [1, 2, 3, 4])[0, 1]
    assert spearman_rho([1, 1, 2, 3], [1, 2, 3, 4]) == pytest.approx(expected)
    assert math.isnan(kendall_tau([3, 3, 3], [1, 2, 3]))


def test_cluster_mean_interval_matches_summarize_given_per_question_totals() -> None:
    rng = np.random.default_rng(4)
    scores = rng.integers(1, 11, size=(25, 3)).astype(float)
    scores[3, 1] = np.nan
    summary = summarize(*_table(scores), seed=9)
    kept = ~np.isnan(scores)
    totals = cluster_mean_interval(np.nansum(scores, axis=1), kept.sum(axis=1), seed=9)
    assert totals.mean == pytest.approx(summary.mean)
    assert (totals.ci_low, totals.ci_high) == pytest.approx((summary.ci_low, summary.ci_high))
    assert totals.n_clusters == 25 and totals.n_items == 74


def test_cluster_mean_interval_leaves_out_empty_clusters_and_is_nan_without_any() -> None:
    with_empty = cluster_mean_interval([3.0, 0.0, 5.0], [1, 0, 1], seed=1)
    without = cluster_mean_interval([3.0, 5.0], [1, 1], seed=1)
    assert with_empty == without and with_empty.n_clusters == 2
    nothing = cluster_mean_interval([], [])
    assert math.isnan(nothing.mean) and nothing.n_clusters == 0
