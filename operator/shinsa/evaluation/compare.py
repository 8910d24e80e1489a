"""Several runs' results compared: the LLM-jp-4 report's stage B (models under the same prompts,
temperature and judge; question-level bootstrap intervals of the differences; a judge-swap check).

Pure: runs' `RunResults` in, a `Comparison` out (pydantic, snake_case like scores.json, which
`shinsa eval compare --json` prints and `--output` writes as compare.json). No I/O.

- Comparable or refused: every benchmark compared must have the same dataset digest, judge model,
  judge prompts and settings, and generation settings in every run; what differs is listed per
  field with each run's value. `allow_mismatch` compares anyway and marks the comparison.
- Differences: each pair of runs on each benchmark, paired by (question, turn) and averaged over
  repeats, with a question-cluster bootstrap interval (`stats.cluster_mean_interval`), paired as
  the gates' `pair_tables` pairs them, so `shinsa gate` and this agree on the same runs and seed.
- Ranks: models ranked by their mean over the cells every run scored; their stability is the share
  of bootstrap draws (whole questions resampled, the same for every model) in which each model
  holds each rank.
- Judge swap: when every run was scored by the same several judges, each judge's ranking of the
  models and the rank agreement of every pair of judges (Kendall's tau-b, Spearman's rho).
- Long context: per-length metrics (`8k/accuracy`, ...) side by side, with the report's YaRN caveat
  when exactly one side was served with ropeScaling.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, field_validator

from shinsa.evaluation import stats
from shinsa.evaluation.results import HEADLINE, BenchmarkResult, RunResults, RunStatus

COMPARE_FILE = "compare.json"
DEFAULT_DRAWS = stats.DECISION_DRAWS
"""As many draws as a gate decision takes, so `compare` and `shinsa gate` give the same intervals."""
DEFAULT_CONFIDENCE = 0.95
LENGTH_METRIC = re.compile(r"^(?P<length>\d+k?)/(?P<metric>.+)$")
"""The long-context benchmark's per-length metrics: `<length_label>/<metric>`, as `32k/accuracy`."""
PAIRED_LENGTH_METRICS = ("accuracy", "citation_consistency")
"""Per-length metrics with per-question tables, whose paired differences get intervals."""
YARN_CAVEAT = (
    "YaRN is not recommended when typical context is 32k tokens or less (the LLM-jp-4 report, "
    "following Qwen3's guidance): compare each length with the run served without ropeScaling"
)


class CompareError(Exception):
    """Runs that cannot be compared: fewer than two, a Generated run, no benchmark in common, or
    (without allow_mismatch) different datasets, prompts or judges. The message says what and where."""


class NotComparable(CompareError):
    """The runs differ in dataset, prompts, judge or generation settings (`mismatches` lists how)."""

    def __init__(self, message: str, mismatches: list[Mismatch]) -> None:
        super().__init__(message)
        self.mismatches = mismatches


def _nan_to_none(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


class _Schema(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


Number = float | None


class RunInfo(_Schema):
    label: str
    """How the comparison names the run: its model's served name, made unique."""
    source: str
    """Where its results were read (a directory, `mlflow:<run id>`, an s3:// URI)."""
    model: str
    status: RunStatus
    repeats: int
    rope_scaling: str | None = None
    mlflow_run_id: str | None = None


class Mismatch(_Schema):
    """One setting that differs between runs of a benchmark."""

    benchmark: str
    field: str
    """What differs, as results name it: `dataset.digest`, `judge_model`, `judge_prompts_digest`,
    `generation_digest`, `judges.<name>.model`, `judges.<name>.sampling`."""
    values: dict[str, str | None]
    """Each run's value, by run label."""

    def describe(self) -> str:
        shown = ", ".join(
            f"{run}={value if value is not None else 'none'}" for run, value in self.values.items()
        )
        return f"{self.benchmark}: {self.field} differs: {shown}"


class Cell(_Schema):
    """One run's headline summary of one benchmark (the primary judge's scores)."""

    benchmark: str
    run: str
    judge: str
    mean: Number
    std: Number
    """Standard deviation of the per-repeat means; undefined with one repeat."""
    ci_low: Number
    ci_high: Number
    n_questions: int
    n_scored: int
    n_errors: int

    _nan = field_validator("mean", "std", "ci_low", "ci_high", mode="before")(_nan_to_none)


class Difference(_Schema):
    """`a - b` on the cells both runs scored, with its question-cluster bootstrap interval."""

    benchmark: str
    metric: str
    a: str
    b: str
    difference: Number
    ci_low: Number
    ci_high: Number
    n_pairs: int
    """Questions both runs scored."""
    a_mean: Number
    b_mean: Number
    """Each side's mean over the paired cells only."""

    _nan = field_validator("difference", "ci_low", "ci_high", "a_mean", "b_mean", mode="before")(_nan_to_none)

    @property
    def excludes_zero(self) -> bool:
        return self.ci_low is not None and self.ci_high is not None and (self.ci_low > 0 or self.ci_high < 0)

    def reading(self) -> str:
        """`a better`, `b better`, or `no clear difference` at the comparison's confidence."""
        if not self.excludes_zero or self.difference is None:
            return "no clear difference"
        return f"{self.a} better" if self.difference > 0 else f"{self.b} better"


class Rank(_Schema):
    """A model's rank on a benchmark (1 = highest mean) and how often it holds each rank."""

    benchmark: str
    run: str
    mean: Number
    """The mean over the cells every run scored (what the ranks are of)."""
    rank: int
    """1 + the number of models with a strictly higher mean."""
    shares: list[float]
    """Share of bootstrap draws in which the model held rank 1, 2, ... (ties share the better rank)."""
    n_questions: int


class JudgeAgreement(_Schema):
    judges: tuple[str, str]
    kendall_tau: Number
    spearman: Number
    n_models: int

    _nan = field_validator("kendall_tau", "spearman", mode="before")(_nan_to_none)


class JudgeRanks(_Schema):
    """The judge-swap check of one benchmark: every judge's ranking of the models."""

    benchmark: str
    means: dict[str, dict[str, Number]]
    """judge -> run -> that judge's mean score of the run."""
    ranks: dict[str, dict[str, int]]
    """judge -> run -> rank (1 = highest mean)."""
    agreement: list[JudgeAgreement]


class LengthRow(_Schema):
    length: str
    metric: str
    values: dict[str, Number]
    """run -> the metric at this length (None where the run has none)."""


class LongContext(_Schema):
    benchmark: str
    rope_scaling: dict[str, str | None]
    rows: list[LengthRow]
    caveat: str | None = None
    """The YaRN caveat, when some runs were served with ropeScaling and some without (of two runs:
    exactly one)."""


class Comparison(_Schema):
    """Everything `shinsa eval compare` reports; compare.json is its serialization."""

    runs: list[RunInfo]
    benchmarks: list[str]
    """The benchmarks every run has, in the first run's order."""
    confidence: float
    draws: int
    seed: int
    mismatched: bool = False
    """True when runs that differ in dataset, prompts or judge were compared (allow_mismatch)."""
    mismatches: list[Mismatch] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    """What the reader should know: benchmarks not in every run, provenance that could not be checked,
    Incomplete runs."""
    table: list[Cell] = Field(default_factory=list)
    differences: list[Difference] = Field(default_factory=list)
    ranks: list[Rank] = Field(default_factory=list)
    judge_ranks: list[JudgeRanks] = Field(default_factory=list)
    long_context: list[LongContext] = Field(default_factory=list)

    def to_json(self) -> str:
        return self.model_dump_json(indent=2) + "\n"


@dataclass(frozen=True)
class Source:
    """A run to compare: its results and where they were read."""

    results: RunResults
    source: str


# -- labels and checks ---------------------------------------------------------------------------


def _labels(runs: Sequence[Source]) -> list[str]:
    """Served names, made unique: by ropeScaling first (YaRN on/off of one model), then by position."""
    names = [r.results.model.served_name for r in runs]
    ropes = [r.results.model.rope_scaling for r in runs]
    labels = []
    for name, rope in zip(names, ropes, strict=True):
        same = [ropes[i] for i, n in enumerate(names) if n == name]
        labels.append(f"{name} ({rope or 'native'})" if len(set(same)) > 1 else name)
    return [f"{label} #{i + 1}" if labels.count(label) > 1 else label for i, label in enumerate(labels)]


def _sampling_texts(samplings: Sequence[dict[str, Any]]) -> list[str | None]:
    """Each run's judge sampling, as the settings that differ between the runs (`temperature=0.0`)."""
    keys = sorted({k for s in samplings for k in s})
    differing = [k for k in keys if len({repr(s.get(k)) for s in samplings}) > 1]
    return [", ".join(f"{k}={s.get(k)}" for k in differing) or None for s in samplings]


def mismatches(
    runs: Sequence[Source], labels: Sequence[str], benchmarks: Sequence[str]
) -> tuple[list[Mismatch], list[str]]:
    """What differs between the runs on each benchmark, and notes on what could not be checked."""
    found: list[Mismatch] = []
    notes: list[str] = []
    for name in benchmarks:
        benches = [r.results.benchmarks[name] for r in runs]
        unknown = [label for label, b in zip(labels, benches, strict=True) if b.dataset is None]
        if unknown:
            notes.append(f"{name}: the dataset could not be checked: {', '.join(unknown)} do not record it")
        fields: list[tuple[str, list[str | None]]] = [
            ("dataset.digest", [b.dataset.digest if b.dataset else None for b in benches]),
            ("judge_model", [b.judge_model for b in benches]),
            ("judge_prompts_digest", [b.judge_prompts_digest for b in benches]),
        ]
        generation = [b.generation_digest for b in benches]
        if all(g is not None for g in generation):
            fields.append(("generation_digest", list(generation)))
        elif any(g is not None for g in generation):
            missing = [label for label, g in zip(labels, generation, strict=True) if g is None]
            notes.append(
                f"{name}: generation settings could not be checked: {', '.join(missing)} judged given "
                "answers or do not record them"
            )
        for judge in sorted(set.intersection(*(set(b.judges) for b in benches))):
            infos = [next((j for j in r.results.judges if j.name == judge), None) for r in runs]
            if any(i is None for i in infos):
                continue
            fields.append((f"judges.{judge}.model", [i.model if i else None for i in infos]))
            samplings = [i.sampling if i else {} for i in infos]
            if all(samplings):
                fields.append((f"judges.{judge}.sampling", _sampling_texts(samplings)))
        for field, values in fields:
            # A value a run does not record (results rebuilt from items.jsonl) is unknown, not
            # different: only recorded values that disagree are a mismatch.
            if len({v for v in values if v is not None}) > 1:
                found.append(
                    Mismatch(benchmark=name, field=field, values=dict(zip(labels, values, strict=True)))
                )
    return found, notes


# -- statistics -----------------------------------------------------------------------------------


def _aligned(
    benches: Sequence[BenchmarkResult], metric: str
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(questions x runs) totals and per-question counts over the (question, turn) cells every run
    scored, each cell averaged over its repeats: what ranks and their bootstrap are computed on."""
    tables = [b.table(metric) or {} for b in benches]
    sums, counts = [], []
    for qid in sorted(set.intersection(*(set(t) for t in tables))):
        totals = [0.0] * len(tables)
        n = 0
        for turn in sorted(set.intersection(*(set(t[qid]) for t in tables)), key=int):
            cells = [c for c in (stats.cell_mean(t[qid][turn]) for t in tables) if c is not None]
            if len(cells) < len(tables):
                continue
            totals = [s + c for s, c in zip(totals, cells, strict=True)]
            n += 1
        if n:
            sums.append(totals)
            counts.append(n)
    return np.asarray(sums, dtype=np.float64).reshape(-1, len(tables)), np.asarray(counts, dtype=np.float64)


def _ranks_of(means: NDArray[np.float64]) -> NDArray[np.int64]:
    """Rank 1 for the highest mean; ties share the better rank. Works on the last axis."""
    ranks: NDArray[np.int64] = 1 + (means[..., None, :] > means[..., :, None]).sum(axis=-1)
    return ranks


def difference(
    a: BenchmarkResult, b: BenchmarkResult, metric: str, *, draws: int, confidence: float, seed: int
) -> tuple[float, float, float, int, float, float] | None:
    """(a - b, interval low, high, paired questions, a's mean, b's mean over the paired cells), or
    None when a side has no table of `metric`."""
    if a.table(metric) is None or b.table(metric) is None:
        return None
    sums, counts = _aligned([a, b], metric)
    if counts.size == 0:
        return math.nan, math.nan, math.nan, 0, math.nan, math.nan
    interval = stats.cluster_mean_interval(
        sums[:, 0] - sums[:, 1], counts, draws=draws, confidence=confidence, seed=seed
    )
    total = float(counts.sum())
    a_mean, b_mean = (float(x) / total for x in sums.sum(axis=0))
    return interval.mean, interval.ci_low, interval.ci_high, int(counts.size), a_mean, b_mean


def _length_metrics(bench: BenchmarkResult) -> dict[tuple[str, str], float]:
    out = {}
    for key, value in bench.metrics.items():
        match = LENGTH_METRIC.match(key)
        if match:
            out[(match["length"], match["metric"])] = value
    return out


def _length_order(length: str) -> tuple[int, str]:
    digits = length.rstrip("k")
    return (int(digits) * (1024 if length.endswith("k") else 1) if digits.isdigit() else 0, length)


def _long_context(name: str, runs: Sequence[Source], labels: Sequence[str]) -> LongContext | None:
    per_run = [_length_metrics(r.results.benchmarks[name]) for r in runs]
    with_lengths = [i for i, m in enumerate(per_run) if m]
    if len(with_lengths) < 2:
        return None
    keys = sorted({k for i in with_lengths for k in per_run[i]}, key=lambda k: (_length_order(k[0]), k[1]))
    rows = [
        LengthRow(
            length=length,
            metric=metric,
            values={labels[i]: _nan_to_none(per_run[i].get((length, metric))) for i in with_lengths},
        )
        for length, metric in keys
    ]
    rope = {labels[i]: runs[i].results.model.rope_scaling for i in with_lengths}
    scaled = [label for label, value in rope.items() if value]
    # Shown when YaRN on and off sit side by side (of two runs: exactly one with ropeScaling).
    caveat = YARN_CAVEAT if 0 < len(scaled) < len(rope) else None
    return LongContext(benchmark=name, rope_scaling=rope, rows=rows, caveat=caveat)


def _judge_ranks(name: str, benches: Sequence[BenchmarkResult], labels: Sequence[str]) -> JudgeRanks | None:
    judges = [j for j in benches[0].judges if all(j in b.judges for b in benches)]
    if len(judges) < 2:
        return None
    means: dict[str, dict[str, Number]] = {}
    ranks: dict[str, dict[str, int]] = {}
    for judge in judges:
        values = [b.judges[judge].mean for b in benches]
        means[judge] = dict(zip(labels, values, strict=True))
        array = np.asarray([v if v is not None else -math.inf for v in values], dtype=np.float64)
        ranks[judge] = {label: int(r) for label, r in zip(labels, _ranks_of(array), strict=True)}
    agreement = []
    for first, second in itertools.combinations(judges, 2):
        keep = [
            i
            for i in range(len(labels))
            if means[first][labels[i]] is not None and means[second][labels[i]] is not None
        ]
        x = [float(means[first][labels[i]] or 0.0) for i in keep]
        y = [float(means[second][labels[i]] or 0.0) for i in keep]
        agreement.append(
            JudgeAgreement(
                judges=(first, second),
                kendall_tau=stats.kendall_tau(x, y),
                spearman=stats.spearman_rho(x, y),
                n_models=len(keep),
            )
        )
    return JudgeRanks(benchmark=name, means=means, ranks=ranks, agreement=agreement)


# -- the comparison --------------------------------------------------------------------------------


def compare(
    runs: Sequence[Source],
    *,
    allow_mismatch: bool = False,
    draws: int = DEFAULT_DRAWS,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = 0,
) -> Comparison:
    """Compare two or more runs' results; raises CompareError when they cannot be compared."""
    if len(runs) < 2:
        raise CompareError(f"compare needs at least two runs, got {len(runs)}")
    labels = _labels(runs)
    generated = [
        f"{label} ({r.source})"
        for label, r in zip(labels, runs, strict=True)
        if r.results.status is RunStatus.GENERATED
    ]
    if generated:
        raise CompareError(
            f"{', '.join(generated)} only generated answers (status Generated, --phase generate): "
            "nothing was judged; judge them with `shinsa eval run --phase judge --answers` first"
        )
    first = runs[0].results
    benchmarks = [b for b in first.benchmarks if all(b in r.results.benchmarks for r in runs[1:])]
    if not benchmarks:
        listing = "; ".join(
            f"{label}: {', '.join(r.results.benchmarks) or 'none'}"
            for label, r in zip(labels, runs, strict=True)
        )
        raise CompareError(f"the runs have no benchmark in common ({listing})")
    found, notes = mismatches(runs, labels, benchmarks)
    if found and not allow_mismatch:
        raise NotComparable(
            "the runs are not comparable (use --allow-mismatch to compare anyway): "
            + "; ".join(m.describe() for m in found),
            found,
        )
    for label, r in zip(labels, runs, strict=True):
        others = [b for b in r.results.benchmarks if b not in benchmarks]
        if others:
            notes.append(f"{label}: {', '.join(others)} not in every run, not compared")
        if r.results.status is RunStatus.INCOMPLETE:
            notes.append(
                f"{label}: the run is Incomplete (error rate {r.results.error_rate:.1%} above its "
                f"maxErrorRate {r.results.max_error_rate:.1%}): its scores are not to be trusted"
            )

    table: list[Cell] = []
    differences: list[Difference] = []
    ranks: list[Rank] = []
    judge_ranks: list[JudgeRanks] = []
    long_context: list[LongContext] = []
    for name in benchmarks:
        benches = [r.results.benchmarks[name] for r in runs]
        for label, b in zip(labels, benches, strict=True):
            table.append(
                Cell(
                    benchmark=name,
                    run=label,
                    judge=b.primary_judge,
                    mean=b.mean,
                    std=b.std,
                    ci_low=b.ci_low,
                    ci_high=b.ci_high,
                    n_questions=b.n_questions,
                    n_scored=b.n_scored,
                    n_errors=b.n_errors,
                )
            )
        metrics = [HEADLINE] + [
            f"{length}/{metric}"
            for length, metric in sorted(
                {k for k in _length_metrics(benches[0]) if k[1] in PAIRED_LENGTH_METRICS},
                key=lambda k: (_length_order(k[0]), k[1]),
            )
        ]
        for metric in metrics:
            for (i, a), (j, b) in itertools.combinations(enumerate(benches), 2):
                numbers = difference(a, b, metric, draws=draws, confidence=confidence, seed=seed)
                if numbers is None:
                    continue
                diff, low, high, n, a_mean, b_mean = numbers
                differences.append(
                    Difference(
                        benchmark=name,
                        metric=metric,
                        a=labels[i],
                        b=labels[j],
                        difference=diff,
                        ci_low=low,
                        ci_high=high,
                        n_pairs=n,
                        a_mean=a_mean,
                        b_mean=b_mean,
                    )
                )
        ranks += _rank_stability(name, benches, labels, draws=draws, seed=seed)
        agreement = _judge_ranks(name, benches, labels)
        if agreement is not None:
            judge_ranks.append(agreement)
        lengths = _long_context(name, runs, labels)
        if lengths is not None:
            long_context.append(lengths)
    return Comparison(
        runs=[
            RunInfo(
                label=label,
                source=r.source,
                model=r.results.model.served_name,
                status=r.results.status,
                repeats=r.results.repeats,
                rope_scaling=r.results.model.rope_scaling,
                mlflow_run_id=r.results.mlflow_run_id,
            )
            for label, r in zip(labels, runs, strict=True)
        ],
        benchmarks=benchmarks,
        confidence=confidence,
        draws=draws,
        seed=seed,
        mismatched=bool(found),
        mismatches=found,
        notes=notes,
        table=table,
        differences=differences,
        ranks=ranks,
        judge_ranks=judge_ranks,
        long_context=long_context,
    )


def _rank_stability(
    name: str, benches: Sequence[BenchmarkResult], labels: Sequence[str], *, draws: int, seed: int
) -> list[Rank]:
    sums, counts = _aligned(benches, HEADLINE)
    if counts.size == 0:
        return []
    means = sums.sum(axis=0) / counts.sum()
    observed = _ranks_of(means)
    boot = _ranks_of(stats.joint_cluster_means(sums, counts, draws=draws, seed=seed))
    k = len(labels)
    return [
        Rank(
            benchmark=name,
            run=label,
            mean=float(means[m]),
            rank=int(observed[m]),
            shares=[float((boot[:, m] == r).mean()) for r in range(1, k + 1)],
            n_questions=int(counts.size),
        )
        for m, label in enumerate(labels)
    ]
