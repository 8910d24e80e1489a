"""The results directory: scores.json (`results.RunResults`), items.jsonl, generations and judgments
JSONL, config.json, plots."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from shinsa.evaluation.config import EvalConfig
from shinsa.evaluation.progress import Reporter
from shinsa.evaluation.records import Item
from shinsa.evaluation.results import (
    ITEMS_FILE,
    SCORES_FILE,
    ResultsError,
    RunResults,
    read_results,
    write_results,
)
from shinsa.evaluation.scoring import json_safe, results_from_items

SCORES = SCORES_FILE
ITEMS = ITEMS_FILE
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
    out: Path,
    results: RunResults,
    items: Sequence[Item],
    generations: Sequence[dict[str, Any]],
    judgments: Sequence[dict[str, Any]],
    config: EvalConfig,
    reporter: Reporter,
) -> RunResults:
    """Write the results directory; returns the results with the plots that were written."""
    out.mkdir(parents=True, exist_ok=True)
    _write_jsonl(out / ITEMS, (item.as_dict() for item in items))
    _write_jsonl(out / GENERATIONS, sorted(generations, key=_order))
    _write_jsonl(out / JUDGMENTS, sorted(judgments, key=_order))
    _write_json(out / CONFIG, resolved_config(config))
    try:
        from shinsa.evaluation.plots import write_plots

        plots = [str(p.relative_to(out)) for p in write_plots(results, out / PLOTS)]
    except ImportError as exc:
        reporter.event("plots skipped: matplotlib is not importable", error=str(exc))
        plots = []
    results = results.model_copy(update={"plots": plots})
    write_results(results, out)
    return results


def publish_results(out: Path, uri: str) -> list[str]:
    """Upload the results files of `out` under `uri` (`s3://bucket/prefix`), the way a cluster's
    controller reads them back; returns the keys written. scores.json goes last, so that whoever
    finds it finds the files it describes. Plots stay in MLflow."""
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ResultsError(f"engine.resultsUri: {uri!r} is not an s3://bucket/prefix URI")
    import boto3

    s3 = boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None)
    prefix = parsed.path.strip("/")
    written = []
    for name in (ITEMS, GENERATIONS, JUDGMENTS, CONFIG, SCORES):
        if (out / name).is_file():
            key = f"{prefix}/{name}" if prefix else name
            s3.upload_file(str(out / name), parsed.netloc, key)
            written.append(key)
    return written


def read_items(path: Path) -> list[dict[str, Any]]:
    try:
        with path.open(encoding="utf-8") as handle:
            return [json.loads(line) for line in handle if line.strip()]
    except OSError as exc:
        raise ResultsError(f"{path}: cannot read: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise ResultsError(f"{path}: not JSON lines: {exc}") from None


def load_results(path: str | Path) -> RunResults:
    """Results from a results directory, its scores.json, or an items.jsonl alone (whose provenance,
    the dataset digest and the judge's model and prompts, is then unknown)."""
    file = Path(path)
    if file.suffix == ".jsonl":
        try:
            return results_from_items(read_items(file), source=str(file))
        except (KeyError, TypeError) as exc:
            raise ResultsError(f"{file}: not an items.jsonl of shinsa eval run: {exc}") from None
    return read_results(file)
