"""What a run writes: JSON without NaN, MLflow-safe metric names, plots, and machine-readable logs."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import pytest

from shinsa.evaluation.mlflow_log import metric_name, run_metrics
from shinsa.evaluation.progress import JsonLinesReporter
from shinsa.evaluation.scoring import json_safe

pytestmark = pytest.mark.unit

SCORES = {
    "error_rate": 0.01,
    "wall_time_s": 12.5,
    "items": 100,
    "tokens": {"prompt": 1000, "completion": 500},
    "benchmarks": {
        "mt-bench-ja": {
            "mean": 7.5,
            "std": math.nan,
            "ci_low": 7.1,
            "ci_high": 7.9,
            "error_rate": 0.0,
            "primary_judge": "gpt",
            "categories": {
                "math": {"mean": 6.0, "ci_low": 5.0, "ci_high": 7.0, "std": 0.1},
                "人文": {"mean": 8.0, "ci_low": 7.5, "ci_high": 8.5, "std": 0.2},
            },
            "turns": {"1": {"mean": 7.7}},
            "judges": {"gpt": {"mean": 7.5}},
            "metrics": {},
            "judge_agreement": [],
        }
    },
}


def test_nan_becomes_null_in_json() -> None:
    assert json.dumps(json_safe({"a": [math.nan, 1.0, math.inf], "b": {"c": math.nan}})) == (
        '{"a": [null, 1.0, null], "b": {"c": null}}'
    )


def test_metric_names_keep_mlflow_happy_and_distinct() -> None:
    assert metric_name("mt-bench", "category", "math", "mean") == "mt-bench/category/math/mean"
    first = metric_name("mt-bench-ja", "category", "人文", "mean")
    second = metric_name("mt-bench-ja", "category", "理系", "mean")
    assert first != second
    assert all(c.isascii() for c in first)


def test_metrics_cover_headline_categories_and_skip_nan() -> None:
    metrics = run_metrics(SCORES)
    assert metrics["mt-bench-ja/mean"] == 7.5
    assert metrics["mt-bench-ja/score"] == 7.5
    assert metrics["mt-bench-ja/category/math/ci_low"] == 5.0
    assert metrics["mt-bench-ja/turn/1/mean"] == 7.7
    assert metrics["tokens/prompt"] == 1000
    assert "mt-bench-ja/std" not in metrics


def test_category_plot_is_written(tmp_path: Path) -> None:
    from shinsa.evaluation.plots import write_plots

    [path] = write_plots(SCORES, tmp_path)
    assert path.name == "mt-bench-ja-categories.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_json_log_lines_are_parseable_and_throttled() -> None:
    stream = io.StringIO()
    reporter = JsonLinesReporter(stream=stream, every_s=3600)
    reporter.benchmark_started("mt-bench", total=3, done=0)
    reporter.advance("mt-bench", 1, 0)
    reporter.advance("mt-bench", 1, 1)
    reporter.advance("mt-bench", 1, 0)
    reporter.benchmark_finished("mt-bench", mean=7.0)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["event"] for line in lines] == ["benchmark started", "progress", "benchmark finished"]
    assert lines[1] == {**lines[1], "done": 3, "total": 3, "errors": 1}
