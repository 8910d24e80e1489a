"""Per-question tables to the arrays the bootstrap resamples.

A cell is one (question, turn): its value is the mean over the repeats that produced one (None is a
failed item and is left out). A comparative rule pairs the cells both runs have, and the question is
the cluster: a resample draws whole questions, all their turns and repeats together, because a
model's answers to one question share its difficulty and the judge's view of it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from shinsa.evaluation.results import QuestionTable
from shinsa.evaluation.stats import cell_mean


@dataclass(frozen=True)
class Clusters:
    """Per-question totals: `sums[k]` over `counts[k]` values of question k."""

    sums: NDArray[np.float64]
    counts: NDArray[np.float64]

    @property
    def n_questions(self) -> int:
        return int(self.sums.size)

    @property
    def mean(self) -> float:
        total = float(self.counts.sum())
        return float(self.sums.sum()) / total if total else math.nan


def item_clusters(table: QuestionTable) -> Clusters:
    """Every scored item of one run, grouped by question: its mean is the mean over items, which is
    what results report as a benchmark's mean."""
    sums, counts = [], []
    for row in table.values():
        values = [v for cells in row.values() for v in cells if v is not None and math.isfinite(v)]
        if values:
            sums.append(sum(values))
            counts.append(len(values))
    return Clusters(np.asarray(sums, dtype=np.float64), np.asarray(counts, dtype=np.float64))


@dataclass(frozen=True)
class Paired:
    """Candidate - baseline differences of the cells both runs scored, grouped by question."""

    differences: Clusters
    candidate: Clusters
    baseline: Clusters
    """Each side's repeat-averaged cells, over the same paired cells."""


def pair_tables(candidate: QuestionTable, baseline: QuestionTable) -> Paired:
    """Pair two runs' tables by (question, turn), averaging each side over its repeats."""
    diff_sums, cand_sums, base_sums, counts = [], [], [], []
    for qid in sorted(candidate.keys() & baseline.keys()):
        cand_row, base_row = candidate[qid], baseline[qid]
        d = c = b = 0.0
        n = 0
        for turn in cand_row.keys() & base_row.keys():
            cand, base = cell_mean(cand_row[turn]), cell_mean(base_row[turn])
            if cand is None or base is None:
                continue
            d += cand - base
            c += cand
            b += base
            n += 1
        if n:
            diff_sums.append(d)
            cand_sums.append(c)
            base_sums.append(b)
            counts.append(n)
    n_array = np.asarray(counts, dtype=np.float64)
    return Paired(
        differences=Clusters(np.asarray(diff_sums, dtype=np.float64), n_array),
        candidate=Clusters(np.asarray(cand_sums, dtype=np.float64), n_array),
        baseline=Clusters(np.asarray(base_sums, dtype=np.float64), n_array),
    )
