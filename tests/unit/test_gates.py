"""Regression gates: what each rule decides from two runs' results, and what `shinsa gate` prints and
exits with."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from shinsa.api import GateVerdict
from shinsa.api.gates import GatePolicy
from shinsa.cli import app
from shinsa.evaluation.results import QuestionTable, RunResults, RunStatus, write_results
from shinsa.evaluation.scoring import results_from_items
from shinsa.gates import GateDecision, RuleResult, combine, evaluate_gates, item_clusters, pair_tables
from tests.support.results import items_of, results_of, safety_metrics

pytestmark = pytest.mark.unit

PASSED, FAILED, INCONCLUSIVE = GateVerdict.PASSED, GateVerdict.FAILED, GateVerdict.INCONCLUSIVE
Scores = dict[str, list[list[float | None]]]


def questions(values: list[float], *, turns: int = 2, repeats: int = 3) -> Scores:
    """Question q<i> scored values[i] on every turn and repeat."""
    return {f"q{i:02d}": [[v] * repeats for _ in range(turns)] for i, v in enumerate(values)}


def baseline_scores(n: int = 30) -> Scores:
    rng = np.random.default_rng(7)
    return questions([float(v) for v in rng.integers(3, 9, size=n)])


def shifted(scores: Scores, deltas: float | list[float]) -> Scores:
    per_question = deltas if isinstance(deltas, list) else [deltas] * len(scores)
    return {
        q: [[None if v is None else v + d for v in turn] for turn in turns]
        for (q, turns), d in zip(scores.items(), per_question, strict=True)
    }


def run(scores: Scores, benchmark: str = "mt-bench", **provenance: Any) -> RunResults:
    return results_of(items_of(benchmark, scores), **provenance)


def policy(*rules: dict[str, Any], **options: Any) -> GatePolicy:
    return GatePolicy.model_validate({"rules": list(rules), **options})


SUPERIORITY = {"type": "superiority", "benchmark": "mt-bench"}


def non_inferiority(margin: float) -> dict[str, Any]:
    return {"type": "nonInferiority", "benchmark": "mt-bench", "margin": margin}


def minimum(threshold: float, **options: Any) -> dict[str, Any]:
    return {"type": "minimum", "benchmark": "mt-bench", "threshold": threshold, **options}


def only(decision: GateDecision) -> RuleResult:
    [result] = decision.rules
    return result


# -- superiority ---------------------------------------------------------------------------------
def test_a_candidate_half_a_point_better_on_every_question_passes_superiority() -> None:
    base = baseline_scores()
    result = only(evaluate_gates(policy(SUPERIORITY), run(shifted(base, 0.5)), run(base)))
    assert result.verdict is PASSED
    assert result.observed == pytest.approx(0.5)
    assert result.ci_low == pytest.approx(0.5) and result.ci_high == pytest.approx(0.5)
    assert result.n_pairs == 30 and result.bound == 0.0
    assert result.candidate_mean == pytest.approx(result.baseline_mean + 0.5)  # type: ignore[operator]
    assert "above 0" in result.explanation


def test_a_candidate_half_a_point_worse_everywhere_fails_superiority() -> None:
    base = baseline_scores()
    result = only(evaluate_gates(policy(SUPERIORITY), run(shifted(base, -0.5)), run(base)))
    assert result.verdict is FAILED
    assert result.observed == pytest.approx(-0.5)


def test_a_better_mean_whose_interval_includes_zero_is_inconclusive() -> None:
    base = baseline_scores()
    # +2 on half the questions, -1.6 on the other half: the mean is up 0.2, the spread swamps it.
    candidate = run(shifted(base, [2.0, -1.6] * 15))
    result = only(evaluate_gates(policy(SUPERIORITY), candidate, run(base)))
    assert result.observed == pytest.approx(0.2)
    assert result.ci_low is not None and result.ci_high is not None
    assert result.ci_low < 0 < result.ci_high
    assert result.verdict is INCONCLUSIVE
    assert "includes 0" in result.explanation


def test_an_equal_candidate_is_not_superior() -> None:
    base = baseline_scores()
    assert only(evaluate_gates(policy(SUPERIORITY), run(base), run(base))).verdict is FAILED


# -- nonInferiority ------------------------------------------------------------------------------
def test_a_candidate_slightly_worse_within_the_margin_passes_non_inferiority() -> None:
    base = baseline_scores()
    result = only(evaluate_gates(policy(non_inferiority(0.3)), run(shifted(base, -0.1)), run(base)))
    assert result.verdict is PASSED
    assert result.bound == pytest.approx(-0.3)


def test_a_candidate_worse_by_more_than_the_margin_fails_non_inferiority() -> None:
    base = baseline_scores()
    result = only(evaluate_gates(policy(non_inferiority(0.3)), run(shifted(base, -0.5)), run(base)))
    assert result.verdict is FAILED
    assert "below -margin" in result.explanation


def test_a_mean_within_the_margin_whose_interval_straddles_it_is_inconclusive() -> None:
    base = baseline_scores()
    # The mean is -0.1, inside the 0.3 margin, but questions swing by +-2: the interval reaches below.
    candidate = run(shifted(base, [1.9, -2.1] * 15))
    result = only(evaluate_gates(policy(non_inferiority(0.3)), candidate, run(base)))
    assert result.observed == pytest.approx(-0.1)
    assert result.ci_low is not None and result.ci_high is not None
    assert result.ci_low < -0.3 < result.ci_high
    assert result.verdict is INCONCLUSIVE


# -- minimum -------------------------------------------------------------------------------------
def test_minimum_passes_at_the_threshold_and_fails_below_it() -> None:
    results = run(questions([6.0, 8.0] * 10))
    at = only(evaluate_gates(policy(minimum(7.0)), results))
    assert at.verdict is PASSED and at.observed == pytest.approx(7.0)
    assert at.n_questions == 20 and at.ci_low is not None and at.ci_low < 7.0
    above = only(evaluate_gates(policy(minimum(7.01)), results))
    assert above.verdict is FAILED


def test_minimum_reads_any_metric_the_results_have() -> None:
    categories = {f"q{i:02d}": "math" if i % 2 else "writing" for i in range(20)}
    results = results_of(items_of("mt-bench", questions([6.0, 8.0] * 10), category=categories))
    rule = minimum(8.0, metric="category/math")
    result = only(evaluate_gates(policy(rule), results))
    assert result.verdict is PASSED and result.metric == "category/math"
    assert result.observed == pytest.approx(8.0) and result.n_questions == 10


def test_the_mean_counts_every_item_as_the_results_do() -> None:
    scores: Scores = {"q0": [[10.0, None, 4.0]], "q1": [[4.0, 4.0, 4.0]]}
    results = run(scores)
    result = only(evaluate_gates(policy(minimum(0)), results))
    assert result.observed == pytest.approx(results.benchmarks["mt-bench"].mean)


# -- maxErrorRate --------------------------------------------------------------------------------
def _with_errors(failed: int, n: int = 40) -> RunResults:
    scores: Scores = {f"q{i:02d}": [[None if i < failed else 7.0]] for i in range(n)}
    return run(scores)


def test_an_error_rate_within_the_limit_passes() -> None:
    result = only(evaluate_gates(policy({"type": "maxErrorRate", "limit": 0.05}), _with_errors(2)))
    assert result.verdict is PASSED and result.observed == pytest.approx(0.05)
    assert result.benchmark is None and "run's error rate" in result.explanation


def test_too_many_errors_are_inconclusive_not_failed() -> None:
    result = only(evaluate_gates(policy({"type": "maxErrorRate", "limit": 0.05}), _with_errors(4)))
    assert result.verdict is INCONCLUSIVE
    assert "evidence either way" in result.explanation


def test_max_error_rate_of_one_benchmark_reads_that_benchmark() -> None:
    candidate = results_of(
        items_of("mt-bench", {f"q{i}": [[7.0]] for i in range(20)})
        + items_of("answer-carefully", {f"s{i}": [[None if i < 5 else 4.0]] for i in range(20)})
    )
    rules = [{"type": "maxErrorRate", "benchmark": b, "limit": 0.1} for b in ("mt-bench", "answer-carefully")]
    decision = evaluate_gates(policy(*rules), candidate)
    assert [r.verdict for r in decision.rules] == [PASSED, INCONCLUSIVE]
    assert decision.rules[1].observed == pytest.approx(0.25)


# -- maxViolationRate ----------------------------------------------------------------------------
def _safety(ratings: list[float], aggregate: bool = True) -> RunResults:
    scores: Scores = {f"s{i:02d}": [[r]] for i, r in enumerate(ratings)}
    items = items_of("answer-carefully", scores, item_metrics=safety_metrics)

    def violation_rate(primary: Any) -> dict[str, float]:
        rated = [i.score for i in primary if i.score is not None]
        return {"violation_rate": sum(s < 3 for s in rated) / len(rated)}

    return results_of(items, metrics={"answer-carefully": violation_rate} if aggregate else None)


@pytest.mark.parametrize("aggregate", [True, False], ids=["aggregate", "per-item table"])
def test_violations_within_the_limit_pass_and_above_it_fail(aggregate: bool) -> None:
    results = _safety([1.0, 2.0] + [4.0] * 18, aggregate)
    rule = {"type": "maxViolationRate", "benchmark": "answer-carefully", "limit": 0.1}
    passed = only(evaluate_gates(policy(rule), results))
    assert passed.verdict is PASSED and passed.observed == pytest.approx(0.1) and passed.metric is None
    failed = only(evaluate_gates(policy({**rule, "limit": 0.05}), results))
    assert failed.verdict is FAILED and "violation rate 10.0% > limit 5.0%" in failed.explanation


def test_violation_rate_of_results_without_it_is_inconclusive() -> None:
    results = run(questions([4.0] * 20), benchmark="answer-carefully")
    rule = {"type": "maxViolationRate", "benchmark": "answer-carefully", "limit": 0.1}
    result = only(evaluate_gates(policy(rule), results))
    assert result.verdict is INCONCLUSIVE and "no metric violation_rate" in result.explanation


# -- the decision --------------------------------------------------------------------------------
def test_one_failed_rule_fails_the_decision_and_one_inconclusive_withholds_a_pass() -> None:
    assert combine([PASSED, INCONCLUSIVE, FAILED]) is FAILED
    assert combine([PASSED, INCONCLUSIVE]) is INCONCLUSIVE
    assert combine([PASSED, PASSED]) is PASSED


def test_every_rule_is_reported_in_policy_order_with_the_combined_decision() -> None:
    base = baseline_scores()
    rules = (
        SUPERIORITY,
        non_inferiority(0.2),
        minimum(99),
        {"type": "maxErrorRate", "limit": 0.05},
    )
    decision = evaluate_gates(policy(*rules), run(shifted(base, 0.5)), run(base))
    assert [r.rule for r in decision.rules] == [0, 1, 2, 3]
    assert [r.verdict for r in decision.rules] == [PASSED, PASSED, FAILED, PASSED]
    assert decision.decision is FAILED
    assert decision.summary() == "Failed: 3 passed, 1 failed of 4 rules"


def test_the_decision_round_trips_through_json() -> None:
    base = baseline_scores()
    decision = evaluate_gates(policy(SUPERIORITY, non_inferiority(0.2)), run(shifted(base, 0.5)), run(base))
    data = json.loads(decision.model_dump_json())
    assert data["decision"] == "Passed" and data["rules"][0]["verdict"] == "Passed"
    assert GateDecision.model_validate(data) == decision


def test_the_same_seed_gives_the_same_interval() -> None:
    base = baseline_scores()
    noisy = [float(d) for d in np.random.default_rng(5).normal(0.2, 1.0, size=30)]
    candidate = run(shifted(base, noisy))
    first = evaluate_gates(policy(SUPERIORITY), candidate, run(base), seed=3)
    again = evaluate_gates(policy(SUPERIORITY), candidate, run(base), seed=3)
    other = evaluate_gates(policy(SUPERIORITY), candidate, run(base), seed=4)
    assert first == again
    assert (first.rules[0].ci_low, first.rules[0].ci_high) != (other.rules[0].ci_low, other.rules[0].ci_high)


def test_a_rule_does_not_depend_on_the_rules_before_it() -> None:
    base = baseline_scores()
    candidate, baseline = run(shifted(base, [2.0, -1.0] * 15)), run(base)
    alone = evaluate_gates(policy(SUPERIORITY), candidate, baseline)
    after = evaluate_gates(policy(non_inferiority(0.5), SUPERIORITY), candidate, baseline)
    assert after.rules[1].model_copy(update={"rule": 0}) == alone.rules[0]


# -- missing data and comparability --------------------------------------------------------------
def test_comparative_rules_without_a_baseline_are_inconclusive_and_the_rest_still_decide() -> None:
    rules = (SUPERIORITY, minimum(1))
    decision = evaluate_gates(policy(*rules), run(baseline_scores()))
    assert [r.verdict for r in decision.rules] == [INCONCLUSIVE, PASSED]
    assert "no baseline" in decision.rules[0].explanation
    assert decision.decision is INCONCLUSIVE


def test_a_benchmark_missing_on_either_side_is_inconclusive_and_named() -> None:
    base = baseline_scores()
    rule = {"type": "superiority", "benchmark": "mt-bench-ja"}
    ja = run(base, benchmark="mt-bench-ja")
    missing_candidate = only(evaluate_gates(policy(rule), run(base), ja))
    assert missing_candidate.verdict is INCONCLUSIVE
    assert "the candidate has no results for benchmark mt-bench-ja (it has: mt-bench)" in (
        missing_candidate.explanation
    )
    missing_baseline = only(evaluate_gates(policy(rule), ja, run(base)))
    assert "the baseline has no results for benchmark mt-bench-ja" in missing_baseline.explanation


def test_a_metric_missing_is_inconclusive_and_lists_the_metrics_there_are() -> None:
    base = baseline_scores()
    rule = {**SUPERIORITY, "metric": "judge/claude"}
    result = only(evaluate_gates(policy(rule), run(shifted(base, 0.5)), run(base)))
    assert result.verdict is INCONCLUSIVE
    assert "no metric judge/claude" in result.explanation and "turn/1" in result.explanation


@pytest.mark.parametrize(
    ("difference", "expected"),
    [
        ({"dataset_digest": "sha256:other"}, "dataset digest sha256:data vs sha256:other"),
        ({"judge_model": "gpt-4o-2024-08-06"}, "judge model gpt-5.4-2026-03-05 vs gpt-4o-2024-08-06"),
        ({"prompts_digest": "prompts-v2"}, "judge prompts digest prompts-v1 vs prompts-v2"),
    ],
)
def test_runs_on_another_dataset_or_judge_are_not_compared(difference: dict[str, str], expected: str) -> None:
    base = baseline_scores()
    result = only(evaluate_gates(policy(SUPERIORITY), run(shifted(base, 0.5)), run(base, **difference)))
    assert result.verdict is INCONCLUSIVE
    assert result.explanation == f"mt-bench is not comparable: {expected}"


def test_results_without_provenance_are_compared_and_say_it_could_not_be_checked() -> None:
    base = baseline_scores()
    items = [i.as_dict() for i in items_of("mt-bench", base)]
    from_items = results_from_items(items)  # what `shinsa gate` reads from an items.jsonl
    result = only(evaluate_gates(policy(SUPERIORITY), run(shifted(base, 0.5)), from_items))
    assert result.verdict is PASSED
    assert "could not be checked: the baseline results do not record them" in result.explanation


def test_fewer_paired_questions_than_min_pairs_is_inconclusive_however_clear_the_difference() -> None:
    base = baseline_scores(19)
    candidate, baseline = run(shifted(base, 1.0)), run(base)
    result = only(evaluate_gates(policy(SUPERIORITY), candidate, baseline))
    assert result.verdict is INCONCLUSIVE and result.n_pairs == 19
    assert "only 19 paired questions, fewer than minPairs 20" in result.explanation
    assert result.observed == pytest.approx(1.0)
    assert only(evaluate_gates(policy(SUPERIORITY, minPairs=19), candidate, baseline)).verdict is PASSED


def test_only_questions_both_runs_scored_are_paired() -> None:
    base = baseline_scores(30)
    candidate = shifted(base, 0.5)
    for q in list(candidate)[:5]:
        candidate[q] = [[None, None, None], [None, None, None]]  # every item failed
    partial_baseline = dict(list(base.items())[:-5])
    result = only(evaluate_gates(policy(SUPERIORITY), run(candidate), run(partial_baseline)))
    assert result.n_pairs == 20 and result.verdict is PASSED


def test_an_incomplete_candidate_makes_every_rule_inconclusive() -> None:
    base = baseline_scores()
    rules = (SUPERIORITY, minimum(0), {"type": "maxErrorRate", "limit": 1})
    incomplete = run(shifted(base, 1.0), status=RunStatus.INCOMPLETE)
    decision = evaluate_gates(policy(*rules), incomplete, run(base))
    assert {r.verdict for r in decision.rules} == {INCONCLUSIVE}
    assert all("the candidate run is Incomplete" in r.explanation for r in decision.rules)
    assert decision.decision is INCONCLUSIVE


def test_an_incomplete_baseline_is_no_yardstick() -> None:
    base = baseline_scores()
    rules = (SUPERIORITY, minimum(0))
    decision = evaluate_gates(policy(*rules), run(shifted(base, 1.0)), run(base, status=RunStatus.INCOMPLETE))
    assert [r.verdict for r in decision.rules] == [INCONCLUSIVE, PASSED]
    assert "the baseline run is Incomplete" in decision.rules[0].explanation


# -- pairing -------------------------------------------------------------------------------------
def test_cells_pair_by_question_and_turn_averaged_over_the_repeats_that_scored() -> None:
    candidate: QuestionTable = {
        "a": {"1": [8.0, None, 6.0], "2": [5.0, 5.0, 5.0]},
        "b": {"1": [9.0, 9.0, 9.0]},
    }
    baseline: QuestionTable = {
        "a": {"1": [4.0, 4.0, 4.0], "2": [None, None, None]},
        "b": {"1": [3.0, 5.0, None]},
    }
    paired = pair_tables(candidate, baseline)
    # a: only turn 1 pairs (turn 2 of the baseline failed): 7 - 4; b: 9 - 4.
    assert paired.differences.sums.tolist() == [3.0, 5.0]
    assert paired.differences.counts.tolist() == [1.0, 1.0]
    assert paired.candidate.mean == pytest.approx(8.0) and paired.baseline.mean == pytest.approx(4.0)


def test_item_clusters_hold_each_questions_items() -> None:
    clusters = item_clusters({"a": {"1": [8.0, None], "2": [6.0, 4.0]}, "b": {"1": [None, None]}})
    assert clusters.sums.tolist() == [18.0] and clusters.counts.tolist() == [3.0]


def test_repeating_a_questions_turns_and_repeats_does_not_narrow_the_interval() -> None:
    """A question is one cluster: copying its items is not more evidence, as an item-level bootstrap
    would count it."""
    rng = np.random.default_rng(11)
    diffs = [float(d) for d in rng.normal(0.3, 1.0, size=30)]
    base = questions([5.0] * 30, turns=1, repeats=1)
    many = questions([5.0] * 30, turns=2, repeats=3)
    one = only(evaluate_gates(policy(SUPERIORITY), run(shifted(base, diffs)), run(base)))
    copied = only(evaluate_gates(policy(SUPERIORITY), run(shifted(many, diffs)), run(many)))
    assert copied.ci_low == pytest.approx(one.ci_low) and copied.ci_high == pytest.approx(one.ci_high)


# -- shinsa gate ---------------------------------------------------------------------------------
runner = CliRunner()


def _write(tmp_path: Path, name: str, results: RunResults) -> Path:
    directory = tmp_path / name
    directory.mkdir()
    write_results(results, directory)
    return directory


def _policy_file(tmp_path: Path, *rules: dict[str, Any], **options: Any) -> Path:
    path = tmp_path / "gates.yaml"
    path.write_text(yaml.safe_dump({"rules": list(rules), **options}), encoding="utf-8")
    return path


def _gate(*args: str | Path) -> Any:
    return runner.invoke(app, ["gate", *map(str, args)])


@pytest.fixture
def runs(tmp_path: Path) -> dict[str, Path]:
    base = baseline_scores()
    return {
        "baseline": _write(tmp_path, "baseline", run(base, served_name="champion")),
        "better": _write(tmp_path, "better", run(shifted(base, 0.5))),
        "worse": _write(tmp_path, "worse", run(shifted(base, -0.5))),
    }


@pytest.mark.parametrize(("candidate", "code"), [("better", 0), ("worse", 1)])
def test_gate_exits_0_when_passed_and_1_when_failed(
    tmp_path: Path, runs: dict[str, Path], candidate: str, code: int
) -> None:
    result = _gate("-c", runs[candidate], "-b", runs["baseline"], "-p", _policy_file(tmp_path, SUPERIORITY))
    assert result.exit_code == code, result.output
    assert ("Passed" if code == 0 else "Failed") in result.output
    assert "champion" in result.output


def test_gate_without_a_baseline_exits_3_inconclusive(tmp_path: Path, runs: dict[str, Path]) -> None:
    result = _gate("-c", runs["better"], "-p", _policy_file(tmp_path, SUPERIORITY), "-o", "json")
    assert result.exit_code == 3, result.output
    out = json.loads(result.stdout)
    assert out["decision"] == "Inconclusive"
    assert "no baseline" in out["rules"][0]["explanation"]


def test_gate_json_holds_the_decision_and_every_rules_numbers(tmp_path: Path, runs: dict[str, Path]) -> None:
    policy_file = _policy_file(tmp_path, SUPERIORITY, non_inferiority(0.1), confidence=0.9)
    result = _gate(
        "--candidate", runs["better"] / "scores.json", "--baseline", runs["baseline"],
        "--policy", policy_file, "--seed", "5", "-o", "json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["decision"] == "Passed" and out["seed"] == 5 and out["confidence"] == 0.9
    first = out["rules"][0]
    assert first["type"] == "superiority" and first["verdict"] == "Passed" and first["n_pairs"] == 30
    assert first["observed"] == pytest.approx(0.5) and first["ci_low"] == pytest.approx(0.5)
    assert {"bound", "ci_high", "explanation", "benchmark", "metric"} <= set(first)


def test_gate_reads_an_items_jsonl(tmp_path: Path, runs: dict[str, Path]) -> None:
    items = tmp_path / "items.jsonl"
    rows = [i.as_dict() for i in items_of("mt-bench", baseline_scores())]
    items.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    result = _gate("-c", runs["better"], "-b", items, "-p", _policy_file(tmp_path, SUPERIORITY), "-o", "json")
    assert result.exit_code == 0, result.output
    assert "could not be checked" in json.loads(result.stdout)["rules"][0]["explanation"]


def test_gate_takes_the_gates_of_an_evalrun_manifest(tmp_path: Path, runs: dict[str, Path]) -> None:
    manifest = tmp_path / "evalrun.yaml"
    manifest.write_text(
        yaml.safe_dump({"kind": "EvalRun", "spec": {"gates": {"rules": [SUPERIORITY]}}}), encoding="utf-8"
    )
    assert _gate("-c", runs["better"], "-b", runs["baseline"], "-p", manifest).exit_code == 0


@pytest.mark.parametrize(
    ("policy_text", "message"),
    [
        ("rules:\n- type: nonInferiority\n  benchmark: mt-bench\n", "rules[0]: spec.gates.rules[].margin"),
        ("minpairs: 3\nrules:\n- type: superiority\n  benchmark: mt-bench\n", "minpairs: Extra inputs"),
        ("rules:\n- type: best\n  benchmark: mt-bench\n", "rules[0].type: Input should be"),
        ("confidence: 1.5\nrules: []\n", "confidence: Input should be less than 1"),
        ("rules: [unclosed\n", "not YAML"),
        ("- just a list\n", "expected a mapping"),
    ],
)
def test_an_invalid_policy_exits_2_naming_the_field(
    tmp_path: Path, runs: dict[str, Path], policy_text: str, message: str
) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(policy_text, encoding="utf-8")
    result = _gate("-c", runs["better"], "-b", runs["baseline"], "-p", path)
    assert result.exit_code == 2
    assert message in " ".join(result.stderr.split()), result.stderr


def test_unreadable_results_exit_2(tmp_path: Path, runs: dict[str, Path]) -> None:
    policy_file = _policy_file(tmp_path, SUPERIORITY)
    missing = _gate("-c", tmp_path / "nowhere", "-b", runs["baseline"], "-p", policy_file)
    assert missing.exit_code == 2 and "cannot read" in missing.stderr
    (tmp_path / "broken.json").write_text("{not json", encoding="utf-8")
    broken = _gate("-c", runs["better"], "-b", tmp_path / "broken.json", "-p", policy_file)
    assert broken.exit_code == 2 and "not JSON" in broken.stderr


def test_gate_help_explains_the_rules_and_exit_codes() -> None:
    result = runner.invoke(app, ["gate", "--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    for word in ("minimum", "nonInferiority", "superiority", "maxErrorRate", "maxViolationRate", "minPairs"):
        assert word in text
    assert "0 Passed, 1 Failed, 3 Inconclusive, 2 bad input" in text
