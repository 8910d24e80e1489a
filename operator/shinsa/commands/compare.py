"""`shinsa eval compare`: compare models' evaluation results (the LLM-jp-4 report's stage B).

Exit codes: 0 compared; 2 bad input (unreadable results, a Generated run, fewer than two runs, no
benchmark in common); 3 not comparable (different datasets, prompts, judges or generation settings,
without --allow-mismatch).

Only typer is imported at module level: numpy, matplotlib, pydantic's models and MLflow load when
the command runs, not for `shinsa --help`.
"""

from __future__ import annotations

import enum
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from shinsa.evaluation.compare import Comparison, Source

MLFLOW_PREFIXES = ("mlflow:", "runs:/")
DEFAULT_DRAWS = 10_000
"""Bootstrap draws per interval: the gates' default (`shinsa.gates.DEFAULT_DRAWS`), kept as a literal
so that `--help` does not import numpy."""


class CompareExitCode(enum.IntEnum):
    COMPARED = 0
    BAD_INPUT = 2
    NOT_COMPARABLE = 3


class InputError(Exception):
    """A run that cannot be read; the message names it."""


def _run_id(source: str) -> str | None:
    for prefix in MLFLOW_PREFIXES:
        if source.startswith(prefix):
            return source.removeprefix(prefix).strip("/").split("/", 1)[0]
    return None


def load_source(source: str, tracking_uri: str | None) -> Source:
    """A run's results from a results directory (or its scores.json / items.jsonl), an MLflow run
    (`mlflow:<run id>` or `runs:/<run id>`) or an S3 results prefix (`s3://bucket/prefix`)."""
    from shinsa.evaluation.compare import Source
    from shinsa.evaluation.outputs import load_results
    from shinsa.evaluation.results import ITEMS_FILE, SCORES_FILE, ResultsError

    run_id = _run_id(source)
    if run_id is not None or source.startswith("s3://"):
        from shinsa.registry.evaluations import ResultsFetchError, fetch_mlflow_results, fetch_s3_results

        try:
            if run_id is None:
                results = fetch_s3_results(source, endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None)
            else:
                if not run_id:
                    raise InputError(f"{source}: no run id after the prefix")
                if not tracking_uri:
                    raise InputError(f"{source}: an MLflow run needs --tracking-uri (or MLFLOW_TRACKING_URI)")
                results = fetch_mlflow_results(run_id, tracking_uri=tracking_uri)
        except ResultsFetchError as exc:
            raise InputError(str(exc)) from None
        return Source(results=results, source=source)
    path = Path(source)
    if path.is_dir() and not (path / SCORES_FILE).exists() and (path / ITEMS_FILE).exists():
        path = path / ITEMS_FILE
    try:
        return Source(results=load_results(path), source=source)
    except ResultsError as exc:
        raise InputError(str(exc)) from None


def _fmt(value: float | None, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if value is not None and math.isfinite(value) else "-"


def _interval(low: float | None, high: float | None) -> str:
    return f"[{_fmt(low)}, {_fmt(high)}]"


def print_comparison(comparison: Comparison, console: Console) -> None:
    """The comparison as rich tables: scores, differences, ranks, judge swap, long context."""
    from rich.table import Table
    from rich.text import Text

    from shinsa.evaluation.progress import terminal_safe as safe

    confidence = f"{comparison.confidence * 100:g}%"
    marked = " [MISMATCHED]" if comparison.mismatched else ""
    scores = Table(title=f"Models x benchmarks{marked}")
    for column in ("benchmark", "model", "judge", "mean", "std", f"{confidence} CI", "questions", "errors"):
        scores.add_column(
            column,
            justify="left" if column in ("benchmark", "model", "judge") else "right",
            no_wrap=column.endswith("CI"),
        )
    for c in comparison.table:
        scores.add_row(
            safe(c.benchmark),
            safe(c.run),
            safe(c.judge),
            _fmt(c.mean),
            _fmt(c.std),
            _interval(c.ci_low, c.ci_high),
            str(c.n_questions),
            f"{c.n_errors}/{c.n_scored + c.n_errors}",
        )
    console.print(scores)

    diffs = Table(title=f"Paired differences a - b ({confidence} question-bootstrap CI){marked}")
    for column in ("benchmark", "metric", "a", "b", "a - b", "CI", "pairs", "reading"):
        diffs.add_column(
            column, justify="right" if column in ("a - b", "CI", "pairs") else "left", no_wrap=column == "CI"
        )
    for d in comparison.differences:
        diffs.add_row(
            safe(d.benchmark),
            safe(d.metric),
            safe(d.a),
            safe(d.b),
            _fmt(d.difference),
            _interval(d.ci_low, d.ci_high),
            str(d.n_pairs),
            Text(safe(d.reading()), style="bold" if d.excludes_zero else ""),
        )
    console.print(diffs)

    ranks = Table(title=f"Ranks and their stability ({comparison.draws} draws)")
    for column in ("benchmark", "model", "mean", "rank", "share of draws at rank 1, 2, ..."):
        ranks.add_column(column, justify="right" if column in ("mean", "rank") else "left")
    for r in comparison.ranks:
        shares = "  ".join(f"{i}: {share:.0%}" for i, share in enumerate(r.shares, start=1))
        ranks.add_row(safe(r.benchmark), safe(r.run), _fmt(r.mean), str(r.rank), shares)
    if comparison.ranks:
        console.print(ranks)

    for jr in comparison.judge_ranks:
        judges = list(jr.ranks)
        table = Table(
            title=f"{safe(jr.benchmark)}: judge swap (rank, mean per judge)", caption_justify="left"
        )
        table.add_column("model")
        for judge in judges:
            table.add_column(safe(judge), justify="right")
        for run in next(iter(jr.ranks.values())):
            table.add_row(safe(run), *(f"{jr.ranks[j][run]} ({_fmt(jr.means[j][run])})" for j in judges))
        caption = "; ".join(
            f"{safe(a.judges[0])} vs {safe(a.judges[1])}: Kendall tau {_fmt(a.kendall_tau, 2)}, "
            f"Spearman {_fmt(a.spearman, 2)} over {a.n_models} models"
            for a in jr.agreement
        )
        table.caption = caption
        console.print(table)

    for lc in comparison.long_context:
        runs = list(lc.rope_scaling)
        table = Table(title=f"{safe(lc.benchmark)}: per context length", caption_justify="left")
        table.add_column("length")
        table.add_column("metric")
        for run in runs:
            rope = lc.rope_scaling[run]
            shown = f"{run} ({rope})" if rope and rope not in run else run
            table.add_column(safe(shown), justify="right")
        for row in lc.rows:
            table.add_row(row.length, safe(row.metric), *(_fmt(row.values.get(run)) for run in runs))
        if lc.caveat:
            table.caption = f"caveat: {lc.caveat}"
        console.print(table)

    for m in comparison.mismatches:
        console.print(Text(f"MISMATCH: {safe(m.describe())}", style="bold red"))
    for note in comparison.notes:
        console.print(Text(f"note: {safe(note)}", style="yellow"))


def write_comparison(comparison: Comparison, directory: Path) -> list[Path]:
    """compare.json, and compare.png when matplotlib is importable and something was paired."""
    from shinsa.evaluation.compare import COMPARE_FILE

    directory.mkdir(parents=True, exist_ok=True)
    written = [directory / COMPARE_FILE]
    tmp = written[0].with_suffix(".json.tmp")
    tmp.write_text(comparison.to_json(), encoding="utf-8")
    tmp.replace(written[0])
    try:
        from shinsa.evaluation.compare_plot import COMPARE_PLOT, differences_chart
    except ImportError:
        return written
    png = differences_chart(comparison, directory / COMPARE_PLOT)
    return written + ([png] if png is not None else [])


HELP = "\n\n".join(
    (
        "Compare models' evaluation results: the LLM-jp-4 report's stage B.",
        "Each RUN is the results of `shinsa eval run`: a results directory (scores.json), a "
        "scores.json or items.jsonl, an MLflow run (mlflow:<run id> or runs:/<run id>, with "
        "--tracking-uri) or an S3 results prefix (s3://bucket/prefix).",
        "Prints, for the benchmarks every run has: each model's mean, std across repeats and CI; "
        "every pair's paired difference (by question and turn, averaged over repeats) with a "
        "question-cluster bootstrap CI, as `shinsa gate` computes it; each model's rank and the share "
        "of bootstrap draws in which it holds each rank; with several judges in every run, each "
        "judge's ranking and their agreement (Kendall tau, Spearman): the judge-swap check; "
        "per-length long-context metrics side by side, with the YaRN caveat when exactly one run "
        "used ropeScaling.",
        "Refuses runs whose dataset digest, judge model, judge prompts and settings, judge "
        "sampling or generation settings differ, naming the field and each run's value; "
        "--allow-mismatch compares anyway and marks the output as mismatched.",
        "Exit codes: 0 compared, 2 bad input (unreadable, a Generated run, fewer than two runs, no "
        "benchmark in common), 3 not comparable.",
    )
)


def compare(
    runs: Annotated[
        list[str], typer.Argument(metavar="RUN...", help="Two or more runs' results (see above).")
    ],
    tracking_uri: Annotated[
        str | None,
        typer.Option(
            "--tracking-uri", envvar="MLFLOW_TRACKING_URI", help="MLflow server of mlflow:<run id> runs."
        ),
    ] = None,
    allow_mismatch: Annotated[
        bool,
        typer.Option(
            "--allow-mismatch",
            help="Compare runs whose dataset, prompts or judge differ; the output is marked mismatched.",
        ),
    ] = False,
    seed: Annotated[int, typer.Option(help="Bootstrap seed: the same runs and seed, the same numbers.")] = 0,
    draws: Annotated[int, typer.Option(min=100, help="Bootstrap draws per interval and for ranks.")] = (
        DEFAULT_DRAWS
    ),
    confidence: Annotated[
        float, typer.Option(min=0.5, max=0.999, help="Confidence of the intervals.")
    ] = 0.95,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the comparison as JSON (compare.json) instead of tables.")
    ] = False,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write compare.json and compare.png (the differences) here."),
    ] = None,
) -> None:
    from rich.console import Console
    from rich.text import Text

    from shinsa.evaluation.compare import CompareError, NotComparable
    from shinsa.evaluation.compare import compare as compare_runs

    stderr = Console(stderr=True, soft_wrap=True, emoji=False, highlight=False)

    def error(message: str) -> None:
        stderr.print(Text("error: ", style="red") + Text(message))

    try:
        sources = [load_source(run, tracking_uri) for run in runs]
        comparison = compare_runs(
            sources, allow_mismatch=allow_mismatch, draws=draws, confidence=confidence, seed=seed
        )
    except InputError as exc:
        error(str(exc))
        raise typer.Exit(CompareExitCode.BAD_INPUT) from None
    except NotComparable as exc:
        error("the runs are not comparable:")
        for m in exc.mismatches:
            stderr.print(f"  {m.describe()}", markup=False)
        stderr.print("use --allow-mismatch to compare them anyway (the output is then marked)", markup=False)
        raise typer.Exit(CompareExitCode.NOT_COMPARABLE) from None
    except CompareError as exc:
        error(str(exc))
        raise typer.Exit(CompareExitCode.BAD_INPUT) from None
    if output is not None:
        for path in write_comparison(comparison, output):
            stderr.print(f"wrote {path}", markup=False)
    if json_output:
        typer.echo(comparison.to_json(), nl=False)
    else:
        print_comparison(comparison, Console(soft_wrap=True, emoji=False))
