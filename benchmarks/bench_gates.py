"""Regression gates: how often `superiority` promotes an equal model, its power, and its speed.

Simulation. Scores of model m on question q, turn t, repeat r are judge-like integers:

    y = clip(round(mu + delta_m + d_q + u_mq + e_mqtr), 1, 10)

d_q is the question's difficulty (shared by both models: pairing cancels it), u_mq a model x question
interaction shared by all turns and repeats of that question (one model happens to suit a question
better: what makes a question's items correlated), e_mqtr item noise. Each simulated pair of runs goes
through the real gate (`shinsa.gates.evaluate_gates`, a superiority rule over typed results), which
pairs by (question, turn), averages over repeats and resamples whole questions.

- delta = 0 (candidate equal to baseline): the false-promotion rate, the share of pairs `superiority`
  passes. A two-sided 95% interval whose low end must exceed 0 should promote about 2.5%; the target
  is <= 5%.
- delta = +0.5: the power, the share of pairs it passes.
- The same pairs with a naive item-level bootstrap (each (question, turn, repeat) difference resampled
  on its own, as if items were independent): its intervals ignore u, so they are too narrow and it
  promotes equal models far more often.

Speed: one gate decision (one superiority rule, pairing included) on 400 questions x 3 repeats with
10,000 draws, the median of `--rounds`, reported against a floor measured in the same run: numpy's
time for one gather-and-row-sum over a (draws x questions) index matrix, the irreducible core of one
cluster bootstrap. Never asserted: shared machines are noisy.

    .venv/bin/python benchmarks/bench_gates.py                 # 1,000 pairs per setting, ~1-2 min
    .venv/bin/python benchmarks/bench_gates.py --pairs 4000    # tighter rates
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from shinsa.api import GateVerdict
from shinsa.api.gates import GatePolicy
from shinsa.evaluation.results import (
    BenchmarkResult,
    DatasetInfo,
    ModelInfo,
    QuestionTable,
    RunResults,
    RunStatus,
)
from shinsa.gates import evaluate_gates

BENCHMARK = "mt-bench"
POLICY = GatePolicy.model_validate({"rules": [{"type": "superiority", "benchmark": BENCHMARK}]})


@dataclass(frozen=True)
class World:
    questions: int
    turns: int
    repeats: int
    mu: float
    difficulty_sd: float
    interaction_sd: float
    noise_sd: float

    def scores(self, rng: np.random.Generator, difficulty: NDArray[np.float64], delta: float) -> NDArray[Any]:
        """One model's (questions x turns x repeats) integer ratings."""
        interaction = rng.normal(0.0, self.interaction_sd, size=(self.questions, 1, 1))
        noise = rng.normal(0.0, self.noise_sd, size=(self.questions, self.turns, self.repeats))
        raw = self.mu + delta + difficulty[:, None, None] + interaction + noise
        return np.clip(np.rint(raw), 1, 10)


def results(scores: NDArray[Any], name: str) -> RunResults:
    """Typed results holding what a gate reads: the per-question table and the provenance."""
    table: QuestionTable = {
        f"q{q:04d}": {str(t + 1): [float(v) for v in scores[q, t]] for t in range(scores.shape[1])}
        for q in range(scores.shape[0])
    }
    n = int(scores.size)
    mean = float(scores.mean())
    bench = BenchmarkResult(
        mean=mean, std=None, ci_low=None, ci_high=None, n_questions=scores.shape[0], n_items=n,
        n_scored=n, n_errors=0, per_repeat=[], primary_judge="judge", judge_model="judge-model",
        judge_prompts_digest="prompts", n_errors_all_judges=0, error_rate=0.0,
        dataset=DatasetInfo(uri="/data/sim", digest="sha256:sim"), question_metrics={"score": table},
    )  # fmt: skip
    return RunResults(
        status=RunStatus.SUCCEEDED, model=ModelInfo(served_name=name), repeats=scores.shape[2], items=n,
        errors=0, error_rate=0.0, max_error_rate=0.05, benchmarks={BENCHMARK: bench},
    )  # fmt: skip


def naive_promotes(candidate: NDArray[Any], baseline: NDArray[Any], draws: int, seed: int) -> bool:
    """Superiority by an item-level bootstrap: every item's difference resampled independently."""
    diffs = (candidate - baseline).ravel()
    rng = np.random.default_rng(seed)
    means = diffs[rng.integers(0, diffs.size, size=(draws, diffs.size))].mean(axis=1)
    low = float(np.quantile(means, 0.025))
    return low > 0


def simulate(world: World, delta: float, pairs: int, draws: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    clustered = naive = 0
    observed = []
    for k in range(pairs):
        difficulty = rng.normal(0.0, world.difficulty_sd, size=world.questions)
        base = world.scores(rng, difficulty, 0.0)
        cand = world.scores(rng, difficulty, delta)
        decision = evaluate_gates(
            POLICY, results(cand, "candidate"), results(base, "baseline"), seed=k, draws=draws
        )
        clustered += decision.decision is GateVerdict.PASSED
        observed.append(decision.rules[0].observed or 0.0)
        naive += naive_promotes(cand, base, draws, k)
    return {
        "delta": delta,
        "pairs": pairs,
        "clustered_pass_rate": clustered / pairs,
        "naive_pass_rate": naive / pairs,
        "mean_observed_difference": statistics.fmean(observed),
    }


def _mc_se(p: float, n: int) -> float:
    return math.sqrt(max(p * (1 - p), 1e-12) / n)


def time_decision(questions: int, repeats: int, draws: int, rounds: int) -> dict[str, float]:
    world = World(questions, 1, repeats, 6.5, 1.5, 0.8, 1.0)
    rng = np.random.default_rng(123)
    difficulty = rng.normal(0.0, world.difficulty_sd, size=questions)
    candidate = results(world.scores(rng, difficulty, 0.2), "candidate")
    baseline = results(world.scores(rng, difficulty, 0.0), "baseline")
    evaluate_gates(POLICY, candidate, baseline, draws=draws)  # warm-up: imports, caches

    decision_s, floor_s = [], []
    values = rng.normal(size=questions)
    for r in range(rounds):
        start = time.perf_counter()
        evaluate_gates(POLICY, candidate, baseline, seed=r, draws=draws)
        decision_s.append(time.perf_counter() - start)
        index = np.random.default_rng(r).integers(0, questions, size=(draws, questions))
        start = time.perf_counter()
        values[index].sum(axis=1)
        floor_s.append(time.perf_counter() - start)
    decision, floor = statistics.median(decision_s), statistics.median(floor_s)
    return {"decision_s": decision, "floor_s": floor, "ratio": decision / floor}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=1000, help="simulated run pairs per setting")
    parser.add_argument("--questions", type=int, default=80)
    parser.add_argument("--turns", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--interaction-sd", type=float, default=0.8)
    parser.add_argument("--noise-sd", type=float, default=1.0)
    parser.add_argument("--sim-draws", type=int, default=2000, help="bootstrap draws in the simulation")
    parser.add_argument("--effect", type=float, default=0.5)
    parser.add_argument("--timing-questions", type=int, default=400)
    parser.add_argument("--timing-repeats", type=int, default=3)
    parser.add_argument("--timing-draws", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()

    world = World(args.questions, args.turns, args.repeats, 6.5, 1.5, args.interaction_sd, args.noise_sd)
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}, "
          f"Python {platform.python_version()}, numpy {np.__version__}", flush=True)  # fmt: skip
    print(f"world: {world}", flush=True)
    started = time.perf_counter()
    null = simulate(world, 0.0, args.pairs, args.sim_draws, args.seed)
    alt = simulate(world, args.effect, args.pairs, args.sim_draws, args.seed + 1)
    sim_s = time.perf_counter() - started
    timing = time_decision(args.timing_questions, args.timing_repeats, args.timing_draws, args.rounds)

    n, effect = args.pairs, args.effect
    shape = f"{args.questions} questions x {args.turns} turns x {args.repeats} repeats"
    print(f"\n{n} pairs per setting, {shape}, {args.sim_draws} draws ({sim_s:.0f} s)")
    print("| superiority passes | question-clustered (shinsa.gates) | naive item-level |")
    print("|---|---|---|")
    for label, outcome in (("false promotion (delta 0)", null), (f"power (delta +{effect})", alt)):
        clustered, naive = outcome["clustered_pass_rate"], outcome["naive_pass_rate"]
        cells = [f"{p:.1%} ± {_mc_se(p, n):.1%}" for p in (clustered, naive)]
        print(f"| {label} | {cells[0]} | {cells[1]} |")
    observed = (null["mean_observed_difference"], alt["mean_observed_difference"])
    print(f"mean observed difference: {observed[0]:+.3f} (delta 0), {observed[1]:+.3f} (delta +{effect})")
    size = f"{args.timing_questions} questions x {args.timing_repeats} repeats, {args.timing_draws} draws"
    print(
        f"\none decision, {size}: {timing['decision_s'] * 1000:.1f} ms (median of {args.rounds}); "
        f"floor (one gather + row sum, {args.timing_draws} x {args.timing_questions}) "
        f"{timing['floor_s'] * 1000:.1f} ms; ratio {timing['ratio']:.1f}x"
    )
    print(json.dumps({"null": null, "alternative": alt, "timing": timing}))
    # A statistical property, not a timing: an equal candidate must rarely be promoted.
    return 0 if null["clustered_pass_rate"] <= 0.05 else 1


if __name__ == "__main__":
    sys.exit(main())
