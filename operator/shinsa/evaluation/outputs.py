"""The results directory: scores.json, items.jsonl, generations/judgments JSONL, config.json, plots."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shinsa.evaluation.config import EvalConfig
from shinsa.evaluation.progress import Reporter
from shinsa.evaluation.scoring import json_safe

if TYPE_CHECKING:
    from shinsa.evaluation.benchmarks import Benchmark
    from shinsa.evaluation.runner import RunResult

SCORES = "scores.json"
ITEMS = "items.jsonl"
GENERATIONS = "generations.jsonl"
JUDGMENTS = "judgments.jsonl"
CONFIG = "config.json"
PLOTS = "plots"
REDACTED = "<not logged>"


def _json_line(row: dict[str, Any]) -> str:
    # Most rows hold no NaN: serialize them as they are, and walk only a row the encoder refuses.
    try:
        return json.dumps(row, ensure_ascii=False, sort_keys=True, allow_nan=False)
    except ValueError:
        return json.dumps(json_safe(row), ensure_ascii=False, sort_keys=True)


def _write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        handle.writelines(_json_line(row) + "\n" for row in rows)
    tmp.replace(path)


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(json_safe(data), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)


def _order(record: dict[str, Any]) -> tuple[str, int, str, int, str]:
    return (
        str(record.get("benchmark")),
        int(record.get("repeat", 0)),
        str(record.get("question_id")),
        int(record.get("turn", 0)),
        str(record.get("judge") or ""),
    )


def resolved_config(config: EvalConfig) -> dict[str, Any]:
    """The configuration as run, safe to keep and to upload: key variables appear by name only (the
    config never holds keys), and `extraBody` by its keys only, since its values are free-form and
    may carry credentials. Its values still count in the checkpoint fingerprints."""
    data: dict[str, Any] = config.model_dump(mode="json", by_alias=True, exclude_none=True)
    for section in [data.get("model") or {}, *(data.get("judges") or [])]:
        if section.get("extraBody"):
            section["extraBody"] = {key: REDACTED for key in section["extraBody"]}
    return data


def write_outputs(
    result: RunResult, config: EvalConfig, benchmarks: Sequence[Benchmark], reporter: Reporter
) -> None:
    out = result.output_dir
    out.mkdir(parents=True, exist_ok=True)
    _write_jsonl(out / ITEMS, (item.as_dict() for item in result.items))
    _write_jsonl(out / GENERATIONS, sorted(result.generations, key=_order))
    _write_jsonl(out / JUDGMENTS, sorted(result.judgments, key=_order))
    _write_json(out / CONFIG, resolved_config(config))
    try:
        from shinsa.evaluation.plots import write_plots

        result.scores["plots"] = [str(p.relative_to(out)) for p in write_plots(result.scores, out / PLOTS)]
    except ImportError as exc:
        reporter.event("plots skipped: matplotlib is not importable", error=str(exc))
        result.scores["plots"] = []
    _write_json(out / SCORES, result.scores)


def write_scores(result: RunResult) -> None:
    _write_json(result.output_dir / SCORES, result.scores)


def read_items(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]
