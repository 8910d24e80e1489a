"""What a run writes: JSON without NaN, MLflow-safe metric names, plots, and machine-readable logs."""

from __future__ import annotations

import io
import json
import math
import re
import sys
from pathlib import Path

import pytest
from rich.console import Console

from shinsa.commands.eval import summary_table
from shinsa.evaluation.config import parse_config
from shinsa.evaluation.mlflow_log import metric_name, run_metrics
from shinsa.evaluation.outputs import resolved_config
from shinsa.evaluation.progress import JsonLinesReporter, RichReporter, make_reporter
from shinsa.evaluation.results import RunResults, RunStatus
from shinsa.evaluation.scoring import json_safe
from tests.support.results import items_of, results_of

pytestmark = pytest.mark.unit


def _scores() -> RunResults:
    """Two categories (one named in Japanese), one repeat (so the std is undefined)."""
    items = items_of(
        "mt-bench-ja",
        {"q1": [[6.0]], "q2": [[6.0]], "q3": [[9.0]], "q4": [[9.0]]},
        category={"q1": "math", "q2": "math", "q3": "人文", "q4": "人文"},
    )
    return results_of(items)


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
    metrics = run_metrics(_scores())
    assert metrics["mt-bench-ja/mean"] == 7.5
    assert metrics["mt-bench-ja/score"] == 7.5
    assert metrics["mt-bench-ja/category/math/ci_low"] == 6.0
    assert metrics["mt-bench-ja/turn/1/mean"] == 7.5
    assert metrics["tokens/prompt"] == 0
    assert "mt-bench-ja/std" not in metrics


def test_category_plot_is_written(tmp_path: Path) -> None:
    from shinsa.evaluation.plots import write_plots

    [path] = write_plots(_scores(), tmp_path)
    assert path.name == "mt-bench-ja-categories.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_json_log_lines_are_parseable_and_throttled() -> None:
    stream = io.StringIO()
    reporter = JsonLinesReporter(stream=stream, every_s=3600)
    reporter.benchmark_started("mt-bench", total=3, resumed=0)
    reporter.advance("mt-bench", 1, 0)
    reporter.advance("mt-bench", 1, 1)
    reporter.advance("mt-bench", 1, 0)
    reporter.benchmark_finished("mt-bench", mean=7.0)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["event"] for line in lines] == ["benchmark started", "progress", "benchmark finished"]
    assert lines[1] == {**lines[1], "done": 3, "total": 3, "errors": 1}


def test_progress_bars_on_a_terminal_json_lines_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    assert isinstance(make_reporter(None), JsonLinesReporter)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    rich = make_reporter(None)
    try:
        assert isinstance(rich, RichReporter)
    finally:
        rich.close()
    assert isinstance(make_reporter(True), JsonLinesReporter)


def test_rich_progress_shows_each_benchmark_with_its_errors() -> None:
    out = io.StringIO()
    reporter = RichReporter(Console(file=out, force_terminal=True, width=100, log_path=False))
    reporter.benchmark_started("mt-bench", total=4, resumed=0)
    reporter.advance("mt-bench", 3, 1)
    reporter.advance("mt-bench", 1, 0)
    reporter.benchmark_finished("mt-bench", mean=7.0)
    reporter.close()
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.getvalue())  # without terminal control codes
    assert "mt-bench" in text and "4/4" in text and "errors: 1" in text and "mean=7.0" in text


def test_summary_table_has_a_row_per_benchmark_and_judge() -> None:
    scores = {f"q{i}": [[7.0 if i % 2 else 7.5]] for i in range(4)}
    items = items_of("mt-bench", scores) + items_of("mt-bench", scores, judge="claude")
    items[0].score, items[0].error = None, "judge failed"
    results = results_of(items, served_name="llm-jp-4-8b", status=RunStatus.INCOMPLETE)
    out = io.StringIO()
    Console(file=out, width=120).print(summary_table(results))
    text = out.getvalue()
    assert "llm-jp-4-8b (Incomplete)" in text
    assert "gpt *" in text and "claude" in text  # the primary judge is marked
    assert "7.167" in text and "1/4" in text
    assert "-" in text  # an undefined std is a dash, not "nan"


def test_resolved_config_keeps_key_names_and_hides_extra_body_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUDGE_KEY", "sk-secret-value")
    config = parse_config(
        {
            "model": {
                "endpoint": "http://m:8000",
                "servedName": "m",
                "extraBody": {"chat_template_kwargs": {"token": "tok-secret"}},
            },
            "benchmarks": [{"name": "mt-bench", "dataset": {"uri": "/d"}}],
            "judges": [
                {
                    "name": "j",
                    "endpoint": "http://j",
                    "model": "jm",
                    "extraBody": {"api_key": "sk-other-secret"},
                }
            ],
            "engine": {"judgeApiKeyEnv": {"j": "JUDGE_KEY"}},
        }
    )
    data = resolved_config(config)
    text = json.dumps(data)
    assert "secret" not in text
    assert data["engine"]["judgeApiKeyEnv"] == {"j": "JUDGE_KEY"}
    assert data["model"]["extraBody"] == {"chat_template_kwargs": "<not logged>"}
    assert data["judges"][0]["extraBody"] == {"api_key": "<not logged>"}
    # The client still sends the real values.
    assert config.spec.judges[0].extra_body == {"api_key": "sk-other-secret"}
