"""The typed results: what the engine computes from items, how scores.json round-trips, and that a
reader of an unreadable or older file gets an error that says what to do, not a KeyError."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shinsa.evaluation import stats
from shinsa.evaluation.outputs import load_results
from shinsa.evaluation.records import Item
from shinsa.evaluation.results import ResultsError, RunResults, read_results, write_results
from shinsa.evaluation.scoring import summarize_benchmark
from tests.support.results import items_of, results_of

pytestmark = pytest.mark.unit


def _two_judges() -> list[Item]:
    items = []
    for q, (a, b) in enumerate([(8, 7), (6, 5), (4, 4), (9, 8)]):
        for repeat in range(2):
            items.append(Item("mt-bench", f"q{q}", "writing" if q < 2 else "math", 1, repeat, "a", score=a))
            items.append(Item("mt-bench", f"q{q}", "writing" if q < 2 else "math", 1, repeat, "b", score=b))
    items.append(Item("mt-bench", "q4", "math", 1, 0, "a", error="judge failed: boom"))
    return items


def test_the_headline_is_the_primary_judges_and_other_judges_are_compared() -> None:
    result = summarize_benchmark(_two_judges(), ["a", "b"], repeats=2)
    assert result.primary_judge == "a"
    assert result.mean == pytest.approx(6.75)
    assert result.judges["b"].mean == pytest.approx(6.0)
    assert result.categories["writing"].mean == pytest.approx(7.0)
    assert result.n_errors == 1 and result.error_rate == pytest.approx(1 / 17)
    [pair] = result.judge_agreement
    assert pair.judges == ("a", "b") and pair.spearman == pytest.approx(1.0)


def test_every_metric_a_gate_may_name_has_a_per_question_table() -> None:
    items = _two_judges()
    for item in items:
        item.criteria = {"helpfulness": (item.score or 0) / 2}
    result = summarize_benchmark(items, ["a", "b"], repeats=2)
    assert result.table("score") == {
        "q0": {"1": [8.0, 8.0]},
        "q1": {"1": [6.0, 6.0]},
        "q2": {"1": [4.0, 4.0]},
        "q3": {"1": [9.0, 9.0]},
        "q4": {"1": [None, None]},
    }
    assert result.table("judge/b")["q0"] == {"1": [7.0, 7.0]}  # type: ignore[index]
    assert result.table("criterion/helpfulness")["q3"] == {"1": [4.5, 4.5]}  # type: ignore[index]
    assert set(result.table("category/writing") or {}) == {"q0", "q1"}
    assert set(result.table("turn/1") or {}) == {"q0", "q1", "q2", "q3", "q4"}
    assert result.table("category/poetry") is None and result.table("no-such-metric") is None
    assert {"score", "judge/b", "criterion/helpfulness", "category/math", "turn/1"} <= set(
        result.metric_names()
    )


def test_a_group_covering_every_primary_item_reuses_the_headline_bootstrap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    items = [
        Item("mt-bench", f"q{q}", "writing", 1, repeat, judge, score=float((q * 3 + repeat) % 10 + 1))
        for q in range(30)
        for repeat in range(2)
        for judge in ("a", "b")
    ]
    calls = []
    real = stats.summarize
    monkeypatch.setattr(stats, "summarize", lambda *a, **k: calls.append(1) or real(*a, **k))
    result = summarize_benchmark(items, ["a", "b"], repeats=2)
    assert len(calls) == 2  # the primary judge's items, and judge b's
    assert result.categories["writing"] == result.turns["1"] == result.judges["a"]
    assert result.judges["a"].mean == result.mean


def test_scores_json_round_trips_with_nan_as_null(tmp_path: Path) -> None:
    results = results_of(items_of("mt-bench", {"q1": [[7.0]], "q2": [[5.0]]}))
    assert results.benchmarks["mt-bench"].std is None  # one repeat has no spread
    write_results(results, tmp_path)
    text = (tmp_path / "scores.json").read_text()
    assert "NaN" not in text and json.loads(text)["schema_version"] == 1
    assert read_results(tmp_path) == results


def test_an_old_scores_json_says_how_to_rewrite_it(tmp_path: Path) -> None:
    (tmp_path / "scores.json").write_text(json.dumps({"status": "Succeeded", "benchmarks": {}}))
    with pytest.raises(ResultsError, match=r"schema_version.*--resume"):
        read_results(tmp_path)


def test_a_broken_field_is_named(tmp_path: Path) -> None:
    data = json.loads(results_of(items_of("mt-bench", {"q1": [[7.0]]})).to_json())
    del data["benchmarks"]["mt-bench"]["primary_judge"]
    with pytest.raises(ResultsError, match=r"benchmarks\.mt-bench\.primary_judge"):
        RunResults.from_data(data, source="x/scores.json")
    with pytest.raises(ResultsError, match="not JSON"):
        RunResults.from_json("{", source="x")
    with pytest.raises(ResultsError, match="cannot read"):
        read_results(tmp_path / "missing")


def test_items_jsonl_alone_rebuilds_the_tables_without_provenance(tmp_path: Path) -> None:
    items = items_of("answer-carefully", {"q1": [[2.0, 4.0]], "q2": [[5.0, None]]})
    for item in items:
        if item.score is not None:
            item.metrics = {"violation_rate": float(item.score < 3)}
    path = tmp_path / "items.jsonl"
    path.write_text("".join(json.dumps(i.as_dict()) + "\n" for i in items))
    results = load_results(path)
    bench = results.benchmarks["answer-carefully"]
    assert results.repeats == 2 and bench.error_rate == pytest.approx(0.25)
    assert bench.table("violation_rate") == {"q1": {"1": [1.0, 0.0]}, "q2": {"1": [0.0, None]}}
    assert bench.dataset is None and bench.judge_model is None
    path.write_text('{"question": 1}\n')
    with pytest.raises(ResultsError, match=r"not an items\.jsonl"):
        load_results(path)
