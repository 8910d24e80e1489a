"""What the MLflow UI shows of a run, as built before anything is sent: the run's span, the dataset
inputs, the sample of traces, the trace option, and the gate table and plot."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shinsa.evaluation.config import DEFAULT_MLFLOW_TRACES, EngineOptions
from shinsa.evaluation.mlflow_log import dataset_inputs, run_span_ms, trace_units
from shinsa.evaluation.results import DatasetInfo
from shinsa.registry.gate_plot import TABLE_COLUMNS, gate_chart, gate_table
from tests.support.results import items_of, results_of

pytestmark = pytest.mark.unit

DIGEST = "sha256:" + "ab" * 32


def _results() -> Any:
    items = items_of("mt-bench", {"q1": [[7.0, 8.0], [6.0, None]], "q2": [[5.0, 5.0], [4.0, 3.0]]})
    return items, results_of(items, dataset_digest=DIGEST)


def test_the_run_spans_the_evaluation() -> None:
    _, results = _results()
    timed = results.model_copy(update={"started_at": 1_700_000_000.25, "wall_time_s": 10.5})
    assert run_span_ms(timed) == (1_700_000_000_250, 1_700_000_010_750)
    # Results without a start time end now and last their wall time.
    untimed = results.model_copy(update={"started_at": None, "wall_time_s": 2.0})
    assert run_span_ms(untimed, now=100.0) == (98_000, 100_000)


def test_each_dataset_is_an_evaluation_input_with_its_digest() -> None:
    _, results = _results()
    [dataset_input] = dataset_inputs(results)
    dataset = dataset_input.dataset
    assert dataset.name == "mt-bench"
    # MLflow keeps 36 characters of a digest; the profile keeps the whole one.
    assert dataset.digest == ("ab" * 32)[:36]
    assert json.loads(dataset.profile)["digest"] == DIGEST
    assert json.loads(dataset.source) == {"uri": "/data/mt-bench"}
    assert dataset.source_type == "local"
    assert [(t.key, t.value) for t in dataset_input.tags] == [("mlflow.data.context", "evaluation")]


def test_dataset_uris_lose_their_credentials() -> None:
    _, results = _results()
    bench = results.benchmarks["mt-bench"]
    secret = bench.model_copy(
        update={"dataset": DatasetInfo(uri="https://user:hunter2secret@data.example/mt", digest=DIGEST)}
    )
    [dataset_input] = dataset_inputs(results.model_copy(update={"benchmarks": {"mt-bench": secret}}))
    assert "hunter2secret" not in dataset_input.dataset.source
    assert dataset_input.dataset.source_type == "https"


def _records(items: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    keys = [
        {"benchmark": i.benchmark, "question_id": i.question_id, "turn": i.turn, "repeat": i.repeat}
        for i in items
    ]
    gens = [{**k, "kind": "generation", "answer": "a", "latency_s": 0.5} for k in keys]
    judged = [{**k, "kind": "judgment", "judge": "gpt", "score": 1.0, "judgment": "ok"} for k in keys]
    return gens, judged


def test_every_unit_is_traced_with_its_generation_and_judgments() -> None:
    items, _ = _results()
    gens, judged = _records(items)
    units = trace_units(items, gens, judged, None)
    assert len(units) == 8
    assert all(u.generation is not None and set(u.judgments) == {"gpt"} for u in units)
    assert units[0].name == "mt-bench/q1/turn-1/repeat-0"


def test_a_limited_sample_is_spread_over_the_units() -> None:
    items, _ = _results()
    gens, judged = _records(items)
    units = trace_units(items, gens, judged, 4)
    assert len(units) == 4
    # Every other unit: both questions are in the sample, not only the first units.
    assert [u.name for u in units] == [u.name for u in trace_units(items, gens, judged, None)[::2]]
    assert {u.question_id for u in units} == {"q1", "q2"}
    assert trace_units(items, gens, judged, 100) == trace_units(items, gens, judged, None)


@pytest.mark.parametrize(("value", "limit"), [("all", None), ("none", 0), (5, 5), (0, 0)])
def test_the_trace_option(value: Any, limit: int | None) -> None:
    assert EngineOptions.model_validate({"mlflowTraces": value}).trace_limit == limit


def test_the_trace_option_defaults_to_a_sample_and_refuses_nonsense() -> None:
    assert EngineOptions().trace_limit == DEFAULT_MLFLOW_TRACES
    for bad in (-1, "some"):
        with pytest.raises(ValueError, match="mlflowTraces"):
            EngineOptions.model_validate({"mlflowTraces": bad})


DECISION = {
    "decision": "Failed",
    "confidence": 0.95,
    "draws": 500,
    "rules": [
        {
            "rule": 0,
            "type": "nonInferiority",
            "benchmark": "mt-bench",
            "metric": "score",
            "verdict": "Failed",
            "observed": -0.8,
            "bound": -0.5,
            "ci_low": -1.2,
            "ci_high": -0.6,
            "n_pairs": 30,
            "explanation": "worse",
        },
        {
            "rule": 1,
            "type": "maxErrorRate",
            "verdict": "Passed",
            "observed": 0.0,
            "bound": 0.05,
            "explanation": "ok",
        },
        {"rule": 2, "type": "superiority", "verdict": "Inconclusive", "explanation": "no baseline"},
    ],
}


def test_the_gate_table_is_an_mlflow_table_of_every_rule() -> None:
    table = gate_table(DECISION)
    assert table["columns"] == list(TABLE_COLUMNS)
    assert [row[0] for row in table["data"]] == [0, 1, 2]
    first = dict(zip(table["columns"], table["data"][0], strict=True))
    assert first["verdict"] == "Failed" and first["observed"] == -0.8 and first["bound"] == -0.5
    json.dumps(table, allow_nan=False)


def test_the_gate_plot_is_a_png_and_none_without_numbers() -> None:
    png = gate_chart(DECISION)
    assert png is not None and png.startswith(b"\x89PNG")
    assert gate_chart({**DECISION, "rules": [DECISION["rules"][2]]}) is None  # type: ignore[index]
