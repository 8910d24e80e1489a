"""`shinsa eval compare`: models x benchmarks, paired differences with question-bootstrap intervals,
rank stability, the judge-swap check, per-length long context, and refusing runs that differ."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from shinsa.api.gates import GatePolicy
from shinsa.cli import app
from shinsa.commands.compare import DEFAULT_DRAWS as CLI_DRAWS
from shinsa.evaluation.compare import (
    DEFAULT_DRAWS,
    YARN_CAVEAT,
    CompareError,
    NotComparable,
    Source,
    compare,
)
from shinsa.evaluation.records import Item
from shinsa.evaluation.results import JudgeInfo, RunResults, RunStatus, write_results
from shinsa.gates import DEFAULT_DRAWS as GATES_DRAWS
from shinsa.gates import evaluate_gates
from tests.support.results import items_of, results_of

pytestmark = pytest.mark.unit

Scores = dict[str, list[list[float | None]]]
DRAWS = 2000


def base_scores(n: int = 40, seed: int = 7) -> Scores:
    """n questions, 2 turns, 3 repeats, each repeat scored with a little noise around the question's level."""
    rng = np.random.default_rng(seed)
    levels = rng.integers(3, 9, size=n)
    return {
        f"q{i:02d}": [[float(level + rng.normal(0, 0.3)) for _ in range(3)] for _ in range(2)]
        for i, level in enumerate(levels)
    }


def shifted(scores: Scores, deltas: list[float]) -> Scores:
    return {
        q: [[None if v is None else v + d for v in turn] for turn in turns]
        for (q, turns), d in zip(scores.items(), deltas, strict=True)
    }


def source(items: list[Item], name: str, **provenance: Any) -> Source:
    return Source(results=results_of(items, served_name=name, **provenance), source=f"/results/{name}")


def run(scores: Scores, name: str, benchmark: str = "mt-bench", **provenance: Any) -> Source:
    return source(items_of(benchmark, scores), name, **provenance)


def test_a_model_better_by_a_known_amount_ranks_first_with_an_interval_excluding_zero() -> None:
    base = base_scores()
    rng = np.random.default_rng(1)
    deltas = [float(d) for d in rng.normal(1.0, 0.5, size=len(base))]
    better = run(shifted(base, deltas), "better")
    worse = run(shifted(base, [-d for d in deltas]), "worse")
    middle = run(base, "middle")

    comparison = compare([middle, better, worse], draws=DRAWS, seed=3)

    diff = next(d for d in comparison.differences if (d.a, d.b) == ("middle", "better"))
    # Every question's cells moved by its delta, so the paired mean difference is minus their mean.
    assert diff.difference == pytest.approx(-float(np.mean(deltas)))
    assert diff.ci_high is not None and diff.ci_high < 0
    assert diff.n_pairs == len(base)
    assert diff.reading() == "better better"
    ranks = {r.run: r for r in comparison.ranks}
    assert [ranks[m].rank for m in ("better", "middle", "worse")] == [1, 2, 3]
    assert ranks["better"].shares[0] > 0.99
    assert all(sum(r.shares) == pytest.approx(1.0) for r in comparison.ranks)
    cells = {c.run: c for c in comparison.table}
    assert (
        cells["better"].mean
        == results_of(items_of("mt-bench", shifted(base, deltas))).benchmarks["mt-bench"].mean
    )
    assert cells["better"].std is not None and cells["better"].n_questions == len(base)
    assert not comparison.mismatched


def test_equal_models_interval_includes_zero_and_ranks_are_unstable() -> None:
    base = base_scores()
    rng = np.random.default_rng(2)
    noise = rng.normal(0.0, 0.5, size=len(base))
    noise -= noise.mean()  # the same mean, different questions up and down
    comparison = compare([run(base, "a"), run(shifted(base, [float(x) for x in noise]), "b")], draws=DRAWS)

    (diff,) = comparison.differences
    assert diff.difference == pytest.approx(0.0, abs=1e-12)
    assert diff.ci_low is not None and diff.ci_high is not None
    assert diff.ci_low < 0 < diff.ci_high
    assert diff.reading() == "no clear difference"
    assert all(0.1 < r.shares[0] < 0.9 for r in comparison.ranks)


def test_the_difference_is_the_one_shinsa_gate_computes() -> None:
    base = base_scores()
    deltas = [float(d) for d in np.random.default_rng(4).normal(0.3, 0.8, size=len(base))]
    cand, baseline = run(shifted(base, deltas), "cand"), run(base, "base")
    (diff,) = compare([cand, baseline], draws=DRAWS, seed=5).differences
    policy = GatePolicy.model_validate({"rules": [{"type": "superiority", "benchmark": "mt-bench"}]})
    (rule,) = evaluate_gates(policy, cand.results, baseline.results, seed=5, draws=DRAWS).rules
    # The same cells, questions and draws; only the order of a question's turns in its sum may differ.
    assert (diff.difference, diff.ci_low, diff.ci_high) == pytest.approx(
        (rule.observed, rule.ci_low, rule.ci_high)
    )
    assert diff.n_pairs == rule.n_pairs


@pytest.mark.parametrize(
    ("provenance", "field", "values"),
    [
        ({"dataset_digest": "sha256:other"}, "dataset.digest", ("sha256:data", "sha256:other")),
        ({"judge_model": "gpt-4o"}, "judge_model", ("gpt-5.4-2026-03-05", "gpt-4o")),
        ({"prompts_digest": "prompts-v2"}, "judge_prompts_digest", ("prompts-v1", "prompts-v2")),
    ],
)
def test_runs_that_differ_are_refused_naming_the_field_the_runs_and_their_values(
    provenance: dict[str, Any], field: str, values: tuple[str, str]
) -> None:
    base = base_scores()
    with pytest.raises(NotComparable) as refused:
        compare([run(base, "llm-jp-4"), run(base, "qwen3", **provenance)])
    message = str(refused.value)
    assert f"mt-bench: {field} differs: llm-jp-4={values[0]}, qwen3={values[1]}" in message
    assert "--allow-mismatch" in message


def test_judge_sampling_and_generation_settings_are_checked() -> None:
    base = base_scores()

    def judge(temperature: float) -> JudgeInfo:
        return JudgeInfo(name="gpt", model="m", endpoint="http://j", sampling={"temperature": temperature})

    with pytest.raises(NotComparable) as refused:
        compare(
            [
                run(base, "a", judges=[judge(0.0)], generation_digest="g1"),
                run(base, "b", judges=[judge(1.0)], generation_digest="g2"),
            ]
        )
    fields = {m.field: m.values for m in refused.value.mismatches}
    assert fields["judges.gpt.sampling"] == {"a": "temperature=0.0", "b": "temperature=1.0"}
    assert fields["generation_digest"] == {"a": "g1", "b": "g2"}


def test_allow_mismatch_compares_and_marks_the_comparison() -> None:
    base = base_scores()
    comparison = compare(
        [run(base, "a"), run(base, "b", judge_model="gpt-4o")], allow_mismatch=True, draws=DRAWS
    )
    assert comparison.mismatched
    assert [(m.benchmark, m.field) for m in comparison.mismatches] == [("mt-bench", "judge_model")]
    assert json.loads(comparison.to_json())["mismatched"] is True
    assert len(comparison.differences) == 1


def test_results_without_provenance_are_compared_with_a_note_not_refused() -> None:
    base = base_scores()
    comparison = compare([run(base, "a"), run(base, "b", dataset_digest=None, judge_model=None)], draws=DRAWS)
    assert not comparison.mismatched
    assert any("could not be checked" in n and "b" in n for n in comparison.notes)


def test_generated_runs_are_refused() -> None:
    base = base_scores()
    with pytest.raises(CompareError, match=r"only-answers .*Generated"):
        compare([run(base, "a"), run(base, "only-answers", status=RunStatus.GENERATED)])


def test_fewer_than_two_runs_or_no_common_benchmark_is_refused() -> None:
    base = base_scores()
    with pytest.raises(CompareError, match="at least two"):
        compare([run(base, "a")])
    with pytest.raises(CompareError, match="no benchmark in common"):
        compare([run(base, "a"), run(base, "b", benchmark="mt-bench-ja")])


def judged(levels: list[float], judges: dict[str, float], name: str) -> Source:
    """One run whose answers each judge scored at the question's level times the judge's factor."""
    items: list[Item] = []
    for judge, factor in judges.items():
        scores: Scores = {f"q{i}": [[level * factor + (i % 3) * 0.1] * 2] for i, level in enumerate(levels)}
        items += items_of("mt-bench", scores, judge=judge)
    return source(items, name)


def test_judge_swap_identical_rankings_agree_with_tau_one() -> None:
    runs = [judged([v] * 12, {"gpt": 1.0, "claude": 0.8}, name) for v, name in ((7, "a"), (5, "b"), (3, "c"))]
    comparison = compare(runs, draws=DRAWS)
    (swap,) = comparison.judge_ranks
    assert swap.ranks["gpt"] == swap.ranks["claude"] == {"a": 1, "b": 2, "c": 3}
    (agreement,) = swap.agreement
    assert agreement.judges == ("gpt", "claude")
    assert agreement.kendall_tau == pytest.approx(1.0)
    assert agreement.spearman == pytest.approx(1.0)
    assert agreement.n_models == 3


def test_judge_swap_reversed_rankings_have_tau_minus_one() -> None:
    runs = [
        source(
            items_of("mt-bench", {f"q{i}": [[v] * 2] for i in range(12)}, judge="gpt")
            + items_of("mt-bench", {f"q{i}": [[10 - v] * 2] for i in range(12)}, judge="claude"),
            name,
        )
        for v, name in ((7.0, "a"), (5.0, "b"), (3.0, "c"))
    ]
    (swap,) = compare(runs, draws=DRAWS).judge_ranks
    assert swap.ranks["claude"] == {"a": 3, "b": 2, "c": 1}
    (agreement,) = swap.agreement
    assert agreement.kendall_tau == pytest.approx(-1.0)
    assert agreement.spearman == pytest.approx(-1.0)


def _accuracy_at(length: str) -> Callable[[float], dict[str, float]]:
    def metrics(score: float) -> dict[str, float]:
        return {f"{length}/accuracy": score}

    return metrics


def long_context_run(accuracy: dict[str, list[float]], name: str, rope: str | None) -> Source:
    items: list[Item] = []
    for length, values in accuracy.items():
        scores: Scores = {f"{length}-q{i}": [[v]] for i, v in enumerate(values)}
        items += items_of(
            "long-context", scores, judge="match", category=length, item_metrics=_accuracy_at(length)
        )

    def metrics(done: Any) -> dict[str, float]:
        return {f"{c}/accuracy": float(np.mean(v)) for c, v in accuracy.items()} | {"8k/latency_s_p50": 1.0}

    return source(
        items,
        name,
        judge_model=None,
        prompts_digest=None,
        metrics={"long-context": metrics},
        rope_scaling=rope,
    )


def test_long_context_lengths_side_by_side_with_the_yarn_caveat_when_one_side_uses_it() -> None:
    native = {"8k": [1.0] * 10, "32k": [1.0] * 6 + [0.0] * 4}
    yarn = {"8k": [1.0] * 8 + [0.0] * 2, "32k": [1.0] * 7 + [0.0] * 3}
    comparison = compare(
        [long_context_run(native, "qwen3", None), long_context_run(yarn, "qwen3", "yarn x4")], draws=DRAWS
    )
    assert [r.label for r in comparison.runs] == ["qwen3 (native)", "qwen3 (yarn x4)"]
    (lc,) = comparison.long_context
    assert lc.caveat == YARN_CAVEAT
    rows = {(r.length, r.metric): r.values for r in lc.rows}
    assert rows[("8k", "accuracy")] == {"qwen3 (native)": 1.0, "qwen3 (yarn x4)": 0.8}
    assert [r.length for r in lc.rows if r.metric == "accuracy"] == ["8k", "32k"]
    per_length = {d.metric: d for d in comparison.differences}
    assert per_length["8k/accuracy"].difference == pytest.approx(0.2)
    assert per_length["32k/accuracy"].difference == pytest.approx(-0.1)

    both = compare(
        [long_context_run(native, "a", "yarn x4"), long_context_run(yarn, "b", "yarn x4")], draws=DRAWS
    )
    assert both.long_context[0].caveat is None


def test_compare_draws_as_many_as_the_gates() -> None:
    assert CLI_DRAWS == DEFAULT_DRAWS == GATES_DRAWS


def write_run(tmp_path: Path, results: RunResults, name: str) -> Path:
    directory = tmp_path / name
    directory.mkdir()
    write_results(results, directory)
    return directory


def test_cli_writes_compare_json_and_png(tmp_path: Path) -> None:
    base = base_scores()
    deltas = [1.0] * len(base)
    a = write_run(
        tmp_path, results_of(items_of("mt-bench", shifted(base, deltas)), served_name="llm-jp-4"), "a"
    )
    b = write_run(tmp_path, results_of(items_of("mt-bench", base), served_name="qwen3"), "b")
    out = tmp_path / "out"
    runner = CliRunner()

    result = runner.invoke(
        app, ["eval", "compare", str(a), str(b), "--output", str(out), "--draws", "500", "--json"]
    )

    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    written = json.loads((out / "compare.json").read_text(encoding="utf-8"))
    assert printed == written
    assert written["differences"][0]["difference"] == pytest.approx(1.0)
    assert written["ranks"][0]["run"] == "llm-jp-4" and written["ranks"][0]["rank"] == 1
    assert (out / "compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    table = runner.invoke(app, ["eval", "compare", str(a), str(b), "--draws", "500"], env={"COLUMNS": "200"})
    assert table.exit_code == 0, table.output
    assert "Paired differences" in table.stdout and "llm-jp-4 better" in table.stdout


def test_cli_refuses_mismatched_runs_and_marks_them_when_allowed(tmp_path: Path) -> None:
    base = base_scores()
    a = write_run(tmp_path, results_of(items_of("mt-bench", base), served_name="a"), "a")
    b = write_run(tmp_path, results_of(items_of("mt-bench", base), served_name="b", prompts_digest="p2"), "b")
    runner = CliRunner()

    refused = runner.invoke(app, ["eval", "compare", str(a), str(b)])
    assert refused.exit_code == 3
    assert "mt-bench: judge_prompts_digest differs: a=prompts-v1, b=p2" in refused.stderr

    allowed = runner.invoke(
        app, ["eval", "compare", str(a), str(b), "--allow-mismatch", "--draws", "500"], env={"COLUMNS": "200"}
    )
    assert allowed.exit_code == 0, allowed.output
    assert "[MISMATCHED]" in allowed.stdout and "MISMATCH: mt-bench: judge_prompts_digest" in allowed.stdout


def test_cli_unreadable_or_generated_runs_are_bad_input(tmp_path: Path) -> None:
    base = base_scores()
    a = write_run(tmp_path, results_of(items_of("mt-bench", base), served_name="a"), "a")
    gen = write_run(
        tmp_path, results_of(items_of("mt-bench", base), served_name="g", status=RunStatus.GENERATED), "g"
    )
    runner = CliRunner()
    missing = runner.invoke(app, ["eval", "compare", str(a), str(tmp_path / "nowhere")])
    assert missing.exit_code == 2 and "cannot read" in missing.stderr
    generated = runner.invoke(app, ["eval", "compare", str(a), str(gen)])
    assert generated.exit_code == 2 and "Generated" in generated.stderr
    no_uri = runner.invoke(app, ["eval", "compare", str(a), "mlflow:abc123"], env={"MLFLOW_TRACKING_URI": ""})
    assert no_uri.exit_code == 2 and "--tracking-uri" in no_uri.stderr


def test_cli_reads_a_run_from_mlflow_by_its_id(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    from shinsa.evaluation.mlflow_log import TAG_KIND
    from shinsa.registry.evaluations import EVALUATION_KIND

    base = base_scores()
    local = write_run(tmp_path, results_of(items_of("mt-bench", base), served_name="llm-jp-4"), "local")
    logged = write_run(
        tmp_path,
        results_of(items_of("mt-bench", shifted(base, [0.5] * len(base))), served_name="qwen3"),
        "logged",
    )
    # A SQLite store is MLflow's own tracking store in a file: no server is started.
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("compare", artifact_location=str(tmp_path / "artifacts"))
    run_id = client.create_run(experiment, tags={TAG_KIND: EVALUATION_KIND}).info.run_id
    client.log_artifact(run_id, str(logged / "scores.json"))

    result = CliRunner().invoke(
        app,
        [
            "eval",
            "compare",
            str(local),
            f"mlflow:{run_id}",
            "--tracking-uri",
            uri,
            "--json",
            "--draws",
            "500",
        ],
    )

    assert result.exit_code == 0, result.output
    comparison = json.loads(result.stdout)
    assert [(r["label"], r["mlflow_run_id"]) for r in comparison["runs"]] == [
        ("llm-jp-4", None),
        ("qwen3", run_id),
    ]
    assert comparison["differences"][0]["difference"] == pytest.approx(-0.5)

    missing = CliRunner().invoke(
        app, ["eval", "compare", str(local), "mlflow:0123abcd", "--tracking-uri", uri]
    )
    assert missing.exit_code == 2 and "MLflow run 0123abcd" in missing.stderr


def test_joint_bootstrap_resamples_every_model_with_the_same_questions() -> None:
    from shinsa.evaluation import stats

    rng = np.random.default_rng(9)
    counts = rng.integers(1, 4, size=25).astype(float)
    a = rng.normal(5, 1, size=25) * counts
    joint = stats.joint_cluster_means(np.column_stack([a, a + counts]), counts, draws=3000, seed=11)
    # Column m of every draw is series m over the same drawn questions: b = a + 1 on every item.
    assert joint.shape == (3000, 2)
    assert np.allclose(joint[:, 1] - joint[:, 0], 1.0)
    alone = stats.cluster_mean_interval(a, counts, draws=3000, seed=11)
    assert (alone.ci_low, alone.ci_high) == pytest.approx(tuple(np.quantile(joint[:, 0], [0.025, 0.975])))
