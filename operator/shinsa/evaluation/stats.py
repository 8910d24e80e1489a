"""Statistics over score tables. Pure: arrays in, numbers out; no I/O.

Confidence intervals come from a question-level (cluster) bootstrap: questions are resampled with
replacement and each drawn question brings all its items (every repeat, turn and so on). Items of
one question are correlated (same prompt, same difficulty), so resampling items independently would
give intervals that are too narrow. The statistic is the mean over all items of the drawn
questions, which equals the reported mean on the original sample even when some items are missing.

Resampling is vectorised: a (draws x questions) matrix of drawn question indices gathers the
per-question sums and counts, which gives every bootstrap mean at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

DEFAULT_DRAWS = 2000
DECISION_DRAWS = 10_000
"""Bootstrap draws per interval of a decision (gates) or a comparison (`shinsa eval compare`): the
2.5% quantile of 10,000 draws moves by about 0.2 standard errors between seeds, little enough that a
verdict near a bound rarely flips with the seed."""
# Caps the draws x questions count matrix held at once.
_MAX_MATRIX_CELLS = 4_000_000


def cell_mean(values: list[float | None]) -> float | None:
    """The mean of one (question, turn) cell's repeats, leaving out the unscored ones (None, NaN):
    the unit that paired comparisons (gates, `shinsa eval compare`) put side by side."""
    scored = [v for v in values if v is not None and math.isfinite(v)]
    return sum(scored) / len(scored) if scored else None


@dataclass(frozen=True)
class Summary:
    mean: float
    std: float
    ci_low: float
    ci_high: float
    n_questions: int
    n_items: int
    per_repeat: tuple[float, ...]


def _bootstrap_means(
    sums: NDArray[np.float64], counts: NDArray[np.float64], draws: int, rng: np.random.Generator
) -> NDArray[np.float64]:
    n = sums.shape[0]
    # Trailing axes of `sums` (several models' totals per question) are resampled with the same
    # drawn questions; `counts` then has shape (n, 1).
    out = np.empty((draws, *sums.shape[1:]))
    step = max(1, _MAX_MATRIX_CELLS // max(1, sums.size))
    for start in range(0, draws, step):
        size = min(step, draws - start)
        # Drawing indices and gathering is several times faster than multinomial counts, with the
        # same distribution: each draw is n questions taken uniformly with replacement.
        drawn = rng.integers(0, n, size=(size, n))
        # A draw made only of questions without items has no mean; it cannot happen when every
        # question has at least one item, which callers guarantee by dropping empty questions.
        out[start : start + size] = sums[drawn].sum(axis=1) / counts[drawn].sum(axis=1)
    return out


def _interval(values: NDArray[np.float64], confidence: float) -> tuple[float, float]:
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(values, [alpha, 1.0 - alpha])
    return float(low), float(high)


def summarize(
    question_ids: ArrayLike,
    repeats: ArrayLike,
    scores: ArrayLike,
    *,
    draws: int = DEFAULT_DRAWS,
    confidence: float = 0.95,
    seed: int = 0,
) -> Summary:
    """Mean over items, std of the per-repeat means (ddof=1), and a cluster-bootstrap CI of the mean.

    `question_ids`, `repeats` and `scores` are parallel, one entry per item; NaN scores (errors) are
    left out. With one repeat the std is NaN: one number has no spread.
    """
    qids = np.asarray(question_ids)
    reps = np.asarray(repeats)
    vals = np.asarray(scores, dtype=np.float64)
    keep = ~np.isnan(vals)
    qids, reps, vals = qids[keep], reps[keep], vals[keep]
    if vals.size == 0:
        nan = math.nan
        return Summary(nan, nan, nan, nan, 0, 0, ())

    repeat_values = np.unique(reps)
    per_repeat = tuple(float(vals[reps == r].mean()) for r in repeat_values)
    std = float(np.std(per_repeat, ddof=1)) if len(per_repeat) > 1 else math.nan

    _, cluster = np.unique(qids, return_inverse=True)
    sums = np.bincount(cluster, weights=vals).astype(np.float64)
    counts = np.bincount(cluster).astype(np.float64)
    boot = _bootstrap_means(sums, counts, draws, np.random.default_rng(seed))
    low, high = _interval(boot, confidence)
    return Summary(
        mean=float(vals.mean()),
        std=std,
        ci_low=low,
        ci_high=high,
        n_questions=int(sums.size),
        n_items=int(vals.size),
        per_repeat=per_repeat,
    )


@dataclass(frozen=True)
class ClusterMean:
    mean: float
    ci_low: float
    ci_high: float
    n_clusters: int
    n_items: int


def cluster_mean_interval(
    sums: ArrayLike,
    counts: ArrayLike,
    *,
    draws: int = DEFAULT_DRAWS,
    confidence: float = 0.95,
    seed: int = 0,
) -> ClusterMean:
    """The mean over items grouped in clusters, and a cluster-bootstrap interval of it.

    `sums[k]` and `counts[k]` are the total and the number of items of cluster k. A cluster is what
    moves as one in a resample: a question, with all its turns and repeats. Clusters without items
    are left out; with none left every number is NaN. The same seed gives the same interval.
    """
    s = np.asarray(sums, dtype=np.float64)
    c = np.asarray(counts, dtype=np.float64)
    keep = c > 0
    s, c = s[keep], c[keep]
    if s.size == 0:
        nan = math.nan
        return ClusterMean(nan, nan, nan, 0, 0)
    boot = _bootstrap_means(s, c, draws, np.random.default_rng(seed))
    low, high = _interval(boot, confidence)
    return ClusterMean(
        mean=float(s.sum() / c.sum()), ci_low=low, ci_high=high, n_clusters=int(s.size), n_items=int(c.sum())
    )


def joint_cluster_means(
    sums: ArrayLike, counts: ArrayLike, *, draws: int = DEFAULT_DRAWS, seed: int = 0
) -> NDArray[np.float64]:
    """Bootstrap means of several series over the same clusters, resampled together: `sums[k, m]` is
    series m's total over the `counts[k]` items of cluster k (every series has the same items, as
    models paired on the questions all of them scored). Returns a (draws x series) array, whose row
    is one resample of every series; statistics across series (ranks) are read off the rows. The
    clusters must all have items."""
    s = np.asarray(sums, dtype=np.float64)
    c = np.asarray(counts, dtype=np.float64).reshape(-1, 1)
    if s.ndim != 2 or s.shape[0] != c.shape[0] or s.shape[0] == 0:
        raise ValueError("joint_cluster_means needs a (clusters x series) sums and one count per cluster")
    return _bootstrap_means(s, c, draws, np.random.default_rng(seed))


def _rank(values: NDArray[np.float64]) -> NDArray[np.float64]:
    """Ranks starting at 1, ties sharing their average rank."""
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(values.size)
    ranks[order] = np.arange(1, values.size + 1, dtype=np.float64)
    _, inverse = np.unique(values, return_inverse=True)
    sums = np.bincount(inverse, weights=ranks)
    counts = np.bincount(inverse)
    result: NDArray[np.float64] = (sums / counts)[inverse]
    return result


def spearman_rho(x: ArrayLike, y: ArrayLike) -> float:
    """Spearman rank correlation (Pearson correlation of average ranks); NaN when undefined."""
    xa, ya = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if xa.size < 2:
        return math.nan
    rx, ry = _rank(xa), _rank(ya)
    sx, sy = rx.std(), ry.std()
    if sx == 0 or sy == 0:
        return math.nan
    return float(((rx - rx.mean()) * (ry - ry.mean())).mean() / (sx * sy))


def kendall_tau(x: ArrayLike, y: ArrayLike) -> float:
    """Kendall's tau-b, which corrects for ties (judge ratings are integers: ties are the norm)."""
    xa, ya = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    n = xa.size
    if n < 2:
        return math.nan
    concordance = 0.0
    pairs_x = 0.0
    pairs_y = 0.0
    step = max(1, _MAX_MATRIX_CELLS // n)
    for start in range(0, n, step):
        dx = np.sign(xa[start : start + step, None] - xa[None, :])
        dy = np.sign(ya[start : start + step, None] - ya[None, :])
        concordance += float((dx * dy).sum())
        pairs_x += float(np.abs(dx).sum())
        pairs_y += float(np.abs(dy).sum())
    if pairs_x == 0 or pairs_y == 0:
        return math.nan
    # Every unordered pair was counted twice on all three sums, so the factor cancels.
    return concordance / math.sqrt(pairs_x * pairs_y)
